"""core.evaluate: k-fold splits, ranking metrics against a per-user reference loop, cross-validation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from xlcollab.core import data, evaluate, fit
from xlcollab.errors import SettingsError


def test_kfold_partitions_every_rating_once():
    folds = evaluate.kfold_indices(103, 5, seed=3)
    tests = [te for _, te in folds]
    assert sorted(np.concatenate(tests).tolist()) == list(range(103))
    assert {len(te) for te in tests} == {20, 21}
    for tr, te in folds:
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 103
    again = evaluate.kfold_indices(103, 5, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = evaluate.kfold_indices(103, 5, seed=4)
    assert not (folds[0][1] == other[0][1]).all()


@pytest.mark.parametrize("folds, n", [(1, 10), (0, 10), (2.5, 10), (True, 10), (5, 4)])
def test_kfold_refuses_bad_folds(folds, n):
    with pytest.raises(SettingsError, match="folds"):
        evaluate.kfold_indices(n, folds)


def reference_ranking(users, items, truth, pred, k, threshold):
    """The definitions of the module docstring, one user at a time with Python sorting."""
    per_user = {}
    for u, i, t, p in zip(users, items, truth, pred):
        per_user.setdefault(u, []).append((i, t, p))
    prec, rec, ndcg = [], [], []
    for rows in per_user.values():
        relevant = {i for i, t, _ in rows if t >= threshold}
        if not relevant:
            continue
        top = [i for i, _, _ in sorted(rows, key=lambda r: (-r[2], r[0]))[:k]]
        hits = [i in relevant for i in top]
        prec.append(sum(hits) / len(top))
        rec.append(sum(hits) / len(relevant))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        ndcg.append(dcg / idcg)
    return {"precision": np.mean(prec), "recall": np.mean(rec), "ndcg": np.mean(ndcg), "users": len(prec)}


@pytest.mark.parametrize("k", [1, 3, 10])
def test_ranking_metrics_equal_a_per_user_loop(k):
    rng = np.random.default_rng(0)
    n = 2000
    users = rng.integers(0, 60, n)
    items = rng.permutation(n)  # distinct items, so (user, item) pairs are unique
    truth = rng.integers(1, 11, n) / 2
    pred = np.round(truth + rng.normal(0, 1.0, n), 1)  # rounded: many ties, broken by movie code
    got = evaluate.ranking_metrics(users, items, truth, pred, k=k)
    want = reference_ranking(users, items, truth, pred, k, 4.0)
    for m in ("precision", "recall", "ndcg"):
        assert got[m] == pytest.approx(want[m], rel=1e-12)
    assert got["users"] == want["users"]


def test_ranking_metrics_by_hand():
    # user 0: held out 5 (rel), 3, 4 (rel); predicted order 3 > 5 > 4. k=2: top = {3, 5}
    # precision 1/2, recall 1/2, dcg = 1/log2(3), idcg = 1 + 1/log2(3)
    # user 1: one held-out 2.0 (not relevant): left out of every average
    got = evaluate.ranking_metrics([0, 0, 0, 1], [5, 3, 4, 9], [4.5, 2.0, 4.0, 2.0], [4.0, 4.2, 3.0, 5.0], k=2)
    assert got["users"] == 1
    assert got["precision"] == pytest.approx(0.5)
    assert got["recall"] == pytest.approx(0.5)
    assert got["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_perfect_predictions_rank_perfectly():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 30, 500)
    items = np.arange(500)
    truth = rng.integers(1, 11, 500) / 2
    got = evaluate.ranking_metrics(users, items, truth, truth + 1e-6 * items / 500, k=10)
    assert got["ndcg"] == pytest.approx(1.0)
    ref = reference_ranking(users, items, truth, truth + 1e-6 * items / 500, 10, 4.0)
    assert got["recall"] == pytest.approx(ref["recall"])


def test_no_relevant_rating_gives_nan():
    got = evaluate.ranking_metrics([0, 1], [0, 1], [1.0, 3.5], [2.0, 3.0])
    assert got["users"] == 0 and math.isnan(got["ndcg"])


def test_scores_rmse_mae():
    truth = torch.tensor([1.0, 2.0, 4.0, 5.0])
    pred = torch.tensor([1.5, 2.0, 3.0, 5.5])
    s = evaluate.scores(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3]), truth, pred)
    err = (pred - truth).numpy().astype(np.float64)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert s["mae"] == pytest.approx(np.mean(np.abs(err)))


def small_ratings(n_users=40, n_items=30, seed=0) -> data.Ratings:
    """A low-rank ratings set with every user and item rated several times."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(0, 0.7, (n_users, 2)), rng.normal(0, 0.7, (n_items, 2))
    pairs = [(a, b) for a in range(n_users) for b in range(n_items) if rng.random() < 0.5]
    users, items = np.array(pairs).T
    rating = np.clip(np.round((3 + (u[users] * v[items]).sum(1)) * 2) / 2, 0.5, 5)
    return data.load_ratings(pd.DataFrame({"user": users + 1, "item": items + 1, "rating": rating}))


def mean_predictor(train, users, items, n_users, n_items, times=None):
    return torch.full((len(users),), float(train[2].double().mean()))


def test_cross_validate_global_mean_closed_form():
    ratings = small_ratings()
    seen = []
    res = evaluate.cross_validate(mean_predictor, ratings, folds=4, seed=7, on_fold=seen.append, name="mean")
    assert len(res.folds) == 4 and seen == res.folds
    r = ratings.frame["rating"].to_numpy()
    for row, (tr, te) in zip(res.folds, evaluate.kfold_indices(len(r), 4, 7)):
        # codes follow the frame's row order, so fold f's test ratings are r[te]
        mu = np.float32(r[tr]).astype(np.float64).mean()
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((r[te] - mu) ** 2)), rel=1e-5)
        assert row["mae"] == pytest.approx(np.mean(np.abs(r[te] - mu)), rel=1e-5)
        assert row["cpu_seconds"] >= 0 and row["fit_seconds"] >= 0
    summary = res.summary()
    rmses = [f["rmse"] for f in res.folds]
    assert summary["rmse"]["mean"] == pytest.approx(np.mean(rmses))
    assert summary["rmse"]["std"] == pytest.approx(np.std(rmses))
    assert summary["folds"] == 4 and summary["name"] == "mean"


def test_cross_validate_collab_fit_beats_the_mean():
    ratings = small_ratings(60, 40)
    base = evaluate.cross_validate(mean_predictor, ratings, folds=3, seed=0)
    fitted = evaluate.cross_validate(fit.fit_predict(n_factors=4, epochs=30, lr=0.02, batch_size=256,
                                                     wd=0.01, wd_bias=0.001), ratings, folds=3, seed=0)
    assert fitted.mean("rmse") < base.mean("rmse") - 0.05
    assert fitted.mean("ndcg") > base.mean("ndcg")
