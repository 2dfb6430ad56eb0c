"""The macros behind the buttons: each takes a Book and calls sheets/ and book/, nothing else.

The same code runs on a live Excel workbook (XlwingsBook), a live LibreOffice (UnoBook) and a file (FileBook).
Called with no Book, as xlwings' RunPython does, a macro wraps `xw.Book.caller()`, works on the active sheet and
shows a failure in a message box; either way a failure leaves the workbook as it was (buffered writes dropped).
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xlwings as xw

from xlcollab.errors import SettingsError, WorkbookError, XlcollabError
from xlcollab.excel.settings import merged as tab_settings
from xlcollab.excel.udfs import model_path_for

if TYPE_CHECKING:
    from xlcollab.book.base import Book

RUN_EPOCHS = 5  # epochs per click of Run, as the original graddesc button


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
    """Button Solve: fit a collab_filter tab (default: the active one) with torch, write its parameters back.

    Settings (optimizer, lr, epochs, wd, device) come from the tab's settings cells, overridden by `given` (the
    ribbon's choices); engine and multistart belong to a sheet's Solver model, which a collab tab (fitted by torch
    directly) does not take beyond one start.
    """
    from xlcollab.sheets import collab

    def action(b: Book) -> dict[str, Any]:
        (tab,) = collab.tabs(sheet or b.active_sheet(), path=b.name)
        chosen = tab_settings(b, tab, given)
        engine, multistart = chosen.pop("engine", "auto"), chosen.pop("multistart", 1)
        if engine != "auto" or multistart != 1:
            raise SettingsError(f"the collab tab '{tab}' is fitted by torch directly: engine {engine!r} and multistart "
                                f"{multistart} apply to a sheet's Solver model; leave them 'as the sheet says'")
        return collab.solve_book(b, [tab], **chosen)[tab]
    return run_macro(book, "Solve", action, lambda r: (
        f"RMSE {r['start_rmse']:.4f} -> {r['final_rmse']:.4f}, {r['optimizer']} {r['epochs']} epochs, "
        f"{r['seconds']:.2f} s on {r['device']}"), box=True)


def run(book: Book | None = None, sheet: str | None = None, epochs: int | None = None) -> dict[str, Any]:
    """Button Run: more epochs of a graddesc optimizer tab from its top cells: `epochs`, else the tab's epochs
    setting, else 5 per click (as the original button)."""
    from xlcollab.sheets import graddesc

    def action(b: Book) -> dict[str, Any]:
        (tab,) = graddesc.tabs(sheet or b.active_sheet(), path=b.name)
        n = tab_settings(b, tab, {"epochs": epochs}).get("epochs", RUN_EPOCHS)
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
        est.fit(rs, callback=lambda row: b.status(f"xlcollab: epoch {row['epoch']}/{est.epochs}, "
                                                   f"validation RMSE {row['valid_rmse']:.4f}"))
        spec = results_sheet(est, rs)
        _save_then(est, path, lambda: b.put_sheet(spec))
        return {"valid_rmse": est.valid_rmse_, "train_rmse": est.train_rmse_, "epochs": est.epochs,
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
    """Save the model to a scratch file beside `path`, run `then`, and only then move the file into place."""
    try:
        fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise XlcollabError(f"cannot save the model at {path} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        est.save(scratch)
        then()
        os.replace(scratch, path)
    finally:
        Path(scratch).unlink(missing_ok=True)
