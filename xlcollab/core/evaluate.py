"""Evaluation as users know it: seeded k-fold splits, RMSE and MAE, and ranking metrics on held-out ratings.

A model under evaluation is a `FitPredict`: a function that fits on training code tensors and returns its
predictions for the held-out (user, movie) pairs. `cross_validate` runs one over k folds of a ratings set and
reports each fold and the mean +- standard deviation.

Ranking metrics (k = 10, relevant = a held-out rating >= 4): each user's held-out movies are ranked by predicted
rating (ties by movie code); the top k of them are the recommendations. Over the users with at least one relevant
held-out movie, averaged per user:
    precision@k = relevant in the top k / number in the top k (min(k, the user's held-out movies))
    recall@k    = relevant in the top k / relevant held-out movies
    NDCG@k      = sum over the top k of rel / log2(rank + 1), divided by the same sum for the ideal order
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xlcollab.core import data
from xlcollab.errors import SettingsError

Codes = tuple[Tensor, Tensor, Tensor]  # user codes, item codes, ratings
# (train codes, held-out user codes, held-out item codes, n_users, n_items, *, times) -> predictions for the
# held-out pairs; times: (training times, held-out times) in seconds when the ratings carry them, else None
FitPredict = Callable[..., Tensor]
METRICS = ("rmse", "mae", "precision", "recall", "ndcg")


def kfold_indices(n: int, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of k folds: one seeded permutation (default_rng(seed)) cut into k near-equal parts."""
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise SettingsError(f"folds must be a whole number >= 2, got {folds!r}")
    if n < folds:
        raise SettingsError(f"{folds} folds need at least {folds} ratings, got {n}")
    perm = np.random.default_rng(seed).permutation(int(n))
    parts = np.array_split(perm, folds)
    return [(np.concatenate(parts[:f] + parts[f + 1:]), parts[f]) for f in range(folds)]


def ranking_metrics(users: np.ndarray, items: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int = 10,
                    threshold: float = 4.0) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k over held-out ratings (see the module's docstring) and `users`: how many
    users they average over. NaN when no user has a relevant held-out movie."""
    users, items = np.asarray(users), np.asarray(items)
    truth, pred = np.asarray(truth, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if len(users) == 0:
        return {"precision": math.nan, "recall": math.nan, "ndcg": math.nan, "users": 0}
    order = np.lexsort((items, -pred, users))  # by user, then prediction descending, then movie code
    u, rel = users[order], truth[order] >= threshold
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    counts = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, counts)  # 0-based rank within the user
    hit = rel & (rank < k)
    n_rel = np.add.reduceat(rel.astype(np.int64), starts)
    hits = np.add.reduceat(hit.astype(np.int64), starts)
    dcg = np.add.reduceat(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0), starts)
    ideal = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    keep = n_rel > 0
    if not keep.any():
        return {"precision": math.nan, "recall": math.nan, "ndcg": math.nan, "users": 0}
    idcg = ideal[np.minimum(n_rel[keep], k) - 1]
    return {"precision": float(np.mean(hits[keep] / np.minimum(counts[keep], k))),
            "recall": float(np.mean(hits[keep] / n_rel[keep])),
            "ndcg": float(np.mean(dcg[keep] / idcg)), "users": int(keep.sum())}


def scores(users: Tensor, items: Tensor, truth: Tensor, pred: Tensor, k: int = 10,
           threshold: float = 4.0) -> dict[str, float]:
    """RMSE, MAE and the ranking metrics of predictions for held-out ratings."""
    err = (pred.double() - truth.double()).cpu()
    out = {"rmse": math.sqrt(float(err.pow(2).mean())), "mae": float(err.abs().mean())}
    rank = ranking_metrics(users.cpu().numpy(), items.cpu().numpy(), truth.cpu().numpy(), pred.cpu().numpy(), k,
                           threshold)
    out.update({m: rank[m] for m in ("precision", "recall", "ndcg")})
    return out


@dataclass
class CVResult:
    """One row per fold (the METRICS, fit_seconds, cpu_seconds) and the settings it ran with."""

    name: str
    folds: list[dict[str, float]] = field(default_factory=list)
    k: int = 10

    def mean(self, metric: str) -> float:
        return float(np.mean([f[metric] for f in self.folds]))

    def std(self, metric: str) -> float:
        """Standard deviation over the folds (numpy's, ddof 0, as Surprise's cross_validate prints it)."""
        return float(np.std([f[metric] for f in self.folds]))

    def summary(self) -> dict[str, Any]:
        """{metric: {"mean", "std"}} for the METRICS and the seconds, plus name, folds and k."""
        out: dict[str, Any] = {"name": self.name, "folds": len(self.folds), "k": self.k}
        for m in METRICS + ("fit_seconds", "cpu_seconds"):
            out[m] = {"mean": self.mean(m), "std": self.std(m)}
        return out


def encoded_codes(ratings: Any) -> tuple[data.Encoded, Codes]:
    """A ratings source (path, DataFrame, data.Ratings or None = embedded) encoded, and its code tensors."""
    if not isinstance(ratings, data.Ratings):
        ratings = data.load_ratings(ratings)
    enc = data.encode(ratings)
    return enc, (torch.as_tensor(enc.users), torch.as_tensor(enc.items), torch.as_tensor(enc.ratings))


def cross_validate(fit_predict: FitPredict, ratings: Any = None, *, folds: int = 5, seed: int = 0, k: int = 10,
                   threshold: float = 4.0, name: str = "", on_fold: Callable[[dict[str, float]], None] | None = None,
                   codes: tuple[Codes, int, int] | None = None, times: np.ndarray | None = None) -> CVResult:
    """Fit and score `fit_predict` on each of `folds` seeded folds of `ratings` (or of ready `codes`:
    ((users, items, ratings), n_users, n_items), with their `times` if known); each fold row has the METRICS,
    fit_seconds (wall) and cpu_seconds (this process's CPU time, time.process_time)."""
    if codes is None:
        enc, all_codes = encoded_codes(ratings)
        n_users, n_items, times = len(enc.user_ids), len(enc.item_ids), enc.times
    else:
        all_codes, n_users, n_items = codes
    result = CVResult(name, k=k)
    for f, (tr, te) in enumerate(kfold_indices(len(all_codes[2]), folds, seed)):
        tr_t, te_t = torch.as_tensor(tr), torch.as_tensor(te)
        train = tuple(c[tr_t] for c in all_codes)
        tu, ti, truth = (c[te_t] for c in all_codes)
        wall, cpu = time.perf_counter(), time.process_time()
        pred = fit_predict(train, tu, ti, n_users, n_items, times=None if times is None else (times[tr], times[te]))
        row = {"fold": f + 1, **scores(tu, ti, truth, pred, k, threshold),
               "fit_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
        result.folds.append(row)
        if on_fold is not None:
            on_fold(row)
    return result
