"""The collab_filter workbook: five tabs of collaborative filtering in cells, solved by torch instead of Solver.

Tabs (SHEETS), each a complete model whose objective is one RMSE formula cell:
  dotprod         15x15 crosstab of ratings, 5x15 movie factors, 15x5 user factors, a dot product per cell
  bias            the same plus a user-bias column, a movie-bias row and a sigmoid squash switched by a cell
  movielens_emb   the same ratings in long form; INDEX/MATCH embedding lookups, SUMPRODUCT, SQRT(AVERAGE(err))
  movielens_1hot  one-hot rows x the embedding matrices (MMULT): the lookup as a matrix product
  nnet            concatenated embeddings -> hidden layer (MMULT, MAX(0,.)) -> output unit -> sigmoid range

Layout and building live in `collab_build`, reading / fitting / writing back in `collab_solve`; both
talk about cells only through the sheet-scoped defined names below, so a solve works on any Book
(a file through FileBook, a live Excel workbook through xlwings) whose tabs carry those names.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlcollab.sheets.collab.layout import (BUTTONS, DEFAULTS, N_FACTORS, N_MOVIES, N_USERS, NNET_FACTORS,  # noqa: F401
                                           NNET_HIDDEN, PARAMS, RATING_RANGE, SHEETS, TRACE_ROWS, Y_RANGE, tabs)

if TYPE_CHECKING:
    from xlcollab.book.base import Book


def build_workbook(path: str | Path, *, seed: int = 42) -> Path:
    """Write collab_filter.xlsx to `path` (deterministic: same seed, same bytes)."""
    from xlcollab.sheets.collab.build import build_workbook as build

    return build(Path(path), seed=seed)


def solve_book(book: "Book", sheets: list[str] | str = "all", *, optimizer: str | None = None, lr: float | None = None,
               epochs: int | None = None, wd: float | None = None, device: str = "auto",
               multistart: int = 0) -> dict[str, dict[str, Any]]:
    """Solve each tab's Solver model (its formulas, compiled) with the tab's settings; buffer the write-back."""
    from xlcollab.sheets.collab.solve import solve_book as solve

    return solve(book, sheets, optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device, multistart=multistart)


def is_tab(book: "Book", sheet: str) -> bool:
    """Whether `sheet` is one of our collab_filter tabs (its name, and the "last run" block it writes)."""
    return sheet in SHEETS and "last_run" in book.names(sheet)
