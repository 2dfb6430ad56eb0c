"""The update rules: torch.optim's steps where the maths is the same, the sheets' forms where not, floats == tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xlcollab.core.checks import CheckError
from xlcollab.core.optim import LBFGS, RULES, Rule, adam, rmsprop, sgd

# (our rule, its settings, torch.optim class, torch settings): the same maths
SAME_AS_TORCH = [
    ("sgd", {"lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1}, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.5, "eps": 1e-10}, torch.optim.Adagrad, {"lr": 0.5, "eps": 1e-10}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-8}, torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8}),
    ("adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, torch.optim.Adam,
     {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("adam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1}, torch.optim.Adam,
     {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1, "decoupled": True},
     torch.optim.AdamW,
     {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}),
]


def _grads(steps: int, shape=(5, 3), seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) * 3 for _ in range(steps)]


@pytest.mark.parametrize("rule,ours,cls,theirs", SAME_AS_TORCH, ids=[f"{c[0]}-{i}" for i, c in enumerate(SAME_AS_TORCH)])
def test_same_steps_as_torch_optim(rule, ours, cls, theirs) -> None:
    start = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p_ours, state = start.clone(), {}
    p_torch = start.clone().requires_grad_(True)
    opt = cls([p_torch], **theirs)
    for g in _grads(30):
        p_ours = RULES[rule](p_ours, g, state, **ours)
        p_torch.grad = g.clone()
        opt.step()
        torch.testing.assert_close(p_ours, p_torch.detach(), rtol=1e-12, atol=1e-14)
    assert not torch.equal(p_ours, start)


@pytest.mark.parametrize("rule,ours,cls,theirs", SAME_AS_TORCH, ids=[f"{c[0]}-{i}" for i, c in enumerate(SAME_AS_TORCH)])
def test_rule_steps_equal_torch_optims_through_a_closure(rule, ours, cls, theirs) -> None:
    """Rule is torch.optim's step(closure) protocol: the same closure drives both to the same points."""
    start = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    p_ours, p_torch = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
    ours_opt, torch_opt = Rule([p_ours], rule, **ours), cls([p_torch], **theirs)
    for _ in range(30):
        for p, opt in ((p_ours, ours_opt), (p_torch, torch_opt)):
            def closure(p=p, opt=opt):
                opt.zero_grad()
                loss = ((p - target) ** 2).sum() + 0.05 * (p ** 4).sum()  # not quadratic: steps differ
                loss.backward()
                return loss
            opt.step(closure)
        torch.testing.assert_close(p_ours.detach(), p_torch.detach(), rtol=1e-12, atol=1e-14)
    assert not torch.equal(p_ours.detach(), start) and bool(torch.isfinite(p_ours).all())


def test_sheet_forms_run_in_place_as_the_rule() -> None:
    """Momentum as an exponential average and fast.ai's Adam have no torch.optim twin: Rule runs them in place."""
    for rule, settings in (("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.9}),
                           ("adam", {"lr": 0.1, "beta1": 0.7, "beta2": 0.9, "eps": 0.0, "bias_correction": False})):
        p = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        reference, state = p.detach().clone(), {}
        opt = Rule([p], rule, **settings)
        for g in _grads(10, (4, 2)):
            def closure(g=g):
                p.grad = g.clone()
                return g.sum()
            opt.step(closure)
            reference = RULES[rule](reference, g, state, **settings)
            assert torch.equal(p.detach(), reference)


def test_momentum_as_exponential_average_differs_from_torch_as_documented() -> None:
    """The sheet's m starts at 0, so its first step is (1-β)·lr·g; torch's SGD (even with dampening β) takes lr·g."""
    g, lr, beta = torch.tensor([2.0], dtype=torch.float64), 0.1, 0.9
    ours = sgd(torch.zeros(1, dtype=torch.float64), g, {}, lr=lr, momentum=beta, dampening=beta)
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=beta, dampening=beta)
    p.grad = g.clone()
    opt.step()
    assert ours.item() == pytest.approx(-(1 - beta) * lr * 2.0, rel=1e-15)
    assert p.item() == pytest.approx(-lr * 2.0, rel=1e-15)


def test_classic_adam_has_no_bias_correction_and_no_eps() -> None:
    """fast.ai's sheet: first step lr·(1-β1)·g / sqrt((1-β2)·g²), smaller than torch's bias-corrected lr·sign(g)."""
    lr, b1, b2, g = 1.0, 0.7, 0.9, -5.0
    p = adam(0.0, g, {}, lr=lr, beta1=b1, beta2=b2, eps=0.0, bias_correction=False)
    assert p == pytest.approx(lr * (1 - b1) / math.sqrt(1 - b2), rel=1e-15)
    corrected = adam(0.0, g, {}, lr=lr, beta1=b1, beta2=b2, eps=0.0, bias_correction=True)
    assert corrected == pytest.approx(lr, rel=1e-15)


def test_l2_and_decoupled_weight_decay_differ_by_one_line() -> None:
    """With zero gradient, L2 decay still moves p by ~lr (Adam rescales wd·p to unit size); AdamW by lr·wd·p."""
    lr, wd, p0 = 0.1, 0.01, 3.0
    l2 = adam(p0, 0.0, {}, lr=lr, weight_decay=wd, decoupled=False)
    decoupled = adam(p0, 0.0, {}, lr=lr, weight_decay=wd, decoupled=True)
    assert l2 == pytest.approx(p0 - lr, rel=1e-6)
    assert decoupled == pytest.approx(p0 * (1 - lr * wd), rel=1e-15)


SCALAR_CASES = [
    (sgd, {"lr": 1e-4}), (sgd, {"lr": 3e-4, "momentum": 0.9, "dampening": 0.9}),
    (RULES["adagrad"], {"lr": 5.0, "eps": 1e-10}), (rmsprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8}),
    (adam, {"lr": 1.0, "beta1": 0.7, "beta2": 0.9, "eps": 0.0, "bias_correction": False}),
    (adam, {"lr": 0.05, "weight_decay": 1e-3}), (adam, {"lr": 0.05, "weight_decay": 1e-3, "decoupled": True}),
]


@pytest.mark.parametrize("rule,settings", SCALAR_CASES)
def test_floats_and_float64_tensors_are_bit_identical(rule, settings) -> None:
    grads = [float(g) for g in _grads(1, (200,), seed=3)[0]]
    p_f, s_f = 1.0, {}
    p_t, s_t = torch.tensor(1.0, dtype=torch.float64), {}
    for g in grads:
        p_f = rule(p_f, g, s_f, **settings)
        p_t = rule(p_t, torch.tensor(g, dtype=torch.float64), s_t, **settings)
        assert p_t.item() == p_f  # exact: + - * / sqrt are correctly rounded in both
    assert {k: float(v) for k, v in s_t.items()} == {k: float(v) for k, v in s_f.items()}


@pytest.mark.parametrize("rule,bad,words", [
    ("sgd", {"lr": -0.1}, "lr must be a number > 0, found -0.1"),
    ("sgd", {"lr": float("nan")}, "lr must be a number > 0, found nan"),
    ("sgd", {"lr": "fast"}, "lr must be a number > 0, found 'fast'"),
    ("adam", {"lr": 0.1, "beta1": 1.0}, "beta1 must be a number in [0, 1), found 1.0"),
    ("adam", {"lr": 0.1, "eps": -1e-8}, "eps must be a number >= 0, found -1e-08"),
    ("sgd", {"lr": 0.1, "momentum": -0.5}, "momentum must be a number in [0, 1), found -0.5"),
    ("adam", {"lr": 0.1, "decoupled": 1}, "decoupled must be True or False, found 1"),
    ("adam", {"lr": 0.1, "betas": (0.9, 0.99)}, "unknown setting 'betas' of an update rule"),
    ("lbfgs", {"lr": 0.1}, "the update rule must be one of sgd, adagrad, rmsprop, adam, found 'lbfgs'"),
])
def test_impossible_settings_are_refused(rule, bad, words) -> None:
    with pytest.raises(CheckError) as err:
        Rule([torch.zeros(2, requires_grad=True)], rule, **bad)
    assert str(err.value) == words


def test_tensor_sqrt_is_correctly_rounded_like_math_sqrt() -> None:
    """torch's CPU sqrt can be one ulp off; the rules' sqrt on float64 tensors must equal math.sqrt exactly."""
    from xlcollab.core.optim import exact_sqrt

    gen = torch.Generator().manual_seed(5)
    x = torch.cat([torch.rand(50_000, generator=gen, dtype=torch.float64) * 10.0 ** k for k in (-200, -8, 0, 9, 200)])
    x = torch.cat([x, torch.tensor([0.0, 4.0, float("inf"), 5e-324], dtype=torch.float64)])
    got = exact_sqrt(x).tolist()
    assert got == [math.sqrt(v) for v in x.tolist()]


# -- L-BFGS (the sheet solves' default) -----------------------------------------------------------------------------
def _run_lbfgs(x: torch.Tensor, f, epochs: int) -> LBFGS:
    """`epochs` iterations of our L-BFGS through the training loop on the objective f(x)."""
    from xlcollab.core.train import train

    solver = LBFGS([x])
    train(solver, lambda _batch: (f(x), f(x).detach()), epochs)
    return solver


def test_lbfgs_minimises_a_quadratic_exactly() -> None:
    a = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    solver = _run_lbfgs(x, lambda v: 0.5 * v @ a @ v - b @ v, 20)
    assert solver.converged
    np.testing.assert_allclose(x.detach().numpy(), np.linalg.solve(a.numpy(), b.numpy()), rtol=1e-10)


def test_lbfgs_reaches_the_svd_optimum_and_torch_lbfgs_minimum() -> None:
    """RMSE of a rank-3 factorisation of a fully observed 12x10 matrix: every local minimum is the global one,
    sqrt(sum of the discarded squared singular values / n) (Eckart-Young); torch.optim.LBFGS finds it too."""
    g = np.random.default_rng(0)
    m = g.normal(size=(12, 3)) @ g.normal(size=(3, 10)) + 0.3 * g.normal(size=(12, 10))
    target = torch.as_tensor(m)
    best = math.sqrt(float((np.linalg.svd(m, compute_uv=False)[3:] ** 2).sum()) / m.size)
    start = torch.as_tensor(g.normal(scale=0.5, size=12 * 3 + 3 * 10))

    def rmse(v: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(((v[:36].view(12, 3) @ v[36:].view(3, 10) - target) ** 2).mean())

    x = start.clone().requires_grad_(True)
    _run_lbfgs(x, rmse, 500)
    assert float(rmse(x.detach())) == pytest.approx(best, rel=1e-9)
    y = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([y], max_iter=500, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = rmse(y)
        loss.backward()
        return loss
    opt.step(closure)
    assert float(rmse(x.detach())) == pytest.approx(float(rmse(y.detach())), rel=1e-6)


def _two_loop(pairs: list[tuple[np.ndarray, np.ndarray]], g: np.ndarray) -> np.ndarray:
    """-H g by Nocedal & Wright's two-loop recursion (Algorithm 7.4), H0 = (s.y / y.y of the newest pair) I."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        a = s.dot(q) / y.dot(s)
        q -= a * y
        alphas.append(a)
    s, y = pairs[-1]
    q *= s.dot(y) / y.dot(y)
    for (s, y), a in zip(pairs, reversed(alphas)):
        q += (a - y.dot(q) / y.dot(s)) * s
    return -q


def test_lbfgs_direction_is_the_two_loop_recursions_over_the_last_pairs() -> None:
    """The compact form gives the textbook recursion's direction, with the oldest pairs dropped past `history`."""
    g = np.random.default_rng(3)
    n, history = 40, 6
    a = g.normal(size=(n, n))
    hessian = a @ a.T + np.eye(n)
    solver = LBFGS([torch.zeros(n, dtype=torch.float64)], history=history)
    grad = g.normal(size=n)
    np.testing.assert_allclose(solver.direction(grad), -grad * min(1.0, 1 / np.abs(grad).sum()), rtol=1e-15)
    pairs = []
    for k in range(15):
        s = g.normal(size=n)
        pairs = (pairs + [(s, hessian @ s + 0.1 * g.normal(size=n))])[-history:]
        s, y = pairs[-1]
        solver._remember(s, y, history, s.dot(y), y.dot(y))
        grad = g.normal(size=n)
        np.testing.assert_allclose(solver.direction(grad), _two_loop(pairs, grad), rtol=1e-9, atol=1e-12)
    assert solver.m == history


def test_lbfgs_steps_reuse_the_accepted_point_and_refuse_bad_settings() -> None:
    """After the first, a step evaluates only its trial points: the loss and gradient at its start are those of the
    point the last line search accepted (the parameters are unchanged since)."""
    x = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    at: list[list[float]] = []

    def closure():
        solver.zero_grad()
        at.append(x.detach().tolist())
        loss = (x ** 4).sum() + (x ** 2).sum()
        loss.backward()
        return loss
    solver = LBFGS([x])
    for k in range(6):
        start, n = x.detach().tolist(), len(at)
        loss = solver.step(closure)
        assert float(loss.detach()) == pytest.approx(sum(v ** 4 + v ** 2 for v in start), rel=1e-15)  # the start's loss
        assert (start in at[n:]) == (k == 0)
    with pytest.raises(ValueError, match="lr must be a number > 0, found -1"):
        LBFGS([x], lr=-1)


def test_lbfgs_stops_where_no_partial_derivative_exceeds_tolerance_grad() -> None:
    """tolerance_grad (torch.optim.LBFGS's first-order test): `converged` turns true at the first accepted point whose
    largest |partial derivative| is at most the tolerance, not before; 0 leaves the test off; a negative one is
    refused."""
    def run(tol: float) -> list[float]:
        x = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)

        def closure():
            solver.zero_grad()
            loss = (x ** 4).sum() + (x ** 2).sum()
            loss.backward()
            return loss
        solver = LBFGS([x], tolerance_grad=tol)
        worst = []
        while not solver.converged and len(worst) < 200:
            solver.step(closure)
            worst.append(float(x.grad.abs().max()))  # at the point the step accepted (its closure call came last)
        return worst
    worst = run(1e-3)
    assert worst[-1] <= 1e-3 < min(worst[:-1])
    assert len(run(0.0)) > len(worst)  # without the test it goes on towards machine precision
    with pytest.raises(ValueError, match="tolerance_grad"):
        LBFGS([torch.zeros(1, dtype=torch.float64)], tolerance_grad=-1)
