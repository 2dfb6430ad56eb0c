"""Solve the collab_filter tabs: read ratings and parameters from the cells, fit with torch, write back.

Each tab's objective is written here once as float64 torch code that computes exactly what the tab's
formulas compute (same masking, same sigmoid, same average), so the RMSE a spreadsheet engine computes
from the written parameters equals the RMSE reported here. The fitting is core.train's loop on one full
batch: every epoch is one step (for L-BFGS one iteration with its line search), as Solver sees the whole
sheet; the trace records the RMSE before each step and after the last one. Updates are core.optim's rules
(torch.optim's maths, checked against it in the tests) and its L-BFGS, not torch.optim itself: torch.optim
imports torch._dynamo on first use, which costs more than the whole solve.
Nothing is written unless every requested tab fitted without diverging; the caller commits.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from xlcollab.core import optim
from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.core.device import pick_device, torch_threads
from xlcollab.core.settings import SolveSettings, check_solve
from xlcollab.core.train import train
from xlcollab.errors import DivergedError, SettingsError, WorkbookError
from xlcollab.core.models import sigmoid_range
from xlcollab.sheets.collab.layout import DEFAULTS, PARAMS, RATING_RANGE, SHEETS
from xlcollab.sheets.common import LAST_RUN_LABELS

Forward = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Model:
    """One tab as torch code: its start parameters (shaped as in the sheet) and rmse/predictions of them."""
    sheet: str
    params: dict[str, np.ndarray]
    forward: Forward          # params -> (rmse, predictions shaped like the `predictions` block)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # data, moved with .to(device)

    def evaluate(self, params: dict[str, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
        """RMSE and predictions at `params` (default: the start values), in float64."""
        dev = next(iter(self.tensors.values())).device  # where the data is (fit may have moved it)
        p = {k: torch.as_tensor(v, dtype=torch.float64, device=dev) for k, v in (params or self.params).items()}
        with torch.no_grad():
            rmse, preds = self.forward(p)
        return float(rmse), preds.cpu().numpy()


# -- reading cells -----------------------------------------------------------------------------------------
class _Sheet:
    """Typed reads of one tab's named blocks, each error naming the book, sheet and cell."""

    def __init__(self, book: Book, sheet: str) -> None:
        book.require_sheet(sheet)
        self.book, self.sheet = book, sheet

    def fail(self, message: str, cell: str | None = None) -> WorkbookError:
        return WorkbookError(message, sheet=self.sheet, cell=cell, path=self.book.name)

    def block(self, name: str) -> tuple[list[list[Any]], int, int]:
        ref = self.book.ref_of(self.sheet, name)
        r0, c0, _, _ = bounds(ref)
        return self.book.read(self.sheet, ref), r0, c0

    def number(self, v: Any, cell: str, what: str, *, lo: float | None = None, hi: float | None = None) -> float:
        """One cell's value as a finite float within [lo, hi]; blanks, text, formulas and booleans refused."""
        if v is None or (isinstance(v, str) and not v.strip()):
            raise self.fail(f"{what} is blank; a number belongs here", cell)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = "a formula" if isinstance(v, str) and v.startswith("=") else repr(v)
            raise self.fail(f"{what} must be a number, found {kind}", cell)
        x = float(v)
        if not math.isfinite(x):
            raise self.fail(f"{what} must be a finite number, found {v!r}", cell)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise self.fail(f"{what} {v:g} is outside the range {lo:g}..{hi:g}", cell)
        return x

    def numbers(self, name: str, what: str, *, blanks: bool = False, lo: float | None = None,
                hi: float | None = None) -> np.ndarray:
        """A named block as a float64 array (NaN for blanks where allowed); text, formulas, blanks refused."""
        grid, r0, c0 = self.block(name)
        out = np.full((len(grid), len(grid[0]) if grid else 0), np.nan)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if blanks and (v is None or (isinstance(v, str) and not v.strip())):
                    continue
                out[i, j] = self.number(v, cell_name(r0 + i, c0 + j), what, lo=lo, hi=hi)
        return out

    def ids(self, name: str, what: str) -> dict[Any, int]:
        """A one-column block of distinct ids -> their position."""
        grid, r0, c0 = self.block(name)
        flat = [(row[0], cell_name(r0 + i, c0)) for i, row in enumerate(grid)] if len(grid) > 1 else \
               [(v, cell_name(r0, c0 + j)) for j, v in enumerate(grid[0])]
        found: dict[Any, int] = {}
        for pos, (v, cell) in enumerate(flat):
            if v is None or isinstance(v, bool) or (isinstance(v, str) and v.startswith("=")):
                raise self.fail(f"{what} must be an id (a number or a name), found {v!r}", cell)
            key = _id_key(v)
            if key in found:
                raise self.fail(f"{what} {v!r} appears twice in the {name} block", cell)
            found[key] = pos
        return found

    def text(self, name: str) -> tuple[Any, str]:
        grid, r0, c0 = self.block(name)
        return grid[0][0], cell_name(r0, c0)

    def shape(self, name: str) -> tuple[int, int]:
        r0, c0, r1, c1 = bounds(self.book.ref_of(self.sheet, name))
        return r1 - r0 + 1, c1 - c0 + 1

    def expect(self, name: str, array: np.ndarray, shape: tuple[int, int]) -> None:
        if array.shape != shape:
            raise self.fail(f"the {name} block is {array.shape[0]}x{array.shape[1]}; the other blocks need "
                            f"{shape[0]}x{shape[1]}")

    def y_range(self) -> tuple[float, float]:
        lo, hi = self.numbers("y_range", "the y range").ravel()
        if not lo < hi:
            raise self.fail(f"the y range must have low < high, found {lo:g} and {hi:g}",
                            cell_name(*bounds(self.book.ref_of(self.sheet, "y_range"))[:2]))
        return float(lo), float(hi)


def _id_key(v: Any) -> Any:
    if isinstance(v, (int, float)):
        return float(v)
    return str(v).strip().lower()  # MATCH(...,0) compares text without case


# -- the five tabs as torch code -------------------------------------------------------------------------
def read_crosstab(book: Book, sheet: str, *, bias: bool) -> Model:
    """dotprod / bias: prediction = user·movie (+ biases, optionally squashed); RMSE over observed ratings."""
    s = _Sheet(book, sheet)
    ratings = s.numbers("ratings", "a rating", blanks=True, lo=RATING_RANGE[0], hi=RATING_RANGE[1])
    nu, nm = ratings.shape
    mask = ~np.isnan(ratings)
    if not mask.any():
        raise s.fail("the ratings block has no ratings")
    params = {"movie_factors": s.numbers("movie_factors", "a movie factor"),
              "user_factors": s.numbers("user_factors", "a user factor")}
    k = params["user_factors"].shape[1]
    s.expect("user_factors", params["user_factors"], (nu, k))
    s.expect("movie_factors", params["movie_factors"], (k, nm))
    squash, lo, hi = False, 0.0, 1.0
    if bias:
        params["movie_bias"] = s.numbers("movie_bias", "a movie bias")
        params["user_bias"] = s.numbers("user_bias", "a user bias")
        s.expect("movie_bias", params["movie_bias"], (1, nm))
        s.expect("user_bias", params["user_bias"], (nu, 1))
        switch, cell = s.text("squash")
        if not isinstance(switch, str) or switch.strip().lower() not in ("on", "off"):
            raise s.fail(f"the sigmoid squash switch must be on or off, found {switch!r}", cell)
        squash = switch.lower() == "on"  # the formulas test ="on" (case-insensitive, no trimming)
        if switch != switch.strip():
            raise s.fail(f"the sigmoid squash switch has stray spaces: {switch!r}", cell)
        lo, hi = s.y_range()
    target = torch.as_tensor(np.nan_to_num(ratings))
    m = torch.as_tensor(mask.astype(np.float64))
    count = float(mask.sum())
    data = {"target": target, "mask": m}

    def forward(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        d = data
        x = p["user_factors"] @ p["movie_factors"]
        if bias:
            x = x + p["user_bias"] + p["movie_bias"]
            if squash:
                x = sigmoid_range(x, lo, hi)
        preds = x * d["mask"]                      # IF(ISNUMBER(rating), ..., 0)
        rmse = torch.sqrt((d["mask"] * (d["target"] - preds) ** 2).sum() / count)
        return rmse, preds

    return Model(sheet, params, forward, data)


def _read_long(s: _Sheet, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The long ratings block (userId, movieId, rating) mapped to embedding rows; the two embedding tables."""
    grid, r0, c0 = s.block("ratings")
    if not grid or len(grid[0]) != 3:
        raise s.fail("the ratings block must have 3 columns: userId, movieId, rating")
    users, movies = s.ids("user_ids", "a user id"), s.ids("movie_ids", "a movie id")
    ui, mi = np.empty(len(grid), np.int64), np.empty(len(grid), np.int64)
    ratings = np.empty(len(grid))
    for n, (u, m, r) in enumerate(grid):
        for v, table, out, col, what in ((u, users, ui, 0, "user"), (m, movies, mi, 1, "movie")):
            pos = table.get(_id_key(v)) if v is not None and not isinstance(v, bool) else None
            if pos is None:
                raise s.fail(f"{what} id {v!r} is not in the {what} embedding table (MATCH would give #N/A)",
                             cell_name(r0 + n, c0 + col))
            out[n] = pos
        ratings[n] = s.number(r, cell_name(r0 + n, c0 + 2), "a rating", lo=RATING_RANGE[0], hi=RATING_RANGE[1])
    params = {"user_factors": s.numbers("user_factors", "a user factor"),
              "movie_factors": s.numbers("movie_factors", "a movie factor")}
    k = params["user_factors"].shape[1] if k is None else k
    s.expect("user_factors", params["user_factors"], (len(users), k))
    s.expect("movie_factors", params["movie_factors"], (len(movies), k))
    return ui, mi, ratings, params


def read_embedding(book: Book, sheet: str) -> Model:
    """movielens_emb / movielens_1hot: prediction = SUMPRODUCT(user row, movie row); RMSE = SQRT(AVERAGE(err)).

    movielens_1hot's MMULT(one-hot row, embedding matrix) adds one product 1 * e and fourteen exact zeros,
    so it is the INDEX/MATCH lookup bit for bit; both tabs use the lookup, so from the same start they
    also take the same steps and end with the same predictions.
    """
    s = _Sheet(book, sheet)
    ui, mi, y, params = _read_long(s)
    data = {"y": torch.as_tensor(y), "ui": torch.as_tensor(ui), "mi": torch.as_tensor(mi)}

    def forward(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        d = data
        u, m = p["user_factors"][d["ui"]], p["movie_factors"][d["mi"]]
        preds = (u * m).sum(1)
        rmse = torch.sqrt(((preds - d["y"]) ** 2).mean())
        return rmse, preds[:, None]

    return Model(sheet, params, forward, data)


def read_nnet(book: Book, sheet: str) -> Model:
    """nnet: [user ‖ movie] -> MAX(0, x·W + b) -> a·w + b -> sigmoid into the y range; RMSE = SQRT(AVERAGE(err))."""
    s = _Sheet(book, sheet)
    ui, mi, y, params = _read_long(s)
    k = params["user_factors"].shape[1]
    for name, what in (("hidden_weights", "a hidden weight"), ("hidden_bias", "a hidden bias"),
                       ("output_weights", "an output weight"), ("output_bias", "the output bias")):
        params[name] = s.numbers(name, what)
    h = params["hidden_weights"].shape[1]
    s.expect("hidden_weights", params["hidden_weights"], (2 * k, h))
    s.expect("hidden_bias", params["hidden_bias"], (1, h))
    s.expect("output_weights", params["output_weights"], (1, h))
    s.expect("output_bias", params["output_bias"], (1, 1))
    lo, hi = s.y_range()
    data = {"y": torch.as_tensor(y), "ui": torch.as_tensor(ui), "mi": torch.as_tensor(mi)}

    def forward(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        d = data
        x = torch.cat([p["user_factors"][d["ui"]], p["movie_factors"][d["mi"]]], 1)
        a = torch.relu(x @ p["hidden_weights"] + p["hidden_bias"])
        out = (a * p["output_weights"]).sum(1) + p["output_bias"][0, 0]
        preds = sigmoid_range(out, lo, hi)
        rmse = torch.sqrt(((preds - d["y"]) ** 2).mean())
        return rmse, preds[:, None]

    return Model(sheet, params, forward, data)


READERS: dict[str, Callable[[Book, str], Model]] = {
    "dotprod": lambda b, s: read_crosstab(b, s, bias=False),
    "bias": lambda b, s: read_crosstab(b, s, bias=True),
    "movielens_emb": read_embedding,
    "movielens_1hot": read_embedding,
    "nnet": read_nnet,
}


def read_model(book: Book, sheet: str) -> Model:
    """The torch model of one tab, with its data and current parameters read from the cells."""
    if sheet not in READERS:
        raise SettingsError(f"'{sheet}' is not a collab_filter tab; the tabs are {', '.join(SHEETS)}")
    return READERS[sheet](book, sheet)


# -- fitting ---------------------------------------------------------------------------------------------
def settings_for(sheet: str, *, optimizer: str | None, lr: float | None, epochs: int | None, wd: float | None,
                 device: str) -> SolveSettings:
    """The tab's defaults (layout.DEFAULTS) overridden by what the user gave (core.settings.SOLVE checks them),
    on the torch device the solve runs on: a tab is tiny, so auto means the CPU and cuda forces."""
    s = check_solve(DEFAULTS[sheet], optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device)
    return replace(s, device=str(pick_device(s.device, 0)))


def _update(s: SolveSettings, x: torch.Tensor) -> optim.Rule | optim.LBFGS:
    """The update of the flat parameter vector: core.optim's rules (torch.optim's maths) or its L-BFGS."""
    if s.optimizer == "lbfgs":
        return optim.LBFGS([x], lr=s.lr)
    if s.optimizer in ("adam", "adamw"):  # torch.optim.Adam (L2) / AdamW (decoupled), betas (0.9, 0.999), eps 1e-8
        return optim.Rule([x], "adam", lr=s.lr, weight_decay=s.wd, decoupled=s.optimizer == "adamw")
    momentum = 0.9 if s.optimizer == "momentum" else 0.0  # torch.optim.SGD(lr, momentum, weight_decay)
    return optim.Rule([x], "sgd", lr=s.lr, momentum=momentum, weight_decay=s.wd)


@dataclass
class Fit:
    params: dict[str, np.ndarray]
    trace: list[float]        # RMSE before each epoch's step, then after the last one
    start_rmse: float
    final_rmse: float
    predictions: np.ndarray


def fit(model: Model, s: SolveSettings) -> Fit:
    """Full-batch descent on the tab's RMSE by core.train's loop; DivergedError (nothing returned) on NaN/inf.

    The parameters are one flat float64 vector (each block a view of it), so an update is a handful of tensor
    operations whatever the tab; weight decay follows the optimizer (see `_update`), and for L-BFGS it is L2 in
    the loss, 0.5 * wd * |p|^2. One CPU thread: these tensors are tiny, and threads only add synchronisation
    (4-6x slower).
    """
    dev = torch.device(s.device)
    model.tensors.update({k: v.to(dev) for k, v in model.tensors.items()})  # the forward's data, moved in place
    shapes = {k: v.shape for k, v in model.params.items()}
    x = torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in model.params.values()]).to(dev)
    x.requires_grad_(True)

    def unflat(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, shape in shapes.items():
            n = int(np.prod(shape))
            out[k] = flat[i:i + n].view(shape)
            i += n
        return out

    def objective(_batch: None) -> tuple[torch.Tensor, torch.Tensor]:
        rmse, _ = model.forward(unflat(x))
        return (rmse + 0.5 * s.wd * (x * x).sum() if s.optimizer == "lbfgs" and s.wd else rmse), rmse

    with torch_threads(1):
        rows = train(_update(s, x), objective, s.epochs, name=f"sheet '{model.sheet}'", lr_hint=s.lr)
        trace = [row["loss"] for row in rows]
        with torch.no_grad():
            rmse, preds = model.forward(unflat(x))
    final = float(rmse)
    if not math.isfinite(final) or not bool(torch.isfinite(x).all()):
        raise DivergedError(f"sheet '{model.sheet}': the loss became {final} after epoch {len(trace)} "
                            f"(lr {s.lr:g}); try a lower learning rate, e.g. --lr {s.lr / 10:g}")
    trace.append(final)
    params = {k: v.detach().cpu().numpy().copy() for k, v in unflat(x).items()}
    return Fit(params, trace, trace[0], final, preds.cpu().numpy())


# -- writing back ----------------------------------------------------------------------------------------
def trace_rows(trace: list[float], rows: int) -> list[list[Any]]:
    """`rows` (epoch, RMSE) pairs evenly spaced from epoch 0 to the last, blank-padded."""
    last = len(trace) - 1
    picks = sorted({round(i * last / (rows - 1)) for i in range(rows)}) if last >= rows else list(range(last + 1))
    out: list[list[Any]] = [[e, trace[e]] for e in picks]
    return out + [[None, None]] * (rows - len(out))


def write_back(book: Book, model: Model, result: Fit, s: SolveSettings, seconds: float) -> None:
    """Buffer the parameters, the trace and the "last run" block of one tab."""
    sheet = model.sheet
    for name in PARAMS[sheet]:
        book.write_name(sheet, name, result.params[name].tolist())
    rows, cols = _Sheet(book, sheet).shape("trace")
    if cols != 2 or rows < 2:
        raise WorkbookError("the trace block must be 2 columns (epoch, RMSE) and at least 2 rows", sheet=sheet,
                            path=book.name)
    book.write_name(sheet, "trace", trace_rows(result.trace, rows))
    values = [s.optimizer, s.lr, s.epochs, s.wd, s.device, round(seconds, 4), result.start_rmse, result.final_rmse]
    book.write_name(sheet, "last_run", [[v] for v in values[:len(LAST_RUN_LABELS)]])


def solve_book(book: Book, sheets: list[str] | str = "all", *, optimizer: str | None = None, lr: float | None = None,
               epochs: int | None = None, wd: float | None = None, device: str = "auto") -> dict[str, dict[str, Any]]:
    """Fit each tab independently and buffer its write-back; all tabs are read and fitted before any write."""
    names = list(SHEETS) if sheets == "all" or sheets == ["all"] else ([sheets] if isinstance(sheets, str) else list(sheets))
    for name in names:
        if name not in READERS:
            raise SettingsError(f"'{name}' is not a collab_filter tab; the tabs are {', '.join(SHEETS)} (or all)")
        book.require_sheet(name)
    done: list[tuple[Model, Fit, SolveSettings, float]] = []
    for name in names:
        book.status(f"xlcollab: solving {name}")
        start = time.perf_counter()
        s = settings_for(name, optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device)
        model = read_model(book, name)
        try:
            result = fit(model, s)
        except DivergedError as exc:
            raise DivergedError(f"{exc}. Nothing was written.") from None
        done.append((model, result, s, time.perf_counter() - start))
    results: dict[str, dict[str, Any]] = {}
    for model, result, s, seconds in done:
        write_back(book, model, result, s, seconds)
        results[model.sheet] = {"start_rmse": result.start_rmse, "final_rmse": result.final_rmse,
                                "seconds": seconds, "device": s.device, "optimizer": s.optimizer, "lr": s.lr,
                                "epochs": s.epochs, "wd": s.wd}
    return results
