"""The XC_* worksheet functions: small xlwings UDFs over core/, each a few lines; no maths here.

xlwings' decorators only record metadata (`__xlfunc__`: arguments, converters, docs), which its Import Functions
turns into one VBA `Function XC_…` per UDF; the functions stay plain Python. Their parameters carry no type hints
on purpose: xlwings reads a hint as the argument's converter. One decorator, `cell_error`, turns a mistake the user
can fix (an XlcollabError) into a one-line "#xlcollab: ..." in the cell instead of a traceback.

The model UDFs answer from the model the Fit MovieLens button saved beside the workbook, `<stem>.xlcollab.pt`
(or any file `xlcollab fit --save` wrote, given as the last argument), loaded once and reloaded when it changes.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xlwings as xw

from xlcollab.core import checks
from xlcollab.errors import XlcollabError

if TYPE_CHECKING:
    from xlcollab.core.fit import CollabFit

ERROR_PREFIX = "#xlcollab: "
MODEL_SUFFIX = ".xlcollab.pt"
RANGE = {"ndim": 2, "dtype": object}  # a range argument arrives as a 2-D object array, blanks as None
MODEL_DOC = "optional: a model file; default <workbook>.xlcollab.pt beside the workbook"


def cell_error(udf: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a UDF so that it never raises: an XlcollabError becomes the cell's text "#xlcollab: <first line of the
    reason>", and anything else (a bug, memory) "#xlcollab: internal error: <kind>: <first line>"."""
    @functools.wraps(udf)  # xlwings reads the signature and docstring through __wrapped__
    def in_cell(*args: Any, **kwargs: Any) -> Any:
        try:
            return udf(*args, **kwargs)
        except XlcollabError as exc:
            return ERROR_PREFIX + (str(exc).splitlines() or [type(exc).__name__])[0]
        except Exception as exc:  # a worksheet function must answer in its cell, whatever happened
            return f"{ERROR_PREFIX}internal error: {type(exc).__name__}: " + (str(exc).splitlines() or [""])[0]
    return in_cell


# -- arguments ---------------------------------------------------------------------------------------
def grid(value: Any) -> np.ndarray:
    """A cell value, 1-D or 2-D range as a 2-D object array (what xlwings' np.array converter gives)."""
    arr = np.array(value, dtype=object)
    if arr.ndim > 2:
        raise checks.CheckError(f"expected a range, got a {arr.ndim}-D array")
    return arr.reshape(1, -1) if arr.ndim < 2 else arr


def numbers(value: Any, what: str, *, blanks: bool = False) -> np.ndarray:
    """A range of numbers as float64 (blanks as NaN where allowed); CheckError names the first other cell."""
    arr = grid(value)
    out = np.full(arr.shape, np.nan)
    for (r, c), v in np.ndenumerate(arr):
        if not (blanks and checks.is_blank(v)):
            out[r, c] = checks.number(v, f"{what} (row {r + 1}, column {c + 1})")
    return out


def ids(value: Any, what: str) -> np.ndarray:
    """User or movie ids as a 2-D array; CheckError for a blank or a logical."""
    arr = grid(value)
    for v in arr.flat:
        if checks.is_blank(v) or isinstance(v, (bool, np.bool_)):
            raise checks.CheckError(f"{what} is blank" if checks.is_blank(v) else f"{what} must be an id, found {v!r}")
    return arr


def one(arr: np.ndarray, what: str) -> Any:
    """The single value of a one-cell range."""
    if arr.size != 1:
        raise checks.CheckError(f"{what} must be one cell, got {arr.shape[0]}x{arr.shape[1]}")
    return arr.flat[0]


# -- the model beside the workbook -----------------------------------------------------------------
def model_path_for(workbook: str | Path) -> Path:
    """Where Fit MovieLens saves, and the UDFs look for, a workbook's model: <folder>/<stem>.xlcollab.pt."""
    workbook = Path(workbook)
    return workbook.with_name(workbook.stem + MODEL_SUFFIX)


_MODELS: dict[Path, tuple[tuple[int, int, int], CollabFit | XlcollabError]] = {}


def load_model(path: str | Path) -> CollabFit:
    """The fitted model saved at `path`, cached; reloaded when the file changes (inode, mtime or size).

    A load that failed is cached too, until the file changes: a damaged model file is read once, not on
    every recalculation of every cell that asks.
    """
    from xlcollab.core.fit import CollabFit

    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise XlcollabError(f"no saved model at {path}: click Fit MovieLens (or run `xlcollab fit --save {path}`)") from None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    if path not in _MODELS or _MODELS[path][0] != stamp:
        try:
            _MODELS[path] = (stamp, CollabFit.load(path))
        except XlcollabError as exc:
            _MODELS[path] = (stamp, exc)
    found = _MODELS[path][1]
    if isinstance(found, XlcollabError):
        raise found
    return found


def model_for(model: Any, caller: Any) -> CollabFit:
    """The model file given as an argument, else the one beside the calling workbook (xlwings' `caller` Range)."""
    if not checks.is_blank(model):
        return load_model(Path(str(model)))
    fullname = caller.sheet.book.fullname if caller is not None else None
    if not fullname:
        raise XlcollabError("no model given and no calling workbook: pass the model file as the last argument")
    return load_model(model_path_for(fullname))


# -- UDFs --------------------------------------------------------------------------------------------
@xw.func
@xw.arg("a", np.array, doc="a row or column of numbers", **RANGE)
@xw.arg("b", np.array, doc="a row or column of numbers, as many as a", **RANGE)
@cell_error
def XC_DOT(a, b):
    """Dot product of two ranges with the same number of cells (e.g. a user's factors and a movie's)."""
    x, y = numbers(a, "a"), numbers(b, "b")
    if x.size != y.size:
        raise checks.CheckError(f"a has {x.size} cells but b has {y.size}")
    return float(np.dot(x.ravel(), y.ravel()))


@xw.func
@xw.arg("actual", np.array, doc="the ratings (blanks allowed)", **RANGE)
@xw.arg("predicted", np.array, doc="the predictions, same shape", **RANGE)
@cell_error
def XC_RMSE(actual, predicted):
    """RMSE over the pairs where both cells hold numbers; blanks and text are skipped, as SUMXMY2 does."""
    x, y = grid(actual), grid(predicted)
    if x.shape != y.shape:
        raise checks.CheckError(f"actual is {x.shape[0]}x{x.shape[1]} but predicted is {y.shape[0]}x{y.shape[1]}")
    pairs = [(float(p), float(q)) for p, q in zip(x.flat, y.flat) if checks.is_number(p) and checks.is_number(q)]
    if not pairs:
        raise checks.CheckError("no pair of numbers to compare")
    return math.sqrt(sum((p - q) ** 2 for p, q in pairs) / len(pairs))


@xw.func
@xw.arg("user", np.array, doc="user id(s): a cell or a column", **RANGE)
@xw.arg("movie", np.array, doc="movie id(s): a cell or a row", **RANGE)
@xw.arg("model", doc=MODEL_DOC)
@cell_error
def XC_PREDICT(user, movie, model=None, caller=None):
    """Predicted rating of user for movie; a column of users and a row of movies give the whole grid."""
    users, movies = ids(user, "user"), ids(movie, "movie")
    try:
        u, m = np.broadcast_arrays(users, movies)
    except ValueError:
        raise checks.CheckError(f"user is {users.shape[0]}x{users.shape[1]} and movie is {movies.shape[0]}x"
                                f"{movies.shape[1]}: give a column of users and a row of movies, or ranges of one shape") from None
    pred = model_for(model, caller).predict(u.ravel(), m.ravel()).reshape(u.shape).astype(float)
    return float(pred[0, 0]) if pred.size == 1 else pred.tolist()


def _recommend(user: Any, n: Any, model: Any, caller: Any) -> list[list[Any]]:
    """XC_RECOMMEND's answer: a header row, then title and predicted rating of the n best unseen movies."""
    from xlcollab.core import interpret
    top = interpret.recommend(model_for(model, caller), one(ids(user, "user"), "user"), checks.whole(n, "n", lo=1, hi=10_000))
    return [["title", "predicted rating"]] + [[t, float(p)] for t, p in zip(top["title"], top["predicted"])]


def _similar(movie: Any, n: Any, model: Any, caller: Any) -> list[list[Any]]:
    """XC_SIMILAR's answer: a header row, then title and cosine similarity of the n nearest movies."""
    from xlcollab.core import interpret
    top = interpret.similar(model_for(model, caller), one(ids(movie, "movie"), "movie"), checks.whole(n, "n", lo=1, hi=10_000))
    return [["title", "similarity"]] + [[t, float(s)] for t, s in zip(top["title"], top["similarity"])]


def _top_n(key: str, key_doc: str, *, legacy: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """xlwings' decorators of a top-n function of `key`: spilling natively, or (`legacy`) resized by xlwings over the
    cells below and right for Excel without dynamic arrays (2019 and older), where the add-in calls the _LEGACY twin."""
    def decorate(udf: Callable[..., Any]) -> Callable[..., Any]:
        udf = cell_error(udf)
        if legacy:
            udf = xw.ret(expand="table")(udf)
        for name, doc in (("model", MODEL_DOC), ("n", "how many movies (default 10)"), (key, key_doc)):
            udf = xw.arg(name, doc=doc)(udf)
        return xw.func(udf)
    return decorate


@_top_n("user", "a user id")
def XC_RECOMMEND(user, n=10, model=None, caller=None):
    """The n movies the user has not rated with the highest predicted rating: title, predicted rating (spills)."""
    return _recommend(user, n, model, caller)


@_top_n("movie", "a movie id")
def XC_SIMILAR(movie, n=10, model=None, caller=None):
    """The n movies whose factors point most nearly the same way (cosine similarity): title, similarity (spills)."""
    return _similar(movie, n, model, caller)


@_top_n("user", "a user id", legacy=True)
def XC_RECOMMEND_LEGACY(user, n=10, model=None, caller=None):
    """XC_RECOMMEND for Excel without dynamic arrays: resized by xlwings over the cells below and right."""
    return _recommend(user, n, model, caller)


@_top_n("movie", "a movie id", legacy=True)
def XC_SIMILAR_LEGACY(movie, n=10, model=None, caller=None):
    """XC_SIMILAR for Excel without dynamic arrays: resized by xlwings over the cells below and right."""
    return _similar(movie, n, model, caller)


@xw.func
@xw.arg("ratings", np.array, doc="a crosstab: users in rows, movies in columns, blanks = not rated", **RANGE)
@xw.arg("factors", doc="factors per user and movie (default 5)")
@xw.arg("epochs", doc="full-batch Adam steps (default 300)")
@xw.arg("device", doc='"auto" (default), "cpu" or "cuda"')
@cell_error
def XC_FIT(ratings, factors=5, epochs=300, device="auto"):
    """Fit user and movie factors to a ratings crosstab; returns the sheet's layout as one block.

    The block is (factors + users) x (factors + movies): movie factors top right, user factors bottom
    left, the predicted ratings bottom right (the top-left corner is blank).
    """
    users, movies = fit_crosstab(numbers(ratings, "ratings", blanks=True), checks.whole(factors, "factors", lo=1, hi=100),
                                 checks.whole(epochs, "epochs", lo=1, hi=100_000), "auto" if checks.is_blank(device) else device)
    k = users.shape[1]
    return [[""] * k + movies[:, f].tolist() for f in range(k)] + [
        users[i].tolist() + (users[i] @ movies.T).tolist() for i in range(len(users))]


def fit_crosstab(r: np.ndarray, k: int, epochs: int, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(user factors, movie factors) of a dot-product model fitted full-batch by Adam to a crosstab (NaN = blank)."""
    import pandas as pd

    from xlcollab.core.fit import CollabFit
    rows, cols = np.nonzero(~np.isnan(r))
    if not len(rows):
        raise checks.CheckError("the ratings range holds no ratings")
    frame = pd.DataFrame({"user": rows, "item": cols, "rating": r[rows, cols]})
    est = CollabFit(model="dot", n_factors=k, epochs=epochs, lr=0.05, wd=0.0, wd_bias=0.0, optimizer="adam",
                    batch_size=None, schedule="constant", valid_pct=0.0, y_range=None, clip=False, device=device,
                    progress=False).fit(frame)
    users, movies = np.zeros((r.shape[0], k)), np.zeros((r.shape[1], k))
    users[est.user_ids_.astype(int)] = est.model_.u_weight.weight.detach().cpu().numpy()
    movies[est.item_ids_.astype(int)] = est.model_.i_weight.weight.detach().cpu().numpy()
    return users, movies


UDFS = (XC_DOT, XC_RMSE, XC_PREDICT, XC_RECOMMEND, XC_SIMILAR, XC_FIT, XC_RECOMMEND_LEGACY, XC_SIMILAR_LEGACY)
SPILLING = {"XC_RECOMMEND": "XC_RECOMMEND_LEGACY", "XC_SIMILAR": "XC_SIMILAR_LEGACY"}  # native spill -> legacy resize
