"""The Excel layer: xlwings UDFs in cells and the macros behind the workbooks' buttons; thin, no maths here.

UDFs (xlwings decorators only add metadata, so each is a plain Python function):
  XC_DOT(a, b)                      dot product of two ranges of equal size
  XC_RMSE(actual, predicted)        RMSE over the pairs where both cells hold numbers (Excel's SUMXMY2 rule)
  XC_PREDICT(user, movie)           predicted rating(s); a column of users x a row of movies gives a grid
  XC_RECOMMEND(user, n)             dynamic array: the n best unseen movies (title, predicted rating)
  XC_SIMILAR(movie, n)              dynamic array: the n movies nearest by cosine of their factors
  XC_FIT(ratings, factors, epochs)  fits a ratings crosstab; returns the sheet's layout as one block
The model UDFs read the model the last `fit_movielens` saved beside the workbook, `<stem>.xlcollab.pt`
in the workbook's folder (or any file `xlcollab fit --save` wrote, given as the optional last argument);
it is loaded once and reloaded when the file changes. A bad argument gives a one-line "#xlcollab: ..."
text in the cell, never a traceback.

Macros (buttons): `solve`, `run`, `reset`, `fit_movielens`. Each takes a Book; called with none (as
RunPython does), it wraps `xw.Book.caller()`, works on the active sheet, and shows a failure in a
message box, leaving the workbook as it was (writes are buffered and dropped).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xlcollab.book.spec import Chart, SheetSpec  # re-exported: they used to live here
from xlcollab.errors import SettingsError, WorkbookError, XlcollabError

import xlwings as xw

from xlcollab.excel.udfs import (ERROR_PREFIX, XC_DOT, XC_FIT, XC_PREDICT, XC_RECOMMEND, XC_RMSE,  # noqa: F401
                                 XC_SIMILAR, load_model, model_path_for)

if TYPE_CHECKING:
    from xlcollab.book.base import Book
    from xlcollab.core.fit import CollabFit

RUN_EPOCHS = 5          # epochs per click of Run, as the original graddesc button
RESULTS = "results"     # the sheet fit_movielens writes
PCA_MOVIES = 50         # movies shown on the principal-axes scatter (the most rated)


# -- macros ------------------------------------------------------------------------------------------
def caller_book() -> "Book":
    """The workbook whose button ran this macro (xlwings' Book.caller()) as a Book."""
    from xlcollab.book.xlbook import XlwingsBook
    try:
        caller = xw.Book.caller()
    except Exception as exc:  # no Excel here, or not started from a workbook
        raise XlcollabError(f"no calling Excel workbook ({type(exc).__name__}: {exc}); these macros run from the "
                            "workbook's buttons, or from Python with a Book: solve(FileBook(path), 'dotprod')") from None
    return XlwingsBook(caller)


def _active(book: "Book") -> str:
    return book.active_sheet()  # a Book without a view raises, asking to name the sheet


def _macro(book: "Book | None", what: str, action: Callable[["Book"], Any]) -> Any:
    """Run `action` on the book, commit its writes; on failure drop them and tell the user.

    From Excel (book None) the failure is shown in a message box and swallowed; a Python caller gets
    the message box (where the Book has one) and the exception.
    """
    live = book is None
    book = caller_book() if live else book  # no workbook, no message box: this one raises
    try:
        result = action(book)
        book.commit()
        book.status(f"xlcollab: {what} done")
        return result
    except Exception as exc:  # every failure: nothing half-written, the reason in a message box
        book.discard()
        book.status("")
        reason = str(exc) if isinstance(exc, XlcollabError) else f"{type(exc).__name__}: {exc}"
        book.alert(f"xlcollab {what} failed: {reason}")
        if live:
            return None
        raise


def _collab_tab(book: "Book", sheet: str) -> str:
    from xlcollab.sheets.collab import SHEETS
    if sheet not in SHEETS:
        raise WorkbookError(f"Solve works on the collab_filter tabs ({', '.join(SHEETS)}), not on this one",
                            sheet=sheet, path=book.name)
    book.require_sheet(sheet)
    return sheet


def _graddesc_tab(book: "Book", sheet: str) -> str:
    from xlcollab.sheets.graddesc import OPTIMIZERS
    if sheet not in OPTIMIZERS:
        raise WorkbookError(f"Run and Reset work on the graddesc optimizer tabs ({', '.join(OPTIMIZERS)}), "
                            "not on this one", sheet=sheet, path=book.name)
    book.require_sheet(sheet)
    return sheet


def solve(book: "Book | None" = None, sheet: str | None = None, **settings: Any) -> dict[str, Any]:
    """Button Solve: fit a collab_filter tab (default: the active one) with torch, write its parameters back."""
    from xlcollab.sheets import collab

    def action(b: "Book") -> dict[str, Any]:
        tab = _collab_tab(b, sheet or _active(b))
        return collab.solve_book(b, [tab], **settings)[tab]
    return _macro(book, "Solve", action)


def run(book: "Book | None" = None, sheet: str | None = None, epochs: int = RUN_EPOCHS) -> dict[str, Any]:
    """Button Run: `epochs` more epochs (5 per click) of a graddesc optimizer tab, from its top cells."""
    from xlcollab.sheets import graddesc

    def action(b: "Book") -> dict[str, Any]:
        tab = _graddesc_tab(b, sheet or _active(b))
        b.status(f"xlcollab: running {epochs} epochs of {tab}")
        return graddesc.run_book(b, [tab], epochs)[tab]
    return _macro(book, "Run", action)


def reset(book: "Book | None" = None, sheet: str | None = None) -> dict[str, Any]:
    """Button Reset: a graddesc optimizer tab back to its start values, state zeroed, trace cleared."""
    from xlcollab.sheets import graddesc

    def action(b: "Book") -> dict[str, Any]:
        tab = _graddesc_tab(b, sheet or _active(b))
        return graddesc.reset_book(b, [tab])[tab]
    return _macro(book, "Reset", action)


# -- fit_movielens and its results sheet ------------------------------------------------------------
def fit_movielens(book: "Book | None" = None, *, model_path: str | Path | None = None, ratings: Any = None,
                  **settings: Any) -> dict[str, Any]:
    """Button Fit MovieLens: fit the embedded ratings, save the model beside the workbook, write the results sheet.

    `settings` go to CollabFit (defaults: its own); the model file is what the UDFs then answer from.
    """
    def action(b: "Book") -> dict[str, Any]:
        from xlcollab.core import data
        from xlcollab.core.fit import CollabFit

        path = Path(model_path) if model_path else model_path_for(_book_path(b))
        rs = ratings if isinstance(ratings, data.Ratings) else data.load_ratings(ratings)
        est = CollabFit(**{"progress": False, **settings})
        start = time.perf_counter()

        def progress(row: dict[str, Any]) -> None:  # settings_ holds the epochs the data's size gave
            b.status(f"xlcollab: epoch {row['epoch']}/{est.settings_['epochs']}, validation RMSE "
                     f"{row['valid_rmse']:.4f}")
        b.status(f"xlcollab: fitting {len(rs.frame):,} ratings ({rs.source})")
        est.fit(rs, callback=progress)
        epochs = est.settings_["epochs"]
        spec = results_sheet(est, rs)
        put_sheet(b, spec)
        est.save(path)
        return {"valid_rmse": est.valid_rmse_, "train_rmse": est.train_rmse_, "epochs": epochs,
                "seconds": time.perf_counter() - start, "model": str(path), "sheet": spec.name}
    return _macro(book, "Fit MovieLens", action)


def _book_path(book: "Book") -> Path:
    where = book.location()
    if where is not None:
        return where
    raise WorkbookError("cannot tell where this workbook lives, so not where to save its model; pass model_path",
                        path=book.name)


def results_sheet(est: "CollabFit", ratings: Any) -> SheetSpec:
    """The results sheet: RMSE by epoch, best/worst movies by bias, principal axes, top-10 per crosstab user."""
    from xlcollab.core import data, interpret

    cells: list[list[Any]] = []

    def put(r: int, c: int, value: Any) -> None:
        while len(cells) <= r:
            cells.append([])
        row = cells[r]
        while len(row) <= c:
            row.append(None)
        row[c] = value

    def col(c: int) -> str:
        from openpyxl.utils import get_column_letter
        return get_column_letter(c + 1)

    s = est.settings_
    put(0, 0, f"xlcollab fit of {ratings.source}: model {s['model']}, {s['n_factors']} factors, {s['epochs']} epochs, "
              f"{s['optimizer']} lr {s['lr']}, validation RMSE {est.valid_rmse_:.4f}")
    charts = []
    # 1. RMSE by epoch (A:C)
    put(2, 0, "epoch"), put(2, 1, "train RMSE"), put(2, 2, "validation RMSE")
    for i, row in enumerate(est.trace_):
        put(3 + i, 0, int(row["epoch"])), put(3 + i, 1, float(row["train_rmse"])), put(3 + i, 2, _finite(row["valid_rmse"]))
    last = 3 + len(est.trace_) - 1
    charts.append(Chart("line", "RMSE by epoch", "epoch", "RMSE", f"A4:A{last + 1}",
                        [("train RMSE", f"B4:B{last + 1}"), ("validation RMSE", f"C4:C{last + 1}")], "E3"))
    # 2. movies by learned bias (E:H below the chart, if the model has biases)
    r0 = max(last, 22) + 3
    try:
        best, worst = interpret.bias_ranking(est, n=10)
        put(r0, 0, "best movies by learned bias (of the 1,000 most rated)")
        put(r0, 5, "worst movies by learned bias")
        put(r0 + 1, 0, "title"), put(r0 + 1, 1, "bias"), put(r0 + 1, 2, "ratings")
        put(r0 + 1, 5, "title"), put(r0 + 1, 6, "bias"), put(r0 + 1, 7, "ratings")
        for i in range(len(best)):
            put(r0 + 2 + i, 0, best["title"][i]), put(r0 + 2 + i, 1, float(best["bias"][i])), put(r0 + 2 + i, 2, int(best["ratings"][i]))
        for i in range(len(worst)):
            put(r0 + 2 + i, 5, worst["title"][i]), put(r0 + 2 + i, 6, float(worst["bias"][i])), put(r0 + 2 + i, 7, int(worst["ratings"][i]))
        r0 += 2 + max(len(best), len(worst)) + 2
    except SettingsError as exc:
        put(r0, 0, f"no bias ranking: {exc}")
        r0 += 2
    # 3. principal axes of the movie factors (scatter)
    coords, explained = interpret.factor_pca(est, n_components=2, top=PCA_MOVIES)
    put(r0, 0, f"first two principal axes of the movie factors ({PCA_MOVIES} most rated movies; "
               f"variance explained {explained[0]:.0%} and {explained[1] if len(explained) > 1 else 0:.0%})")
    put(r0 + 1, 0, "title"), put(r0 + 1, 1, "axis 1"), put(r0 + 1, 2, "axis 2")
    for i in range(len(coords)):
        put(r0 + 2 + i, 0, coords["title"][i]), put(r0 + 2 + i, 1, float(coords["pc1"][i]))
        put(r0 + 2 + i, 2, float(coords["pc2"][i]) if "pc2" in coords else 0.0)
    p_last = r0 + 2 + len(coords)
    charts.append(Chart("scatter", "Movies on the first two principal axes of their factors", "axis 1", "axis 2",
                        f"B{r0 + 3}:B{p_last}", [("movies", f"C{r0 + 3}:C{p_last}")], f"E{r0 + 1}", 18.0, 12.0))
    r0 = max(p_last, r0 + 26) + 2
    # 4. top-10 recommendations per crosstab user
    users = data.crosstab(ratings, 15).index.tolist()
    put(r0, 0, "top-10 recommendations for each user of the crosstab (movies they have not rated)")
    put(r0 + 1, 0, "user"), put(r0 + 1, 1, "rank"), put(r0 + 1, 2, "title"), put(r0 + 1, 3, "predicted rating")
    r = r0 + 2
    for user in users:
        try:
            top = interpret.recommend(est, user, 10)
        except XlcollabError:  # a user with every rating in the validation split
            continue
        for rank, (title, pred) in enumerate(zip(top["title"], top["predicted"]), start=1):
            put(r, 0, _plain_id(user)), put(r, 1, rank), put(r, 2, title), put(r, 3, float(pred))
            r += 1
    width = max(len(row) for row in cells)
    cells = [row + [None] * (width - len(row)) for row in cells]
    return SheetSpec(RESULTS, cells, charts, widths={"A": 44, "C": 14, "F": 40})


def _finite(v: Any) -> Any:
    return float(v) if v is not None and math.isfinite(v) else None


def _plain_id(v: Any) -> Any:
    return int(v) if isinstance(v, (np.integer, int)) else (v.item() if hasattr(v, "item") else v)


def put_sheet(book: "Book", spec: SheetSpec) -> None:
    """Create or replace a whole sheet with charts: the one thing cell writes cannot do (see Book.put_sheet)."""
    book.put_sheet(spec)
