"""core.bmf: the Gibbs sampler's pieces against closed forms (Bayesian linear regression, Wishart moments, SVD)
and the whole sampler on a planted low-rank problem."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xlcollab.core import bmf


def test_wishart_draws_have_its_mean():
    rng = np.random.default_rng(0)
    scale = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]])
    draws = np.array([bmf._wishart(scale, 7.0, rng) for _ in range(4000)])
    assert np.allclose(draws.mean(0), 7.0 * scale, atol=0.15)
    # var(W_ij) = df (s_ij^2 + s_ii s_jj)
    var = 7.0 * (scale ** 2 + np.outer(np.diag(scale), np.diag(scale)))
    assert np.allclose(draws.var(0), var, rtol=0.15, atol=0.02)


def test_hyperparameters_concentrate_on_the_rows_distribution():
    rng = np.random.default_rng(1)
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    x = torch.as_tensor(rng.multivariate_normal([1.0, -0.5], cov, 20000), dtype=torch.float32)
    draws = [bmf.sample_hyper(x, rng) for _ in range(20)]
    mu = np.mean([d[0].numpy() for d in draws], 0)
    lam = np.mean([d[1].numpy() for d in draws], 0)
    assert np.allclose(mu, [1.0, -0.5], atol=0.02)
    assert np.allclose(lam, np.linalg.inv(cov), rtol=0.05)


def regression_problem(seed=0):
    """Three rows with 5, 40 and 1 observations of a 3-dimensional partner."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.tensor([0] * 5 + [1] * 40 + [2])
    partner = torch.randn(len(rows), 3, generator=g)
    target = torch.randn(len(rows), generator=g)
    mu = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    lam = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]], dtype=torch.float64)
    return partner, target, rows, mu, lam


def closed_form(partner, target, rows, mu, lam, alpha):
    """Bayesian linear regression per row in numpy: precision lam + alpha X'X, mean prec^-1 (lam mu + alpha X't)."""
    out = []
    for r in range(3):
        x = partner[rows == r].double().numpy()
        t = target[rows == r].double().numpy()
        prec = lam.numpy() + alpha * x.T @ x
        out.append((np.linalg.solve(prec, lam.numpy() @ mu.numpy() + alpha * x.T @ t), np.linalg.inv(prec)))
    return out


def test_row_posteriors_equal_bayesian_linear_regression():
    partner, target, rows, mu, lam = regression_problem()
    want = closed_form(partner, target, rows, mu, lam, 1.7)
    mean = bmf.sample_rows(partner, target, rows, 3, mu, lam, 1.7, None)
    for r in range(3):
        assert np.allclose(mean[r].numpy(), want[r][0], atol=1e-5)
    # 6000 copies of the three rows in one batch: 6000 independent draws of each posterior
    copies = 6000
    many = (rows.repeat(copies) + 3 * torch.arange(copies).repeat_interleave(len(rows)))
    g = torch.Generator().manual_seed(0)
    draws = bmf.sample_rows(partner.repeat(copies, 1), target.repeat(copies), many, 3 * copies, mu, lam, 1.7, g)
    draws = draws.double().reshape(copies, 3, 3)
    for r in range(3):
        assert np.allclose(draws[:, r].mean(0).numpy(), want[r][0], atol=0.03)
        assert np.allclose(np.cov(draws[:, r].numpy(), rowvar=False), want[r][1], atol=0.02, rtol=0.08)


def test_a_row_without_ratings_draws_from_its_prior():
    partner, target, rows, mu, lam = regression_problem()
    mean = bmf.sample_rows(partner, target, rows, 4, mu, lam, 1.0, None)  # row 3 has no ratings
    assert np.allclose(mean[3].numpy(), mu.numpy(), atol=1e-6)


def test_chain_keeps_the_average_product_exactly_then_its_best_low_rank_cut():
    g = torch.Generator().manual_seed(0)
    draws = [(torch.randn(30, 4, generator=g, dtype=torch.float64), torch.randn(20, 4, generator=g,
                                                                                  dtype=torch.float64))
             for _ in range(5)]
    want = sum(u @ v.T for u, v in draws) / 5
    exact = bmf.Chain(mean=0.0, rank=20)  # 5 draws x 4 = 20 columns: nothing is cut
    cut = bmf.Chain(mean=0.0, rank=3)
    for u, v in draws:
        for c in (exact, cut):
            c.add(u, v, torch.zeros(30, dtype=torch.float64), torch.zeros(20, dtype=torch.float64))
    m = exact.model()
    assert np.allclose((m.u_weight.weight @ m.i_weight.weight.T).detach().double().numpy(), want.numpy(), atol=1e-5)
    a, s, bt = np.linalg.svd(want.numpy())
    best3 = (a[:, :3] * s[:3]) @ bt[:3]
    m3 = cut.model()
    got = (m3.u_weight.weight @ m3.i_weight.weight.T).detach().double().numpy()
    # repeated cuts lose a little against the one-shot best cut, never much
    assert np.linalg.norm(got - want.numpy()) <= 1.05 * np.linalg.norm(best3 - want.numpy())


def planted(n_users=120, n_items=80, k=3, density=0.5, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, v = torch.randn(n_users, k, generator=g), torch.randn(n_items, k, generator=g)
    bu, bi = 0.5 * torch.randn(n_users, generator=g), 0.5 * torch.randn(n_items, generator=g)
    mask = torch.rand(n_users, n_items, generator=g) < density
    users, items = mask.nonzero(as_tuple=True)
    clean = 3 + (u[users] * v[items]).sum(1) + bu[users] + bi[items]
    ratings = clean + noise * torch.randn(len(users), generator=g)
    perm = torch.randperm(len(users), generator=g)
    cut = int(0.8 * len(perm))
    tr, te = perm[:cut], perm[cut:]
    return (users[tr], items[tr], ratings[tr]), (users[te], items[te], ratings[te]), clean[te]


def test_gibbs_recovers_a_planted_low_rank_matrix():
    train, valid, clean = planted()
    rows = []
    chain, trace = bmf.gibbs(train, 120, 80, n_factors=3, sweeps=40, burn_in=15, seed=0, valid=valid,
                             on_sweep=rows.append)
    assert rows == trace and len(trace) == 40 and chain.draws == 25
    model = chain.model()
    with torch.no_grad():
        pred = model(valid[0], valid[1])
    rmse_clean = float((pred - clean).pow(2).mean().sqrt())
    assert rmse_clean < 0.2  # the noise is 0.3; ~800 parameters from 3,840 ratings: error ~0.3 * sqrt(2 * 800 / 3840)
    assert trace[-1]["alpha"] == pytest.approx(1 / 0.3 ** 2, rel=0.25)  # the noise precision is learned
    again, _ = bmf.gibbs(train, 120, 80, n_factors=3, sweeps=40, burn_in=15, seed=0)
    with torch.no_grad():
        assert torch.equal(again.model()(valid[0], valid[1]), pred)


def test_collab_fit_bmf_saves_loads_recommends_and_explains(tmp_path):
    import pandas as pd

    from xlcollab.core import interpret
    from xlcollab.core.fit import CollabFit

    train, valid, _ = planted(60, 50, seed=2)
    u, i, r = (torch.cat([a, b]) for a, b in zip(train, valid))
    frame = pd.DataFrame({"user": u.numpy() + 100, "item": i.numpy() + 7, "rating": r.numpy().clip(0.5, 5.0)})
    rows = []
    est = CollabFit(model="bmf", epochs=24, seed=3).fit(frame, callback=rows.append)
    s = est.settings_
    assert (s["n_factors"], s["epochs"]) == (6, 24) and len(rows) == 24 and est.trace_ == rows
    assert est.model_.y_range is None and s["kept_factors"] == est.model_.u_weight.weight.shape[1] <= 128
    assert est.valid_rmse_ == pytest.approx(est.valid_scores_["rmse"], rel=1e-6)  # the trace's running mean
    assert set(est.valid_scores_) == {"rmse", "mae", "precision", "recall", "ndcg"}
    path = est.save(tmp_path / "bmf.pt")
    back = CollabFit.load(path)
    users, items = frame["user"].to_numpy()[:50], frame["item"].to_numpy()[:50]
    assert np.array_equal(back.predict(users, items), est.predict(users, items))
    assert (back.predict(users, items) >= 0.5).all() and (back.predict(users, items) <= 5.0).all()
    recs = interpret.recommend(back, 100, 5)
    assert len(recs) == 5 and not set(recs["movie"]) & set(frame.loc[frame["user"] == 100, "item"])
    assert len(interpret.similar(back, 7, 3)) == 3
    best, worst = interpret.bias_ranking(back, 3)
    assert best["bias"].iloc[0] >= worst["bias"].iloc[0]
