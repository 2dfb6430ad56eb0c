"""The collab_filter tabs' named blocks, read and checked before a solve: a text rating, a blank factor, an id
the look-ups cannot find or a bad squash switch is refused naming its cell (the formulas would quietly make 0 or
#N/A of it). What the tab computes is left to its formulas (xlcollab.solver compiles them); this module only says
what the blocks hold, as plain arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.book.cells import at, numbers_in
from xlcollab.core import checks
from xlcollab.errors import WorkbookError
from xlcollab.sheets.collab.layout import RATING_RANGE

RATING = {"lo": RATING_RANGE[0], "hi": RATING_RANGE[1]}


@dataclass
class Tab:
    """One tab's blocks: parameters shaped as in the sheet; data: ratings (crosstab, NaN for blanks) or the long
    form's user row, movie row and rating per line; the squash switch and the y range where the tab has them."""
    sheet: str
    params: dict[str, np.ndarray]
    data: dict[str, Any] = field(default_factory=dict)


class _Blocks:
    """Typed reads of one tab's named blocks, each error naming the book, sheet and cell."""

    def __init__(self, book: Book, sheet: str) -> None:
        book.require_sheet(sheet)
        self.book, self.sheet = book, sheet
        _, _, r1, c1 = bounds(book.used_range(sheet))
        self.cells = book.read(sheet, f"A1:{cell_name(r1, c1)}")  # one read: a live backend pays per call

    def fail(self, message: str, cell: str | None = None) -> WorkbookError:
        return WorkbookError(message, sheet=self.sheet, cell=cell, path=self.book.name)

    def read(self, ref: str) -> list[list[Any]]:
        """The values of `ref` from the sheet read once (blank beyond what the read returned)."""
        r0, c0, r1, c1 = bounds(ref)
        rows = self.cells[r0 - 1:r1]
        grid = [(list(row[c0 - 1:c1]) + [None] * (c1 - c0 + 1))[:c1 - c0 + 1] for row in rows]
        return grid + [[None] * (c1 - c0 + 1) for _ in range(r1 - r0 + 1 - len(grid))]

    def block(self, name: str) -> tuple[list[list[Any]], int, int]:
        ref = self.book.ref_of(self.sheet, name)
        r0, c0, _, _ = bounds(ref)
        return self.read(ref), r0, c0

    def numbers(self, name: str, what: str, **limits: Any) -> np.ndarray:
        return numbers_in(self.book, self.sheet, name, what, read=self.read, **limits)

    def ids(self, name: str, what: str) -> dict[Any, int]:
        """A one-column (or one-row) block of distinct ids -> their position."""
        grid, r0, c0 = self.block(name)
        flat = [(row[0], cell_name(r0 + i, c0)) for i, row in enumerate(grid)] if len(grid) > 1 else \
               [(v, cell_name(r0, c0 + j)) for j, v in enumerate(grid[0])]
        found: dict[Any, int] = {}
        for pos, (v, cell) in enumerate(flat):
            if v is None or isinstance(v, bool) or (isinstance(v, str) and v.startswith("=")):
                raise self.fail(f"{what} must be an id (a number or a name), found {checks.describe(v)}", cell)
            if id_key(v) in found:
                raise self.fail(f"{what} {v!r} appears twice in the {name} block", cell)
            found[id_key(v)] = pos
        return found

    def expect(self, name: str, array: np.ndarray, shape: tuple[int, int]) -> None:
        if array.shape != shape:
            raise self.fail(f"the {name} block is {array.shape[0]}x{array.shape[1]}; the other blocks need "
                            f"{shape[0]}x{shape[1]}")

    def squash(self) -> bool:
        grid, r0, c0 = self.block("squash")
        switch, cell = grid[0][0], cell_name(r0, c0)
        if not isinstance(switch, str) or switch.strip().lower() not in ("on", "off"):
            raise self.fail(f"the sigmoid squash switch must be on or off, found {checks.describe(switch)}", cell)
        if switch != switch.strip():  # the formulas test ="on" (case-insensitive, no trimming)
            raise self.fail(f"the sigmoid squash switch has stray spaces: {switch!r}", cell)
        return switch.lower() == "on"

    def y_range(self) -> tuple[float, float]:
        lo, hi = self.numbers("y_range", "the y range").ravel()
        if not lo < hi:
            raise self.fail(f"the y range must have low < high, found {lo:g} and {hi:g}",
                            cell_name(*bounds(self.book.ref_of(self.sheet, "y_range"))[:2]))
        return float(lo), float(hi)


def id_key(v: Any) -> Any:
    """How MATCH(..., 0) compares ids: numbers by value, text without case."""
    if isinstance(v, (int, float)):
        return float(v)
    return str(v).strip().lower()


def read_crosstab(book: Book, sheet: str, *, bias: bool) -> Tab:
    """dotprod / bias: the ratings crosstab, the factor blocks (and biases, squash switch, y range)."""
    s = _Blocks(book, sheet)
    ratings = s.numbers("ratings", "a rating", blanks=True, **RATING)
    nu, nm = ratings.shape
    if np.isnan(ratings).all():
        raise s.fail("the ratings block has no ratings")
    params = {"movie_factors": s.numbers("movie_factors", "a movie factor"),
              "user_factors": s.numbers("user_factors", "a user factor")}
    k = params["user_factors"].shape[1]
    s.expect("user_factors", params["user_factors"], (nu, k))
    s.expect("movie_factors", params["movie_factors"], (k, nm))
    tab = Tab(sheet, params, {"ratings": ratings})
    if bias:
        params["movie_bias"] = s.numbers("movie_bias", "a movie bias")
        params["user_bias"] = s.numbers("user_bias", "a user bias")
        s.expect("movie_bias", params["movie_bias"], (1, nm))
        s.expect("user_bias", params["user_bias"], (nu, 1))
        tab.data.update(squash=s.squash(), y_range=s.y_range())
    return tab


def read_long(book: Book, sheet: str, *, nnet: bool) -> Tab:
    """movielens_emb / movielens_1hot / nnet: (userId, movieId, rating) lines mapped to embedding rows, the two
    embedding tables (and the nnet's weights and y range)."""
    s = _Blocks(book, sheet)
    grid, r0, c0 = s.block("ratings")
    if not grid or len(grid[0]) != 3:
        raise s.fail("the ratings block must have 3 columns: userId, movieId, rating")
    users, movies = s.ids("user_ids", "a user id"), s.ids("movie_ids", "a movie id")
    ui, mi, y = np.empty(len(grid), np.int64), np.empty(len(grid), np.int64), np.empty(len(grid))
    for n, (u, m, r) in enumerate(grid):
        for v, table, out, col, what in ((u, users, ui, 0, "user"), (m, movies, mi, 1, "movie")):
            pos = table.get(id_key(v)) if v is not None and not isinstance(v, bool) else None
            if pos is None:
                raise s.fail(f"{what} id {v!r} is not in the {what} embedding table (MATCH would give #N/A)",
                             cell_name(r0 + n, c0 + col))
            out[n] = pos
        with at(book, sheet, cell_name(r0 + n, c0 + 2)):
            y[n] = checks.number(r, "a rating", **RATING)
    params = {"user_factors": s.numbers("user_factors", "a user factor"),
              "movie_factors": s.numbers("movie_factors", "a movie factor")}
    k = params["user_factors"].shape[1]
    s.expect("user_factors", params["user_factors"], (len(users), k))
    s.expect("movie_factors", params["movie_factors"], (len(movies), k))
    tab = Tab(sheet, params, {"user_rows": ui, "movie_rows": mi, "ratings": y})
    if nnet:
        for name, what in (("hidden_weights", "a hidden weight"), ("hidden_bias", "a hidden bias"),
                           ("output_weights", "an output weight"), ("output_bias", "the output bias")):
            params[name] = s.numbers(name, what)
        h = params["hidden_weights"].shape[1]
        s.expect("hidden_weights", params["hidden_weights"], (2 * k, h))
        s.expect("hidden_bias", params["hidden_bias"], (1, h))
        s.expect("output_weights", params["output_weights"], (1, h))
        s.expect("output_bias", params["output_bias"], (1, 1))
        tab.data["y_range"] = s.y_range()
    return tab


def read_tab(book: Book, sheet: str) -> Tab:
    """The checked blocks of one collab_filter tab."""
    if sheet in ("dotprod", "bias"):
        return read_crosstab(book, sheet, bias=sheet == "bias")
    return read_long(book, sheet, nnet=sheet == "nnet")
