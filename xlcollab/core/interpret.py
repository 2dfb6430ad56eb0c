"""What a fitted model learned, as DataFrames: bias ranking, principal axes of the movie factors,
recommendations and similar movies (the fast.ai lesson's interpretation; reused by the Excel UDFs).

Every function is pure: it reads a fitted `CollabFit` and returns new DataFrames.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from xlcollab.errors import SettingsError
from xlcollab.core.fit import CollabFit


def most_rated(fit: CollabFit, top: int | None = 1000) -> np.ndarray:
    """Codes of the `top` most-rated movies (most first, ties by id); None = all movies."""
    counts = fit.item_counts_
    order = np.lexsort((np.arange(len(counts)), -counts))
    return order if top is None else order[:top]


def _frame(fit: CollabFit, codes: np.ndarray, **columns: Any) -> pd.DataFrame:
    ids = fit.item_ids_[codes]
    df = pd.DataFrame({"movie": ids, "title": [fit.title(m) for m in ids], **columns,
                       "ratings": fit.item_counts_[codes]})
    return df.reset_index(drop=True)


def item_biases(fit: CollabFit) -> np.ndarray:
    """Each movie's learned bias; SettingsError for a model without biases."""
    model = fit.model_
    if not hasattr(model, "item_bias"):
        raise SettingsError(f"model '{fit.settings_['model']}' has no movie biases (fit with --model dotbias)")
    return model.item_bias.detach().cpu().numpy().astype(np.float64)


def bias_ranking(fit: CollabFit, n: int = 10, top: int | None = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best, worst): the n movies with the highest and lowest learned bias among the `top` most rated."""
    codes = most_rated(fit, top)
    bias = item_biases(fit)[codes]
    order = np.argsort(-bias, kind="stable")
    best, worst = codes[order[:n]], codes[order[::-1][:n]]
    return (_frame(fit, best, bias=item_biases(fit)[best]), _frame(fit, worst, bias=item_biases(fit)[worst]))


def item_factors(fit: CollabFit) -> np.ndarray:
    """The movie factor (embedding) matrix, n_items x n_factors."""
    return fit.model_.item_factors.detach().cpu().numpy().astype(np.float64)


def factor_pca(fit: CollabFit, n_components: int = 3, top: int | None = 1000) -> tuple[pd.DataFrame, np.ndarray]:
    """(coords, explained): the `top` most-rated movies' factors projected on their first principal axes.

    coords has columns movie, title, pc1..pcK, ratings; explained is each axis's share of the variance.
    Signs are fixed so that each axis's most extreme movie scores positive (axes are otherwise +/- arbitrary).
    """
    codes = most_rated(fit, top)
    x = item_factors(fit)[codes]
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(n_components, vt.shape[0])
    scores = x @ vt[:k].T
    for j in range(k):
        if scores[np.argmax(np.abs(scores[:, j])), j] < 0:
            scores[:, j] *= -1
    var = s ** 2
    explained = var[:k] / var.sum() if var.sum() > 0 else np.zeros(k)
    return _frame(fit, codes, **{f"pc{j + 1}": scores[:, j] for j in range(k)}), explained


def axis_ends(coords: pd.DataFrame, axis: int, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(high, low): the n movies at each end of principal axis `axis` (1-based) of factor_pca's coords."""
    col = f"pc{axis}"
    if col not in coords:
        have = sum(c.startswith("pc") for c in coords)
        raise SettingsError(f"axis {axis} is not in these coordinates (they have {have})")
    ordered = coords.sort_values(col, ascending=False, kind="stable")
    return ordered.head(n).reset_index(drop=True), ordered.tail(n)[::-1].reset_index(drop=True)


def recommend(fit: CollabFit, user: Any, n: int = 10, include_seen: bool = False) -> pd.DataFrame:
    """The n movies with the highest predicted rating for `user` (an original id) that the user has not rated."""
    code = int(fit.user_codes(user))
    dev = next(fit.model_.parameters()).device
    items = torch.arange(len(fit.item_ids_), device=dev)
    pred = fit.predict_codes(torch.full_like(items, code), items).cpu().numpy().astype(np.float64)
    if not include_seen:
        pred[fit.seen(code)] = -np.inf
    order = np.lexsort((np.arange(len(pred)), -pred))
    order = order[np.isfinite(pred[order])][:n]
    return _frame(fit, order, predicted=pred[order])


def similar(fit: CollabFit, movie: Any, n: int = 10, top: int | None = None) -> pd.DataFrame:
    """The n movies whose factors point most nearly the same way as `movie`'s (cosine similarity)."""
    code = int(fit.item_codes(movie))
    f = item_factors(fit)
    norm = np.linalg.norm(f, axis=1)
    sim = f @ f[code] / np.maximum(norm * norm[code], 1e-12)
    candidates = most_rated(fit, top)
    candidates = candidates[candidates != code]
    order = candidates[np.lexsort((candidates, -sim[candidates]))][:n]
    return _frame(fit, order, similarity=sim[order])
