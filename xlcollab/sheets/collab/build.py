"""Build collab_filter.xlsx: the tabs of `xlcollab.sheets.collab`, with live formulas, from MovieLens or any ratings.

Every block a solve reads or writes is a sheet-scoped defined name; the formulas refer to plain cell
addresses (readable in the formula bar, and computed identically by Excel and LibreOffice):
  * predictions for a blank rating are 0 (shown as nothing), so the masked loss
    SQRT(SUMPRODUCT(ISNUMBER(ratings)*(ratings-predictions)^2)/COUNT(ratings)) never meets "" - number,
    and it is the RMSE over observed ratings in both engines (LibreOffice's SUMXMY2 would count blanks);
  * one-hot x embedding and the hidden layer are array formulas (MMULT), each dot product a SUMPRODUCT
    or a 1x1 MMULT.
Colours: yellow inputs (ratings, ids, settings), blue parameters (what the solve changes), green formulas,
orange the objective, grey what a solve records. The tabs: `crosstab` (dotprod, bias), `longform`
(movielens_emb, movielens_1hot, nnet), `word_emb`, `intro`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from openpyxl import Workbook

from xlcollab.sheets.collab.crosstab import build_crosstab
from xlcollab.sheets.collab.data import Data, load_data
from xlcollab.sheets.collab.intro import build_intro
from xlcollab.sheets.collab.layout import N_FACTORS, NNET_FACTORS, NNET_HIDDEN, TABS, WORD_EMB, Y_RANGE
from xlcollab.sheets.collab.longform import build_1hot, build_emb, build_nnet
from xlcollab.sheets.collab.word_emb import build_word_emb
from xlcollab.sheets.common import force_full_recalc, save_workbook


def build_workbook(path: Path, *, seed: int = 42, data: Data | None = None, n_factors: int = N_FACTORS) -> Path:
    """Write the collab_filter workbook to `path`: `data` (default: the embedded MovieLens crosstab), start values
    from `seed`, `n_factors` factors per user and movie on the factor tabs."""
    data = data or load_data()
    nu, nm, k = len(data.user_ids), len(data.movie_ids), n_factors
    wb = Workbook()
    rng = np.random.default_rng(seed)
    # fast.ai's sheets start every factor at a random value in [0, 1); the long-form tabs start where
    # dotprod starts, so all three show the same model from the same point.
    movie_factors = rng.uniform(0, 1, (k, nm)).round(4)
    user_factors = rng.uniform(0, 1, (nu, k)).round(4)
    bias_start = {
        "movie_factors": rng.uniform(0, 1, (k, nm)).round(4),
        "user_factors": rng.uniform(0, 1, (nu, k)).round(4),
        "movie_bias": rng.uniform(0, 1, (1, nm)).round(4),
        "user_bias": rng.uniform(0, 1, (nu, 1)).round(4),
    }
    builders = {
        "Intro": lambda ws: build_intro(ws, data.source),
        "dotprod": lambda ws: build_crosstab(ws, data, {"movie_factors": movie_factors, "user_factors": user_factors},
                                             bias=False),
        "bias": lambda ws: build_crosstab(ws, data, bias_start, bias=True),
        "movielens_emb": lambda ws: build_emb(ws, data, user_factors, movie_factors.T),
        "movielens_1hot": lambda ws: build_1hot(ws, data, user_factors, movie_factors.T),
        "nnet": lambda ws: build_nnet(ws, data, _nnet_start(rng, nu, nm, float(np.nanmean(data.grid)))),
        WORD_EMB: lambda ws: build_word_emb(ws, np.random.default_rng(seed)),
    }
    for name in TABS:
        builders[name](wb.active if name == TABS[0] else wb.create_sheet(name))
    force_full_recalc(wb)
    return save_workbook(wb, path)


def _nnet_start(rng: np.random.Generator, n_users: int, n_movies: int, mean_rating: float) -> dict[str, np.ndarray]:
    """Embeddings in [-1, 1); layer weights in torch.nn.Linear's default range ±1/sqrt(fan_in); the output
    bias starts where the sigmoid gives the mean rating, so the net starts from the average."""
    k, h = NNET_FACTORS, NNET_HIDDEN
    b1, b2 = 1 / np.sqrt(2 * k), 1 / np.sqrt(h)
    lo, hi = Y_RANGE
    p = (mean_rating - lo) / (hi - lo)
    return {
        "user_factors": rng.uniform(-1, 1, (n_users, k)).round(4),
        "movie_factors": rng.uniform(-1, 1, (n_movies, k)).round(4),
        "hidden_weights": rng.uniform(-b1, b1, (2 * k, h)).round(4),
        "hidden_bias": rng.uniform(-b1, b1, (1, h)).round(4),
        "output_weights": rng.uniform(-b2, b2, (1, h)).round(4),
        "output_bias": np.full((1, 1), round(float(np.log(p / (1 - p))), 4)),
    }
