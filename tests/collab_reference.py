"""The collab_filter tabs written by hand as float64 torch code: an independent oracle for the compiled formulas.

Each tab's RMSE and predictions computed exactly as the tab's formulas compute them (same masking, same sigmoid,
same average), from the blocks `xlcollab.sheets.collab.blocks` reads. The solve compiles the formulas themselves
(xlcollab.solver); the tests check the two agree, and LibreOffice agrees with both.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.core.models import sigmoid_range
from xlcollab.sheets.collab.blocks import Tab, read_tab
from xlcollab.sheets.collab.layout import PARAMS

Forward = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Model:
    """One tab as torch code: its start parameters (shaped as in the sheet) and rmse/predictions of them."""
    sheet: str
    params: dict[str, np.ndarray]
    forward: Forward  # params -> (rmse, predictions shaped like the `predictions` block)

    def evaluate(self, params: dict[str, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
        """RMSE and predictions at `params` (default: the start values), in float64."""
        p = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in (params or self.params).items()}
        with torch.no_grad():
            rmse, preds = self.forward(p)
        return float(rmse), preds.numpy()


def crosstab(tab: Tab, bias: bool) -> Forward:
    ratings = tab.data["ratings"]
    mask = torch.as_tensor((~np.isnan(ratings)).astype(np.float64))
    target, count = torch.as_tensor(np.nan_to_num(ratings)), float((~np.isnan(ratings)).sum())
    squash, (lo, hi) = tab.data.get("squash", False), tab.data.get("y_range", (0.0, 1.0))

    def forward(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = p["user_factors"] @ p["movie_factors"]
        if bias:
            x = x + p["user_bias"] + p["movie_bias"]
            if squash:
                x = sigmoid_range(x, lo, hi)
        preds = x * mask                                   # IF(ISNUMBER(rating), ..., 0)
        return torch.sqrt((mask * (target - preds) ** 2).sum() / count), preds

    return forward


def long_form(tab: Tab, nnet: bool) -> Forward:
    """movielens_emb / _1hot: SUMPRODUCT(user row, movie row) (one-hot MMULT adds exact zeros: the same numbers);
    nnet: [user | movie] -> MAX(0, x.W + b) -> a.w + b -> sigmoid into the y range; RMSE = SQRT(AVERAGE(err))."""
    ui, mi = torch.as_tensor(tab.data["user_rows"]), torch.as_tensor(tab.data["movie_rows"])
    y = torch.as_tensor(tab.data["ratings"])

    def forward(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        u, m = p["user_factors"][ui], p["movie_factors"][mi]
        if nnet:
            a = torch.relu(torch.cat([u, m], 1) @ p["hidden_weights"] + p["hidden_bias"])
            preds = sigmoid_range((a * p["output_weights"]).sum(1) + p["output_bias"][0, 0], *tab.data["y_range"])
        else:
            preds = (u * m).sum(1)
        return torch.sqrt(((preds - y) ** 2).mean()), preds[:, None]

    return forward


def read_model(book: Book, sheet: str) -> Model:
    """The reference model of one tab, at the parameters in the cells."""
    tab = read_tab(book, sheet)
    forward = crosstab(tab, sheet == "bias") if sheet in ("dotprod", "bias") else long_form(tab, sheet == "nnet")
    return Model(sheet, tab.params, forward)


def params_written(book: Book, sheet: str, values: dict[str, Any]) -> dict[str, np.ndarray]:
    """The parameter blocks as a solve's write-back ({cell: value} of one sheet) sets them."""
    out = {}
    for name in PARAMS[sheet]:
        r0, c0, r1, c1 = bounds(book.ref_of(sheet, name))
        out[name] = np.array([[values[cell_name(r, c)] for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)])
    return out
