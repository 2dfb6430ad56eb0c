"""The engines on hand-written torch problems with known optima (closed forms, brute force, scipy's SLSQP)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from xlcollab.errors import DivergedError
from xlcollab.solver.engines import branch, grg, linear, lp, multistart
from xlcollab.solver.engines.problem import Problem

INF = math.inf


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def problem(fn, x0, lower=None, upper=None, sense=1.0, integer=None, alldiff=()) -> Problem:
    """fn(x [batch, n]) -> (objective [batch], g [batch, mi] <= 0, h [batch, me] = 0)."""
    x0 = t(*x0)
    n = x0.numel()
    return Problem(x0, t(*lower) if lower else torch.full((n,), -INF, dtype=torch.float64),
                   t(*upper) if upper else torch.full((n,), INF, dtype=torch.float64), fn, sense,
                   None if integer is None else torch.tensor(integer), list(alldiff))


def none(x: torch.Tensor) -> torch.Tensor:
    return x[:, :0]


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2


# -- GRG ------------------------------------------------------------------------------------------------------
def test_grg_unconstrained_rosenbrock_reaches_the_minimum() -> None:
    r = grg.solve(problem(lambda x: (rosenbrock(x), none(x), none(x)), (-1.2, 1.0)))
    assert r.status == "locally optimal" and r.engine == "grg"
    np.testing.assert_allclose(r.x.numpy(), [1.0, 1.0], atol=1e-6)
    assert r.objective < 1e-12
    assert r.trace[0] == pytest.approx(24.2) and r.trace[-1] == r.objective


def test_grg_rosenbrock_with_linear_constraints_matches_slsqp() -> None:
    from scipy.optimize import minimize

    def fn(x):  # x + y <= 1, x - y >= -0.5 (inactive), y = 0.9 - 0.5 x is not imposed
        return rosenbrock(x), torch.stack([x[:, 0] + x[:, 1] - 1, -(x[:, 0] - x[:, 1] + 0.5)], 1), none(x)

    r = grg.solve(problem(fn, (-1.2, 1.0)))
    ref = minimize(lambda z: (1 - z[0]) ** 2 + 100 * (z[1] - z[0] ** 2) ** 2, [-1.2, 1.0], method="SLSQP", tol=1e-15,
                   constraints=[{"type": "ineq", "fun": lambda z: 1 - z[0] - z[1]},
                                {"type": "ineq", "fun": lambda z: z[0] - z[1] + 0.5}])
    assert r.status == "locally optimal"
    assert r.objective == pytest.approx(ref.fun, rel=1e-6)
    np.testing.assert_allclose(r.x.numpy(), ref.x, rtol=1e-5)
    assert r.max_violation <= 1e-8


def test_grg_equality_constrained_quadratic_has_the_closed_form() -> None:
    # min |x|^2 s.t. a.x = b  ->  x = a b / |a|^2
    a, b = t(1.0, 2.0, -2.0), 3.0
    r = grg.solve(problem(lambda x: ((x ** 2).sum(1), none(x), (x @ a - b)[:, None]), (5.0, 5.0, 5.0)))
    np.testing.assert_allclose(r.x.numpy(), (a * b / a.dot(a)).numpy(), rtol=1e-6)
    assert r.objective == pytest.approx(b * b / float(a.dot(a)), rel=1e-6)
    assert r.max_violation <= 1e-8


def test_grg_bounds_by_projection() -> None:
    # min (x-3)^2 + (y+1)^2 + (z-0.5)^2 on 0 <= x <= 2, y >= 0, z free: (2, 0, 0.5)
    fn = lambda x: ((x[:, 0] - 3) ** 2 + (x[:, 1] + 1) ** 2 + (x[:, 2] - 0.5) ** 2, none(x), none(x))
    r = grg.solve(problem(fn, (1.0, 1.0, -4.0), lower=(0.0, 0.0, -INF), upper=(2.0, INF, INF)))
    np.testing.assert_allclose(r.x.numpy(), [2.0, 0.0, 0.5], atol=1e-9)
    assert r.objective == pytest.approx(2.0, rel=1e-9)
    # a start outside the box is clipped into it first
    r = grg.solve(problem(fn, (9.0, -5.0, 0.0), lower=(0.0, 0.0, -INF), upper=(2.0, INF, INF)))
    np.testing.assert_allclose(r.x.numpy(), [2.0, 0.0, 0.5], atol=1e-9)


def test_grg_maximises_and_reports_the_objective_cell() -> None:
    # max 4 - (x-1)^2 - (y-2)^2: the cell's value 4 at (1, 2)
    fn = lambda x: (4 - (x[:, 0] - 1) ** 2 - (x[:, 1] - 2) ** 2, none(x), none(x))
    r = grg.solve(problem(fn, (0.0, 0.0), sense=-1.0))
    assert r.objective == pytest.approx(4.0, rel=1e-12)


def test_grg_feasibility_problem_finds_a_feasible_point() -> None:
    # no objective: x^2 + y^2 = 4, x >= 1.5
    fn = lambda x: (torch.zeros(x.shape[0], dtype=x.dtype), (1.5 - x[:, 0])[:, None], ((x ** 2).sum(1) - 4)[:, None])
    r = grg.solve(problem(fn, (0.0, 0.0), sense=0.0))
    x = r.x.numpy()
    assert r.status == "locally optimal" and x[0] >= 1.5 - 1e-8 and abs(x @ x - 4) <= 1e-8


def test_grg_says_infeasible_and_unbounded() -> None:
    fn = lambda x: (x[:, 0] ** 2, torch.stack([2 - x[:, 0], x[:, 0] - 1], 1), none(x))
    r = grg.solve(problem(fn, (0.0,)))
    assert r.status == "infeasible" and r.max_violation == pytest.approx(0.5, rel=1e-3)
    fn = lambda x: (x[:, 0] ** 2 + x[:, 1], (x[:, 1] - 1)[:, None], none(x))
    assert grg.solve(problem(fn, (1.0, 0.0), sense=-1.0)).status == "unbounded"
    fn = lambda x: (x[:, 0] + 2 * x[:, 1], none(x), none(x))  # linear, y >= 0 only
    assert grg.solve(problem(fn, (1.0, 1.0), lower=(-INF, 0.0))).status == "unbounded"


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.05), ("adamw", 0.05), ("sgd", 0.1), ("momentum", 0.05)])
def test_grg_first_order_rules_follow_torch_optim(optimizer: str, lr: float) -> None:
    target = t(1.0, -2.0, 3.0)
    fn = lambda x: (((x - target) ** 2).sum(1), none(x), none(x))
    s = grg.Settings(optimizer=optimizer, lr=lr, iterations=50)
    r = grg.solve(problem(fn, (0.0, 0.0, 0.0)), s)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = {"adam": lambda: torch.optim.Adam([p], lr=lr), "adamw": lambda: torch.optim.AdamW([p], lr=lr, weight_decay=0),
           "sgd": lambda: torch.optim.SGD([p], lr=lr),
           "momentum": lambda: torch.optim.SGD([p], lr=lr, momentum=0.9)}[optimizer]()
    trace = []
    for _ in range(50):
        opt.zero_grad()
        loss = ((p - target) ** 2).sum()
        loss.backward()
        trace.append(loss.item())
        opt.step()
    np.testing.assert_allclose(r.trace[:-1], trace, rtol=1e-10)
    np.testing.assert_allclose(r.x.numpy(), p.detach().numpy(), rtol=1e-10)


def test_grg_divergence_raises() -> None:
    fn = lambda x: (((x - 1) ** 2).sum(1), none(x), none(x))
    with pytest.raises(DivergedError, match="lower learning rate"):
        grg.solve(problem(fn, (0.0, 0.0)), grg.Settings(optimizer="sgd", lr=1e200, iterations=20))


# -- linearity ------------------------------------------------------------------------------------------------
def test_linearize_recovers_the_matrix_and_spots_a_nonlinear_row() -> None:
    A, b = t(1.0, 2.0, 0.0, -1.0, 3.0, 0.5).reshape(2, 3), t(4.0, -1.0)
    fn = lambda x: (x @ t(1.0, -1.0, 2.0) + 7, x @ A.T - b, (x[:, :1] + x[:, 2:] - 1))
    lin, bad = linear.linearize(problem(fn, (0.3, 0.1, 0.7)))
    assert bad is None
    np.testing.assert_allclose(lin.c.numpy(), [1, -1, 2]) and np.testing.assert_allclose(lin.G.numpy(), A.numpy())
    np.testing.assert_allclose(lin.g0.numpy(), -b.numpy()) and np.testing.assert_allclose(lin.H.numpy(), [[1, 0, 1]])
    assert lin.c0 == pytest.approx(7)
    fn2 = lambda x: (x @ t(1.0, -1.0, 2.0), torch.stack([x[:, 0], x[:, 1] * x[:, 2]], 1), none(x))
    assert linear.linearize(problem(fn2, (0.3, 0.1, 0.7))) == (None, 2)  # row 0 objective, 1 = g[0], 2 = g[1]


# -- Simplex LP (HiGHS) -----------------------------------------------------------------------------------------
def lp_problem(c, A_ub, b_ub, x0, lower, upper=None, sense=1.0, integer=None, alldiff=()):
    c, A = t(*c), torch.tensor(A_ub, dtype=torch.float64)
    return problem(lambda x: (x @ c, x @ A.T - t(*b_ub), none(x)), x0, lower, upper, sense, integer, alldiff)


def solve_lp(p: Problem):
    lin, bad = linear.linearize(p)
    assert bad is None
    return lp.solve(p, lin)


def test_lp_vertex_is_exact() -> None:
    # max 3x + 5y s.t. x <= 4, 2y <= 12, 3x + 2y <= 18, x, y >= 0  ->  (2, 6), 36 (Hillier & Lieberman's Wyndor)
    r = solve_lp(lp_problem((3, 5), [[1, 0], [0, 2], [3, 2]], (4, 12, 18), (0, 0), (0, 0), sense=-1.0))
    assert r.status == "optimal" and r.engine == "lp"
    assert r.x.tolist() == [2.0, 6.0] and r.objective == 36.0


def test_milp_knapsack_equals_brute_force() -> None:
    w, v, cap = [12, 7, 11, 8, 9], [24, 13, 23, 15, 16], 26
    r = solve_lp(lp_problem(v, [w], (cap,), (0,) * 5, (0,) * 5, (1,) * 5, sense=-1.0, integer=[True] * 5))
    best = max(sum(vi * s for vi, s in zip(v, pick)) for pick in itertools.product((0, 1), repeat=5)
               if sum(wi * s for wi, s in zip(w, pick)) <= cap)
    assert r.objective == best == 51
    assert all(x in (0.0, 1.0) for x in r.x.tolist())


def test_alldifferent_assignment_equals_brute_force() -> None:
    # x_i = the position of job i (1..4), each position once: min sum_i w_i x_i puts the heaviest job first
    w = t(3.0, 1.0, 4.0, 2.0)
    r = solve_lp(problem(lambda x: (x @ w, none(x), none(x)), (1, 1, 1, 1), alldiff=[[0, 1, 2, 3]]))
    best = min(sum(float(w[i]) * (p[i]) for i in range(4)) for p in itertools.permutations(range(1, 5)))
    assert r.objective == best and sorted(r.x.tolist()) == [1.0, 2.0, 3.0, 4.0]


def test_lp_infeasible_and_unbounded() -> None:
    assert solve_lp(lp_problem((1, 1), [[1, 1]], (-1,), (0, 0), (0, 0))).status == "infeasible"
    assert solve_lp(lp_problem((-1, 0), [[0, 1]], (1,), (0, 0), (0, 0))).status == "unbounded"
    # integer: HiGHS says "infeasible or unbounded"; a feasibility probe tells which
    assert solve_lp(lp_problem((-1, 0), [[0, 1]], (1,), (0, 0), (0, 0), integer=[True, False])).status == "unbounded"
    assert solve_lp(lp_problem((1, 0), [[1, 1]], (-1,), (0, 0), (0, 0), integer=[True, True])).status == "infeasible"


# -- branch-and-bound and multistart -------------------------------------------------------------------------------
def test_branch_and_bound_on_a_nonlinear_model_equals_a_grid_search() -> None:
    # min (x - 2.6)^2 + (y + 1.3)^2 + 0.5 (x - y)^2 over whole x, y with x + y <= 1.5
    def fn(x):
        f = (x[:, 0] - 2.6) ** 2 + (x[:, 1] + 1.3) ** 2 + 0.5 * (x[:, 0] - x[:, 1]) ** 2
        return f, (x[:, 0] + x[:, 1] - 1.5)[:, None], none(x)

    p = problem(fn, (0.0, 0.0), integer=[True, True])
    r = branch.solve(p, grg.solve)
    grid = [(fn(t(a, b)[None])[0].item(), a, b) for a in range(-10, 11) for b in range(-10, 11) if a + b <= 1.5]
    f, a, b = min(grid)
    assert r.status == "locally optimal" and r.x.tolist() == [a, b] and r.objective == pytest.approx(f, rel=1e-9)
    assert branch.solve(p, grg.solve, node_limit=2).status == "node limit"


def test_multistart_finds_the_global_minimum_a_single_start_misses() -> None:
    # a tilted double well on [-3, 3]^2: the start (1.3, 0) sits in the worse well
    def fn(x):
        f = (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + (x[:, 1] - 0.5) ** 2
        return f, none(x), none(x)

    p = problem(fn, (1.3, 0.0), lower=(-3.0, -3.0), upper=(3.0, 3.0))
    single = grg.solve(p)
    r = multistart.solve(p, 16, grg.solve)
    grid = torch.cartesian_prod(torch.linspace(-3, 3, 6001, dtype=torch.float64), t(0.5))
    best = float(fn(grid)[0].min())
    assert single.x[0] > 0 and single.objective > best + 0.5
    assert r.objective == pytest.approx(best, abs=1e-6) and r.x[0] < 0
    assert r.engine == "multistart(16)+grg"


def test_starts_stay_inside_the_bounds() -> None:
    p = problem(lambda x: (x.sum(1), none(x), none(x)), (0.5, 0.0, 7.0), lower=(0.0, -INF, -INF), upper=(1.0, INF, 10.0))
    x = multistart.starts(p, 500)
    assert x.shape == (500, 3) and x[0].tolist() == [0.5, 0.0, 7.0]
    assert bool((x[:, 0] >= 0).all() and (x[:, 0] <= 1).all() and (x[:, 2] <= 10).all())
    assert float(x[:, 0].std()) > 0.2 and float(x[:, 1].std()) > 0.5


@pytest.mark.cuda
def test_multistart_runs_its_batch_on_the_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev = torch.device("cuda")

    def fn(x):
        return (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + (x[:, 1] - 0.5) ** 2, x[:, :0], x[:, :0]

    cpu = problem(fn, (1.3, 0.0), lower=(-3.0, -3.0), upper=(3.0, 3.0))
    gpu = Problem(cpu.x0.to(dev), cpu.lower.to(dev), cpu.upper.to(dev), fn)
    a, b = multistart.solve(cpu, 64, grg.solve), multistart.solve(gpu, 64, grg.solve)
    assert b.x.device.type == "cuda"
    assert b.objective == pytest.approx(a.objective, abs=1e-9)
