"""The macros behind the buttons: each takes a Book and calls sheets/ and book/, nothing else.

The same code runs on a live Excel workbook (XlwingsBook), a live LibreOffice (UnoBook) and a file (FileBook).
Called with no Book, as xlwings' RunPython does, a macro wraps `xw.Book.caller()`, works on the active sheet and
shows a failure in a message box; either way a failure leaves the workbook as it was (buffered writes dropped).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xlwings as xw

from xlcollab.errors import SettingsError, WorkbookError, XlcollabError
from xlcollab.excel.udfs import model_path_for
from xlcollab.sheets.settings_cells import merged as tab_settings, run_epochs

if TYPE_CHECKING:
    from xlcollab.book.base import Book


def caller_book() -> Book:
    """The workbook whose button ran this macro (xlwings' Book.caller()) as a Book."""
    from xlcollab.book.xlbook import XlwingsBook
    try:
        caller = xw.Book.caller()
    except Exception as exc:  # no Excel here, or not started from a workbook
        raise XlcollabError(f"no calling Excel workbook ({type(exc).__name__}: {exc}); these macros run from the "
                            "workbook's buttons, or from Python with a Book: solve(FileBook(path), 'dotprod')") from None
    return XlwingsBook(caller)


def run_macro(book: Book | None, what: str, action: Callable[[Book], Any],
              report: Callable[[Any], str] | None = None, *, box: bool = False) -> Any:
    """Run `action` on the book and commit its writes; on failure drop them and tell the user.

    On success the status bar says what ran (`report(result)`: e.g. the objective before and after, seconds,
    device), and from Excel (book None) with `box` an information box says it too. From Excel a failure is shown
    in a message box and swallowed; a Python caller gets the message box (where the Book has one) and the exception.
    """
    live = book is None
    book = caller_book() if live else book  # no workbook, no message box: this one raises
    try:
        result = action(book)
        book.commit()
        done = f"{what} done" + (f": {report(result)}" if report else "")
        book.status(f"xlcollab: {done}")
        if live and box:
            book.inform(done)
        return result
    except Exception as exc:  # every failure: nothing half-written, the reason in a message box
        book.discard()
        book.status("")
        reason = str(exc) if isinstance(exc, XlcollabError) else f"{type(exc).__name__}: {exc}"
        book.alert(f"xlcollab {what} failed: {reason}")
        if live:
            return None
        raise


def solve(book: Book | None = None, sheet: str | None = None, **given: Any) -> dict[str, Any]:
    """Button Solve: the Solver model of a sheet (default: the active one), any workbook, written back.

    A collab_filter tab goes through its own layer (trace, "last run"); any other sheet through the generic solver.
    Settings (engine, optimizer, lr, epochs, wd, device, multistart) come from the tab's settings cells, overridden
    by `given` (the ribbon's choices).
    """
    from xlcollab.sheets import collab

    def action(b: Book) -> dict[str, Any]:
        tab = sheet or b.active_sheet()
        b.require_sheet(tab)
        chosen = tab_settings(b, tab, given)
        engine = chosen.pop("engine", "auto")
        if chosen.get("multistart") == 1:  # one start: the sheet's own start values, no random ones
            chosen["multistart"] = 0
        if collab.is_tab(b, tab):
            if engine not in ("auto", "grg"):
                raise SettingsError(f"the collab tab '{tab}' is a nonlinear model: GRG solves it, not engine "
                                    f"'{engine}'; leave the engine 'as the sheet says'")
            return collab.solve_book(b, [tab], **chosen)[tab]
        return _solve_model(b, tab, engine, chosen)
    return run_macro(book, "Solve", action, _solve_report, box=True)


def _solve_model(book: Book, sheet: str, engine: str, chosen: dict[str, Any]) -> dict[str, Any]:
    """Any sheet's stored Solver model, solved by the engine chosen; the writes buffered for run_macro's commit."""
    from xlcollab.solver import solve as generic
    from xlcollab.solver.engines import grg
    from xlcollab.solver.model import has_model, read_model

    if not has_model(book, sheet):
        raise WorkbookError("holds no Solver model: set one up in Excel's Solver (Data > Solver: objective, variable "
                            "cells, constraints), then click Solve again", sheet=sheet, path=book.name)

    descent = {"optimizer": chosen.get("optimizer"), "lr": chosen.get("lr"), "iterations": chosen.get("epochs"),
               "wd": chosen.get("wd")}
    options = generic.Options(engine=engine, device=chosen.get("device", "auto"),
                              multistart=chosen.get("multistart", 0),
                              grg=grg.Settings(**{k: v for k, v in descent.items() if v is not None}))
    book.status(f"xlcollab: solving {sheet}")
    outcome, writes = generic.solve_model(book, read_model(book, sheet), options)
    generic.apply(book, writes)
    return outcome.as_json()


def _solve_report(r: dict[str, Any]) -> str:
    """"locally optimal, objective F23: 1.11723 -> 0.190421, grg (adam, 1000 epochs), 1.88 s on cpu"."""
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.6g}"
    how = f" ({r['optimizer']}, {r['epochs']} epochs)" if "optimizer" in r else ""
    return (f"{r['status']}, objective {r['objective_cell'] or '(none)'}: {num(r['objective_before'])} -> "
            f"{num(r['objective_after'])}, {r['engine']}{how}, {r['seconds']:.2f} s on {r['device']}")


def run(book: Book | None = None, sheet: str | None = None, epochs: int | None = None) -> dict[str, Any]:
    """Button Run: more epochs of a graddesc optimizer tab from its top cells: `epochs`, else the tab's epochs
    setting, else 5 per click (as the original button)."""
    from xlcollab.sheets import graddesc

    def action(b: Book) -> dict[str, Any]:
        (tab,) = graddesc.tabs(sheet or b.active_sheet(), path=b.name)
        n = run_epochs(b, tab, epochs)
        b.status(f"xlcollab: running {n} epochs of {tab}")
        return graddesc.run_book(b, [tab], n)[tab]
    return run_macro(book, "Run", action, lambda r: (
        f"epoch {r['epoch']}: a = {r['a']:.6g}, b = {r['b']:.6g}, loss {r['loss']:.6g}, {r['seconds']:.2f} s"))


def reset(book: Book | None = None, sheet: str | None = None) -> dict[str, Any]:
    """Button Reset: a graddesc optimizer tab back to its start values, state zeroed, trace cleared."""
    from xlcollab.sheets import graddesc

    def action(b: Book) -> dict[str, Any]:
        (tab,) = graddesc.tabs(sheet or b.active_sheet(), path=b.name)
        return graddesc.reset_book(b, [tab])[tab]
    return run_macro(book, "Reset", action)


def fit_movielens(book: Book | None = None, *, model_path: str | Path | None = None, ratings: Any = None,
                  **settings: Any) -> dict[str, Any]:
    """Button Fit MovieLens: fit the embedded ratings, write the results sheet, save the model beside the workbook.

    `settings` go to CollabFit (defaults: its own); the model file is what the XC_* functions then answer from.
    The model is saved to a scratch file first, the sheet put next, and the file renamed into place last, so a
    failure at any step leaves both the workbook and an earlier model as they were.
    """
    def action(b: Book) -> dict[str, Any]:
        from xlcollab.core import data
        from xlcollab.core.fit import CollabFit
        from xlcollab.sheets.results import results_sheet

        path = Path(model_path) if model_path else model_path_for(_location(b))
        rs = ratings if isinstance(ratings, data.Ratings) else data.load_ratings(ratings)
        est = CollabFit(**{"progress": False, **{k: v for k, v in settings.items() if v is not None}})
        start = time.perf_counter()
        b.status(f"xlcollab: fitting {len(rs.frame):,} ratings ({rs.source})")
        # settings_ holds the epochs the fit resolved (epochs None: a rule of the data's size)
        est.fit(rs, callback=lambda row: b.status(f"xlcollab: epoch {row['epoch']}/{est.settings_['epochs']}, "
                                                   f"validation RMSE {row['valid_rmse']:.4f}"))
        spec = results_sheet(est, rs)
        _save_then(est, path, lambda: b.put_sheet(spec))
        return {"valid_rmse": est.valid_rmse_, "model_valid_rmse": est.model_valid_rmse_,
                "train_rmse": est.train_rmse_, "epochs": est.settings_["epochs"],
                "seconds": time.perf_counter() - start, "device": str(est.device_), "model": str(path),
                "sheet": spec.name}
    return run_macro(book, "Fit MovieLens", action, lambda r: (
        f"validation RMSE {r['valid_rmse']:.4f} after {r['epochs']} epochs, {r['seconds']:.1f} s on {r['device']}; "
        f"the XC_* functions answer from {r['model']}"), box=True)


def _location(book: Book) -> Path:
    where = book.location()
    if where is None:
        raise WorkbookError("cannot tell where this workbook lives, so not where to save its model: save the "
                            "workbook first (or pass model_path)", path=book.name)
    return where


def _save_then(est: Any, path: Path, then: Callable[[], None]) -> None:
    """Save the model atomically (core.modelfile), running `then` once the new file is complete and before it
    replaces the old one: if `then` fails, the previous model stays."""
    from xlcollab.core import modelfile
    modelfile.save(est, path, before_replace=then)
