"""core.tune: grids, random draws, the nested protocol (the held-out part never seen while choosing), the cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xlcollab.core import data, evaluate, tune
from xlcollab.errors import SettingsError
from tests.test_evaluate import small_ratings


def test_grid_is_the_product():
    g = tune.grid({"wd": [0.1, 0.2], "n_factors": [8, 16, 32]})
    assert len(g) == 6 and g[0] == {"wd": 0.1, "n_factors": 8} and g[-1] == {"wd": 0.2, "n_factors": 32}
    with pytest.raises(SettingsError, match="list of values for wd"):
        tune.grid({"wd": (0.1, 0.2)})


def test_random_candidates_seeded_and_in_range():
    space = {"lr": (0.001, 0.1), "epochs": (3, 30), "n_factors": [8, 16]}
    a, b = tune.random_candidates(space, 20, seed=1), tune.random_candidates(space, 20, seed=1)
    assert a == b and len(a) == 20
    assert all(0.001 <= c["lr"] <= 0.1 and 3 <= c["epochs"] <= 30 and c["n_factors"] in (8, 16) for c in a)
    assert all(isinstance(c["epochs"], int) for c in a)
    logs = np.log([c["lr"] for c in tune.random_candidates({"lr": (0.001, 0.1)}, 400, seed=2)])
    assert abs(np.median(logs) - np.log(0.01)) < 0.4  # log-uniform: the median near the geometric middle
    with pytest.raises(SettingsError):
        tune.random_candidates(space, 0)


def shrunk_user_mean(seen: list):
    """A FitPredict per shrinkage lam: the user's mean rating shrunk towards the global mean; records what it saw."""
    def make(cand):
        lam = cand["lam"]

        def fit_predict(train, users, items, n_users, n_items, times=None):
            u, i, r = train
            seen.append(set(zip(u.tolist(), i.tolist())))
            mu = r.double().mean()
            s = torch.zeros(n_users, dtype=torch.float64).index_add_(0, u, r.double() - mu)
            c = torch.zeros(n_users, dtype=torch.float64).index_add_(0, u, torch.ones_like(r, dtype=torch.float64))
            return (mu + s / (c + lam))[users]
        return fit_predict
    return make


def test_tune_chooses_by_cv_of_the_training_part_only():
    ratings = small_ratings(80, 40, seed=3)
    seen: list = []
    cands = [{"lam": x} for x in (0.0, 2.0, 10.0, 1000.0)]
    res = tune.tune(shrunk_user_mean(seen), ratings, cands, folds=3, cv_seed=5, valid_pct=0.25, seed=11)
    enc = data.encode(ratings)
    tr, te = data.split_indices(len(enc.ratings), 0.25, 11)
    held = set(zip(enc.users[te].tolist(), enc.items[te].tolist()))
    assert len(seen) == 4 * 3 + 1  # 4 candidates x 3 folds, then the refit of the best
    assert all(not (s & held) for s in seen)  # no held-out rating was ever trained on
    assert len(seen[-1]) == len(tr)  # the refit sees the whole training part
    # the same scores by hand: cross_validate on the training codes
    train = tuple(torch.as_tensor(c[tr]) for c in (enc.users, enc.items, enc.ratings))
    sizes = (len(enc.user_ids), len(enc.item_ids))
    by_hand = {c["lam"]: evaluate.cross_validate(shrunk_user_mean([])(c), codes=(train, *sizes), folds=3,
                                                 seed=5).mean("rmse") for c in cands}
    assert res.best == {"lam": min(by_hand, key=by_hand.get)}
    assert [r["rmse"]["mean"] for r in res.rows] == pytest.approx(sorted(by_hand.values()))
    truth = enc.ratings[te].astype(np.float64)
    pred = shrunk_user_mean([])(res.best)(train, torch.as_tensor(enc.users[te]), torch.as_tensor(enc.items[te]),
                                          *sizes).numpy()
    assert res.held_out["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)))
    assert (res.n_train, res.n_held_out) == (len(tr), len(te))


def test_tune_resumes_from_its_cache(tmp_path):
    ratings = small_ratings(30, 20)
    cache = tmp_path / "tune.jsonl"
    cands = [{"lam": 1.0}, {"lam": 5.0}]
    first = tune.tune(shrunk_user_mean([]), ratings, cands, folds=2, cache=cache)
    with cache.open("a") as fh:
        fh.write('{"key": "cut sh')  # an interrupted write
    seen: list = []
    again = tune.tune(shrunk_user_mean(seen), ratings, cands + [{"lam": 9.0}], folds=2, cache=cache)
    assert len(seen) == 2 + 1  # only the new candidate's 2 folds, then the refit
    assert {str(r["settings"]): r["rmse"]["mean"] for r in first.rows}.items() <= \
        {str(r["settings"]): r["rmse"]["mean"] for r in again.rows}.items()


def test_tune_refuses_nonsense():
    ratings = small_ratings(20, 10)
    with pytest.raises(SettingsError, match="no candidate"):
        tune.tune(shrunk_user_mean([]), ratings, [])
    with pytest.raises(SettingsError, match="metric"):
        tune.tune(shrunk_user_mean([]), ratings, [{"lam": 1.0}], metric="auc")
