"""Where the collab_filter tabs keep their blocks, what a solve owns and runs by default, which buttons they have."""
from __future__ import annotations

from collections.abc import Iterable

from xlcollab.sheets.common import pick_tabs

SHEETS = ("dotprod", "bias", "movielens_emb", "movielens_1hot", "nnet")   # the model tabs: what Solve works on
INTRO, WORD_EMB = "Intro", "word_emb"
TABS = (INTRO, *SHEETS[:4], WORD_EMB, SHEETS[4])   # every tab of the workbook, in order
N_USERS = N_MOVIES = 15     # the crosstab: most active users x most rated movies
N_FACTORS = 5               # embedding width of the factor sheets (15*5 + 5*15 = 150 variables < Solver's 200)
NNET_FACTORS = 4            # embedding width of the nnet tab
NNET_HIDDEN = 7             # hidden units of the nnet tab (15*4*2 + 8*7 + 7 + 7 + 1 = 191 variables < 200)
Y_RANGE = (0.0, 5.5)        # the lesson's sigmoid range for ratings 0.5..5
RATING_RANGE = (0.5, 5.0)   # MovieLens ratings: a rating outside this is refused, naming its cell
TRACE_ROWS = 101            # RMSE-by-epoch trace: start + up to 100 evenly spaced epochs
SOLVER_LIMIT = 200          # Excel Solver's variables at most: a tab beyond it says so (`xlcollab build --ratings`)

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
# The learning-rate schedule of a tab's first-order solve, where it is not constant: the nnet tab's Adam at a
# constant lr 0.1 ends anywhere in 0.23-0.25 as rounding moves its path; annealed (cosine to 0) it settles at 0.214.
SCHEDULES: dict[str, str] = {"nnet": "annealed"}

# The macros of xlcollab.excel each tab has a button for (the .xlsm writer reads this; it knows no tab names).
BUTTONS: dict[str, tuple[str, ...]] = {sheet: ("solve", "fit_movielens") if sheet == SHEETS[0] else ("solve",)
                                       for sheet in SHEETS}


def tabs(sheets: str | Iterable[str], *, path: str | None = None) -> list[str]:
    """The collab_filter tabs a Solve acts on: "all", one tab or several; any other name is refused."""
    return pick_tabs(sheets, SHEETS, "Solve works on the collab_filter tabs", path=path)
