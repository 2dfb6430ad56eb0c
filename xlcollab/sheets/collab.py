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

if TYPE_CHECKING:
    from xlcollab.book import Book

SHEETS = ("dotprod", "bias", "movielens_emb", "movielens_1hot", "nnet")
N_USERS = N_MOVIES = 15     # the crosstab: most active users x most rated movies
N_FACTORS = 5               # embedding width of the factor sheets (15*5 + 5*15 = 150 variables < Solver's 200)
NNET_FACTORS = 4            # embedding width of the nnet tab
NNET_HIDDEN = 7             # hidden units of the nnet tab (15*4*2 + 8*7 + 7 + 7 + 1 = 191 variables < 200)
Y_RANGE = (0.0, 5.5)        # the lesson's sigmoid range for ratings 0.5..5
RATING_RANGE = (0.5, 5.0)   # MovieLens ratings: a rating outside this is refused, naming its cell
TRACE_ROWS = 101            # RMSE-by-epoch trace: start + up to 100 evenly spaced epochs

# Per tab: the parameter blocks a solve owns (written back), in Solver's solver_adj order.
PARAMS = {
    "dotprod": ("movie_factors", "user_factors"),
    "bias": ("movie_factors", "user_factors", "movie_bias", "user_bias"),
    "movielens_emb": ("user_factors", "movie_factors"),
    "movielens_1hot": ("user_factors", "movie_factors"),
    "nnet": ("user_factors", "movie_factors", "hidden_weights", "hidden_bias", "output_weights", "output_bias"),
}
# Every tab also owns its `trace` and `last_run` blocks.

# What one `xlcollab solve` with no flags runs per tab: (optimizer, lr, epochs). Chosen so each tab gets
# close to its optimum in well under a second (see the README's table for the RMSEs they reach).
DEFAULTS: dict[str, tuple[str, float, int]] = {
    "dotprod": ("lbfgs", 1.0, 200),
    "bias": ("adam", 0.05, 1000),
    "movielens_emb": ("lbfgs", 1.0, 200),
    "movielens_1hot": ("lbfgs", 1.0, 200),
    "nnet": ("adam", 0.1, 1000),
}


def build_workbook(path: str | Path, *, seed: int = 42) -> Path:
    """Write collab_filter.xlsx to `path` (deterministic: same seed, same bytes)."""
    from xlcollab.sheets.collab_build import build_workbook as build

    return build(Path(path), seed=seed)


def solve_book(book: "Book", sheets: list[str] | str = "all", *, optimizer: str | None = None, lr: float | None = None,
               epochs: int | None = None, wd: float | None = None, device: str = "auto") -> dict[str, dict[str, Any]]:
    """Fit each tab's parameters to its ratings with torch and buffer the write-back; the caller commits."""
    from xlcollab.sheets.collab_solve import solve_book as solve

    return solve(book, sheets, optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device)
