"""The `results` sheet Fit MovieLens writes: what a fitted model learned, laid out as values and two native charts.

Four blocks, top to bottom: train and validation RMSE by epoch (line chart beside it); the best and worst movies by
learned bias; the movies on the first two principal axes of their factors (scatter chart beside it); the top 10
recommendations for each user of the crosstab. A sheet layout in plain data (`SheetSpec`), so every Book backend
builds the same sheet.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from xlcollab.book.spec import Chart, SheetSpec
from xlcollab.errors import SettingsError, XlcollabError

if TYPE_CHECKING:
    from xlcollab.core.data import Ratings
    from xlcollab.core.fit import CollabFit

RESULTS = "results"     # the sheet's name
PCA_MOVIES = 50         # movies shown on the principal-axes scatter (the most rated)
CHART_ROWS = 20         # rows a chart beside a block covers: the next block starts below it


class _Cells(dict):
    """{(row, col): value}, 0-based, written block by block; `grid()` gives the rectangular list of rows."""

    def row(self, r: int, c: int, *values: Any) -> None:
        for i, v in enumerate(values):
            self[r, c + i] = v

    def grid(self) -> list[list[Any]]:
        rows, cols = max(r for r, _ in self) + 1, max(c for _, c in self) + 1
        return [[self.get((r, c)) for c in range(cols)] for r in range(rows)]


def results_sheet(est: CollabFit, ratings: Ratings) -> SheetSpec:
    """The whole sheet for a fitted model and the ratings it was fitted to."""
    cells, charts = _Cells(), []
    s = est.settings_
    cells[0, 0] = (f"xlcollab fit of {ratings.source}: model {s['model']}, {s['n_factors']} factors, {s['epochs']} "
                   f"epochs, {s['optimizer']} lr {s['lr']}, validation RMSE {est.valid_rmse_:.4f}"
                   + ("" if est.sessions_ is None else f" ({est.model_valid_rmse_:.4f} by epoch below, without the "
                                                        f"session effects of each rating's time)"))
    r = _rmse_by_epoch(cells, charts, est, 2)
    r = _bias_ranking(cells, est, r)
    r = _principal_axes(cells, charts, est, r)
    _recommendations(cells, est, ratings, r)
    return SheetSpec(RESULTS, cells.grid(), charts, widths={"A": 44, "C": 14, "F": 40})


def _rmse_by_epoch(cells: _Cells, charts: list[Chart], est: CollabFit, r0: int) -> int:
    cells.row(r0, 0, "epoch", "train RMSE", "validation RMSE")
    for i, row in enumerate(est.trace_, start=r0 + 1):
        cells.row(i, 0, int(row["epoch"]), float(row["train_rmse"]), _finite(row["valid_rmse"]))
    first, last = r0 + 2, r0 + 1 + len(est.trace_)  # 1-based rows of the data
    charts.append(Chart("line", "RMSE by epoch", "epoch", "RMSE", f"A{first}:A{last}",
                        [("train RMSE", f"B{first}:B{last}"), ("validation RMSE", f"C{first}:C{last}")], f"E{r0 + 1}"))
    return max(last - 1, r0 + CHART_ROWS) + 3


def _bias_ranking(cells: _Cells, est: CollabFit, r0: int) -> int:
    from xlcollab.core import interpret
    try:
        best, worst = interpret.bias_ranking(est, n=10)
    except SettingsError as exc:  # a model without biases
        cells[r0, 0] = f"no bias ranking: {exc}"
        return r0 + 2
    for col, title, table in ((0, "best movies by learned bias (of the 1,000 most rated)", best),
                              (5, "worst movies by learned bias", worst)):
        cells[r0, col] = title
        cells.row(r0 + 1, col, "title", "bias", "ratings")
        for i in range(len(table)):
            cells.row(r0 + 2 + i, col, table["title"][i], float(table["bias"][i]), int(table["ratings"][i]))
    return r0 + 2 + max(len(best), len(worst)) + 2


def _principal_axes(cells: _Cells, charts: list[Chart], est: CollabFit, r0: int) -> int:
    from xlcollab.core import interpret
    coords, explained = interpret.factor_pca(est, n_components=2, top=PCA_MOVIES)
    second = explained[1] if len(explained) > 1 else 0
    cells[r0, 0] = (f"first two principal axes of the movie factors ({PCA_MOVIES} most rated movies; "
                    f"variance explained {explained[0]:.0%} and {second:.0%})")
    cells.row(r0 + 1, 0, "title", "axis 1", "axis 2")
    for i in range(len(coords)):
        cells.row(r0 + 2 + i, 0, coords["title"][i], float(coords["pc1"][i]),
                  float(coords["pc2"][i]) if "pc2" in coords else 0.0)
    last = r0 + 2 + len(coords)  # 1-based row of the last movie
    charts.append(Chart("scatter", "Movies on the first two principal axes of their factors", "axis 1", "axis 2",
                        f"B{r0 + 3}:B{last}", [("movies", f"C{r0 + 3}:C{last}")], f"E{r0 + 1}", 18.0, 12.0))
    return max(last, r0 + 26) + 2


def _recommendations(cells: _Cells, est: CollabFit, ratings: Ratings, r0: int) -> None:
    from xlcollab.core import data, interpret
    cells[r0, 0] = "top-10 recommendations for each user of the crosstab (movies they have not rated)"
    cells.row(r0 + 1, 0, "user", "rank", "title", "predicted rating")
    r = r0 + 2
    for user in data.crosstab(ratings, 15).index.tolist():
        try:
            top = interpret.recommend(est, user, 10)
        except XlcollabError:  # a user with every rating in the validation split
            continue
        for rank, (title, pred) in enumerate(zip(top["title"], top["predicted"]), start=1):
            cells.row(r, 0, _plain_id(user), rank, title, float(pred))
            r += 1


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _plain_id(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v

