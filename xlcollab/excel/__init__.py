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

try:
    import xlwings as xw
except ImportError:  # the UDFs stay plain functions; only the Excel entry points need xlwings
    xw = None

if TYPE_CHECKING:
    from xlcollab.book.base import Book
    from xlcollab.core.fit import CollabFit

MODEL_SUFFIX = ".xlcollab.pt"
ERROR_PREFIX = "#xlcollab: "
RUN_EPOCHS = 5          # epochs per click of Run, as the original graddesc button
RESULTS = "results"     # the sheet fit_movielens writes
PCA_MOVIES = 50         # movies shown on the principal-axes scatter (the most rated)


# -- xlwings decorators, or no-ops without xlwings -------------------------------------------------
def _func(f):
    return xw.func(f) if xw else f


def _arg(name: str, *args: Any, **kwargs: Any):
    return xw.arg(name, *args, **kwargs) if xw else (lambda f: f)


def _ret(*args: Any, **kwargs: Any):
    return xw.ret(*args, **kwargs) if xw else (lambda f: f)


def _cell_error(f: Callable[[], Any]) -> Any:
    """Run a UDF body; a mistake the user can fix becomes a short message in the cell."""
    try:
        return f()
    except (XlcollabError, ValueError, TypeError, KeyError) as exc:
        text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc) or type(exc).__name__
        return ERROR_PREFIX + text.splitlines()[0]


# -- argument checks ---------------------------------------------------------------------------------
def grid(value: Any) -> np.ndarray:
    """Any cell value / 1-D / 2-D range as a 2-D object array (what xlwings' np.array converter gives)."""
    arr = np.array(value, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)
    elif arr.ndim > 2:
        raise ValueError(f"expected a range, got a {arr.ndim}-D array")
    return arr


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def numbers(value: Any, what: str) -> np.ndarray:
    """A range that must hold only numbers, as float64; names the first blank or text cell."""
    arr = grid(value)
    for (r, c), v in np.ndenumerate(arr):
        if not _is_number(v):
            kind = "blank" if v is None or v == "" else f"{v!r}"
            raise ValueError(f"{what} must hold numbers only; row {r + 1}, column {c + 1} of it is {kind}")
    return arr.astype(np.float64)


def _count(n: Any, what: str, *, low: int = 1, high: int = 10_000) -> int:
    if not _is_number(n) or float(n) != int(n) or not low <= int(n) <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}, got {n!r}")
    return int(n)


def _ids(value: Any, what: str) -> np.ndarray:
    arr = grid(value)
    for v in arr.flat:
        if v is None or v == "" or isinstance(v, bool):
            raise ValueError(f"{what} is blank" if v in (None, "") else f"{what} must be an id, got {v!r}")
    return arr


def _one(arr: np.ndarray, what: str) -> Any:
    if arr.size != 1:
        raise ValueError(f"{what} must be one cell, got {arr.shape[0]}x{arr.shape[1]}")
    return arr.flat[0]


# -- the model beside the workbook -----------------------------------------------------------------
def model_path_for(workbook: str | Path) -> Path:
    """Where fit_movielens saves, and the UDFs look for, a workbook's model: <folder>/<stem>.xlcollab.pt."""
    workbook = Path(workbook)
    return workbook.with_name(workbook.stem + MODEL_SUFFIX)


_MODELS: dict[Path, tuple[tuple[int, int], "CollabFit"]] = {}


def load_model(path: str | Path) -> "CollabFit":
    """The fitted model saved at `path`, cached; reloaded when the file's mtime or size changes."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise XlcollabError(f"no saved model at {path}: click Fit MovieLens (or run `xlcollab fit --save {path}`)") from None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _MODELS.get(path)
    if cached is None or cached[0] != stamp:
        from xlcollab.core.fit import CollabFit
        _MODELS[path] = (stamp, CollabFit.load(path))
    return _MODELS[path][1]


def _model(model: Any, caller: Any) -> "CollabFit":
    if model not in (None, ""):
        return load_model(Path(str(model)))
    fullname = None
    try:
        fullname = caller.sheet.book.fullname  # xlwings passes the calling Range as `caller`
    except AttributeError:
        pass
    if not fullname:
        raise XlcollabError("no model given and no calling workbook: pass the model file as the last argument")
    return load_model(model_path_for(fullname))


# -- UDFs --------------------------------------------------------------------------------------------
@_func
@_arg("a", np.array, ndim=2, dtype=object, doc="a row or column of numbers")
@_arg("b", np.array, ndim=2, dtype=object, doc="a row or column of numbers, as many as a")
def XC_DOT(a, b):
    """Dot product of two ranges with the same number of cells (e.g. a user's factors and a movie's)."""
    def body():
        x, y = numbers(a, "a"), numbers(b, "b")
        if x.size != y.size:
            raise ValueError(f"a has {x.size} cells but b has {y.size}")
        return float(np.dot(x.ravel(), y.ravel()))
    return _cell_error(body)


@_func
@_arg("actual", np.array, ndim=2, dtype=object, doc="the ratings (blanks allowed)")
@_arg("predicted", np.array, ndim=2, dtype=object, doc="the predictions, same shape")
def XC_RMSE(actual, predicted):
    """RMSE over the pairs where both cells hold numbers; blanks and text are skipped, as SUMXMY2 does."""
    def body():
        x, y = grid(actual), grid(predicted)
        if x.shape != y.shape:
            raise ValueError(f"actual is {x.shape[0]}x{x.shape[1]} but predicted is {y.shape[0]}x{y.shape[1]}")
        pairs = [(float(p), float(q)) for p, q in zip(x.flat, y.flat) if _is_number(p) and _is_number(q)]
        if not pairs:
            raise ValueError("no pair of numbers to compare")
        return math.sqrt(sum((p - q) ** 2 for p, q in pairs) / len(pairs))
    return _cell_error(body)


@_func
@_arg("user", np.array, ndim=2, dtype=object, doc="user id(s): a cell or a column")
@_arg("movie", np.array, ndim=2, dtype=object, doc="movie id(s): a cell or a row")
@_arg("model", doc="optional: a model file; default <workbook>.xlcollab.pt beside the workbook")
def XC_PREDICT(user, movie, model=None, caller=None):
    """Predicted rating of user for movie; a column of users and a row of movies give the whole grid."""
    def body():
        users, movies = _ids(user, "user"), _ids(movie, "movie")
        try:
            u, m = np.broadcast_arrays(users, movies)
        except ValueError:
            raise ValueError(f"user is {users.shape[0]}x{users.shape[1]} and movie is {movies.shape[0]}x{movies.shape[1]}: "
                             "give a column of users and a row of movies, or ranges of one shape") from None
        pred = _model(model, caller).predict(u.ravel(), m.ravel()).reshape(u.shape).astype(float)
        return float(pred[0, 0]) if pred.size == 1 else pred.tolist()
    return _cell_error(body)


@_func
@_arg("user", doc="a user id")
@_arg("n", doc="how many movies (default 10)")
@_arg("model", doc="optional: a model file; default <workbook>.xlcollab.pt beside the workbook")
@_ret(expand="table")
def XC_RECOMMEND(user, n=10, model=None, caller=None):
    """The n movies the user has not rated with the highest predicted rating: title, predicted rating."""
    def body():
        from xlcollab.core import interpret
        uid = _one(_ids(user, "user"), "user")
        top = interpret.recommend(_model(model, caller), uid, _count(n, "n"))
        return [["title", "predicted rating"]] + [[t, float(p)] for t, p in zip(top["title"], top["predicted"])]
    return _cell_error(body)


@_func
@_arg("movie", doc="a movie id")
@_arg("n", doc="how many movies (default 10)")
@_arg("model", doc="optional: a model file; default <workbook>.xlcollab.pt beside the workbook")
@_ret(expand="table")
def XC_SIMILAR(movie, n=10, model=None, caller=None):
    """The n movies whose factors point most nearly the same way (cosine similarity): title, similarity."""
    def body():
        from xlcollab.core import interpret
        mid = _one(_ids(movie, "movie"), "movie")
        top = interpret.similar(_model(model, caller), mid, _count(n, "n"))
        return [["title", "similarity"]] + [[t, float(s)] for t, s in zip(top["title"], top["similarity"])]
    return _cell_error(body)


@_func
@_arg("ratings", np.array, ndim=2, dtype=object, doc="a crosstab: users in rows, movies in columns, blanks = not rated")
@_arg("factors", doc="factors per user and movie (default 5)")
@_arg("epochs", doc="full-batch Adam steps (default 300)")
def XC_FIT(ratings, factors=5, epochs=300):
    """Fit user and movie factors to a ratings crosstab; returns the sheet's layout as one block.

    The block is (factors + users) x (factors + movies): movie factors top right, user factors bottom
    left, the predicted ratings bottom right (the top-left corner is blank).
    """
    def body():
        import pandas as pd
        from xlcollab.core.fit import CollabFit
        r = grid(ratings)
        k, n_epochs = _count(factors, "factors", high=100), _count(epochs, "epochs", high=100_000)
        rows = []
        for (i, j), v in np.ndenumerate(r):
            if v is None or v == "":
                continue
            if not _is_number(v):
                raise ValueError(f"ratings must be numbers or blanks; row {i + 1}, column {j + 1} is {v!r}")
            rows.append((i, j, float(v)))
        if not rows:
            raise ValueError("the ratings range holds no ratings")
        frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
        est = CollabFit(model="dot", n_factors=k, epochs=n_epochs, lr=0.05, wd=0.0, wd_bias=0.0, optimizer="adam",
                        batch_size=None, schedule="constant", valid_pct=0.0, y_range=None, clip=False, device="cpu",
                        progress=False).fit(frame)
        users = np.zeros((r.shape[0], k))
        movies = np.zeros((r.shape[1], k))
        users[est.user_ids_.astype(int)] = est.model_.u_weight.weight.detach().cpu().numpy()
        movies[est.item_ids_.astype(int)] = est.model_.i_weight.weight.detach().cpu().numpy()
        block: list[list[Any]] = [[""] * k + movies[:, f].tolist() for f in range(k)]
        block += [users[i].tolist() + (users[i] @ movies.T).tolist() for i in range(r.shape[0])]
        return block
    return _cell_error(body)


# -- macros ------------------------------------------------------------------------------------------
def caller_book() -> "Book":
    """The workbook whose button ran this macro (xlwings' Book.caller()) as a Book."""
    if xw is None:
        raise XlcollabError("the Excel entry points need xlwings: pip install xlwings")
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
        epochs = est.epochs
        start = time.perf_counter()

        def progress(row: dict[str, Any]) -> None:
            b.status(f"xlcollab: epoch {row['epoch']}/{epochs}, validation RMSE {row['valid_rmse']:.4f}")
        b.status(f"xlcollab: fitting {len(rs.frame):,} ratings ({rs.source})")
        est.fit(rs, callback=progress)
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
