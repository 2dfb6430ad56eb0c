"""Session effects (core.sessions): the sittings and their shrunk mean residuals against a brute-force reading of
the rule, their effect on a fit with planted sitting shifts, what they may and may not see, save/load, cv, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from xlcollab.core import data, evaluate, sessions
from xlcollab.core.fit import CollabFit, fit_predict
from xlcollab.errors import DataError


def brute_force(users, times, residuals, gap, shrink, q_users, q_times):
    """The documented rule, one pair at a time: sittings are runs of a user's ratings each at most gap after the one
    before; a query takes the sitting of the user's training rating nearest in time, if within gap."""
    out = []
    for u, t in zip(q_users, q_times):
        mine = np.flatnonzero(users == u)
        if len(mine) == 0:
            out.append(0.0)
            continue
        order = mine[np.argsort(times[mine], kind="stable")]
        ts = times[order]
        sitting = np.cumsum(np.r_[True, np.diff(ts) > gap])
        nearest = np.argmin(np.abs(ts - t))
        if abs(ts[nearest] - t) > gap:
            out.append(0.0)
            continue
        members = order[sitting == sitting[nearest]]
        out.append(residuals[members].sum() / (len(members) + shrink))
    return np.array(out)


@pytest.mark.parametrize("seed,scale", [(0, 1), (1, 1), (2, 1), (3, 10 ** 14)])
def test_shift_is_the_documented_rule(seed, scale):
    """scale 10**14: times so far apart that user * time overflows 63 bits (the ranked keys)."""
    g = np.random.default_rng(seed)
    users, times = g.integers(0, 6, 400), g.integers(0, 30_000, 400) * scale
    residuals = g.normal(size=400)
    found = sessions.fit(users, times, residuals, gap=600 * scale, shrink=1.5)
    q_users, q_times = g.integers(0, 7, 800), g.integers(-2_000, 33_000, 800) * scale  # user 6: no training rating
    want = brute_force(users, times, residuals, 600 * scale, 1.5, q_users, q_times)
    assert np.allclose(found.shift(q_users, q_times), want, atol=1e-6)
    assert (want != 0).mean() > 0.3 and (want == 0).mean() > 0.05  # both kinds of query occur
    assert np.allclose(found.shift(users, times), brute_force(users, times, residuals, 600 * scale, 1.5, users, times),
                       atol=1e-6)


def planted_sittings(seed: int = 0) -> pd.DataFrame:
    """Ratings = user + movie effects + a shift shared by each sitting (ratings 20 s apart, sittings days
    apart) + noise: what session effects model and a plain biased dot product cannot."""
    g = np.random.default_rng(seed)
    rows = []
    bu, bi = g.normal(0, 0.3, 60), g.normal(0, 0.4, 80)
    for u in range(60):
        movies = g.choice(80, 72, replace=False).reshape(6, 12)  # each movie once per user
        for s in range(6):
            shift, start = g.normal(0, 0.8), 1_000_000 + s * 86_400 * 3
            for k, i in enumerate(movies[s]):
                rows.append((u, i, 3.0 + bu[u] + bi[i] + shift + g.normal(0, 0.2), start + 20 * k))
    f = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return f.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_planted_sitting_shifts_are_learnt_and_the_valid_rmse_says_so():
    ratings = data.load_ratings(planted_sittings())
    kw = dict(n_factors=4, epochs=20, y_range=None, clip=False, seed=0)
    with_ = CollabFit(**kw).fit(ratings)
    without = CollabFit(**kw, session_gap=0).fit(ratings)
    assert without.sessions_ is None and without.valid_rmse_ == without.model_valid_rmse_
    assert len(with_.sessions_) == 60 * 6  # each planted sitting found, nothing merged or split
    assert with_.model_valid_rmse_ == pytest.approx(without.valid_rmse_, rel=1e-6)  # same model underneath
    assert without.valid_rmse_ > 0.6 and with_.valid_rmse_ < 0.5 * without.valid_rmse_


def test_sittings_come_from_training_times_and_residuals_only():
    """Changing the held-out ratings' values changes nothing the session effects hold."""
    f = planted_sittings(1)
    _, valid = data.split_indices(len(f), 0.2, 42)
    g = f.copy()
    g.loc[valid, "rating"] = 1.0
    a, b = (CollabFit(n_factors=2, epochs=3).fit(data.load_ratings(x)) for x in (f, g))
    for field in ("users", "starts", "ends", "bias"):
        assert np.array_equal(getattr(a.sessions_, field), getattr(b.sessions_, field))


def test_no_timestamps_no_session_effects(small_ratings):
    frame = small_ratings.frame.drop(columns="timestamp")
    fit = CollabFit(n_factors=4, epochs=2).fit(data.load_ratings(frame))
    assert fit.sessions_ is None and fit.valid_rmse_ == fit.trace_[-1]["valid_rmse"]


def test_predict_with_times_and_its_checks(small_ratings):
    fit = CollabFit(n_factors=4, epochs=2).fit(small_ratings)
    f = small_ratings.frame.iloc[:50]
    plain = fit.predict(f["user"], f["item"])
    timed = fit.predict(f["user"], f["item"], f["timestamp"])
    shift = fit.sessions_.shift(fit.user_codes(f["user"]), f["timestamp"].to_numpy())
    lo, hi = fit.rating_range_
    assert np.allclose(timed, np.clip(plain + shift, lo, hi), atol=1e-6) and (shift != 0).any()
    with pytest.raises(DataError, match="one time per pair, got 3 times for 50 pairs"):
        fit.predict(f["user"], f["item"], f["timestamp"][:3])


def test_save_load_keeps_the_sittings_and_refuses_bad_ones(tmp_path, small_ratings):
    fit = CollabFit(n_factors=4, epochs=2).fit(small_ratings)
    f = small_ratings.frame
    path = fit.save(tmp_path / "m.pt")
    back = CollabFit.load(path)
    assert np.array_equal(back.predict(f["user"], f["item"], f["timestamp"]),
                          fit.predict(f["user"], f["item"], f["timestamp"]))
    assert back.model_valid_rmse_ == fit.model_valid_rmse_
    blob = torch.load(path, weights_only=True)
    blob["sessions"]["users"] = blob["sessions"]["users"].flip(0)
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="bad.pt: damaged xlcollab model file: the sessions are not sittings sorted"):
        CollabFit.load(tmp_path / "bad.pt")


def test_cross_validation_hands_each_fold_its_times(small_ratings):
    """cross_validate gives a FitPredict the times of its training and held-out rows, in the folds' order."""
    enc = data.encode(small_ratings)
    seen = []

    def spy(train, users, items, n_users, n_items, times=None):
        seen.append(times)
        return torch.full((len(users),), float(train[2].mean()))
    evaluate.cross_validate(spy, small_ratings, folds=3, seed=5)
    for (tr, te), times in zip(evaluate.kfold_indices(len(enc.ratings), 3, 5), seen):
        assert np.array_equal(times[0], enc.times[tr]) and np.array_equal(times[1], enc.times[te])
    with_ = evaluate.cross_validate(fit_predict(n_factors=4, epochs=3), small_ratings, folds=3).mean("rmse")
    without = evaluate.cross_validate(fit_predict(n_factors=4, epochs=3, session_gap=0), small_ratings,
                                      folds=3).mean("rmse")
    assert with_ < without


def test_cli_fit_reports_the_sittings(tmp_path, capsys):
    from xlcollab.cli import main

    csv = tmp_path / "r.csv"
    planted_sittings(2).to_csv(csv, index=False)
    assert main(["fit", str(csv), "--factors", "2", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "session effects: 360 sittings of the training ratings (gap 2 min, shrink 1); valid RMSE without them" \
        in out
    assert main(["fit", str(csv), "--factors", "2", "--epochs", "3", "--json", "--session-gap", "0"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["sessions"] is None and got["valid_rmse"] == got["model_valid_rmse"]
