"""Evolutionary, as a batched multistart in torch: N random starts within the bounds descend together as one
batch (one evaluation of the compiled sheet per step for all of them: where a GPU pays off even for a small
sheet), then the best few are polished by the GRG path and the best polished point wins.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch

from xlcollab.core import optim
from xlcollab.solver.engines.problem import PRECISION, Problem, Result

POLISH = 8        # starts polished by the local engine
STEPS = 200       # batched descent steps before polishing
PENALTY = 1e3     # weight of the squared constraint violation during the batched descent


def starts(problem: Problem, count: int, seed: int = 0) -> torch.Tensor:
    """[count, n] random points within the bounds (uniform where both are finite), the start point first."""
    gen = torch.Generator().manual_seed(seed)
    x0, lo, hi = problem.x0, problem.lower, problem.upper
    u = torch.rand((count, problem.n), dtype=x0.dtype, generator=gen).to(x0.device)
    z = torch.randn((count, problem.n), dtype=x0.dtype, generator=gen).to(x0.device)
    scale = 1 + x0.abs()
    box = lo + u * (hi - lo)
    above = lo + scale * z.abs() * 2
    below = hi - scale * z.abs() * 2
    free = x0 + scale * z * 2
    pts = torch.where(torch.isfinite(lo) & torch.isfinite(hi), box,
                      torch.where(torch.isfinite(lo), above, torch.where(torch.isfinite(hi), below, free)))
    pts[0] = problem.project(x0)
    return pts


def descend(problem: Problem, x: torch.Tensor, steps: int = STEPS, lr: float = 0.05) -> torch.Tensor:
    """Projected Adam on objective + penalty for every row of x at once (core.optim's rule, batched)."""
    state: dict = {}
    lr_scaled = lr * (1 + x.abs().amax(0))
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        merit = _merit(problem, x)
        (g,) = torch.autograd.grad(merit.sum(), x, allow_unused=True)
        if g is None:
            return x.detach()
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        with torch.no_grad():
            x = problem.project(optim.adam(x, g, state, lr=lr_scaled))
    return x.detach()


def _merit(problem: Problem, x: torch.Tensor) -> torch.Tensor:
    obj, g, h = problem.evaluate(x)
    merit = problem.sense * obj if problem.sense else torch.zeros_like(obj)
    if g.shape[1]:
        merit = merit + PENALTY * (g.clamp_min(0) ** 2).sum(1)
    if h.shape[1]:
        merit = merit + PENALTY * (h ** 2).sum(1)
    return merit


def solve(problem: Problem, count: int, local: Callable[[Problem], Result], *, seed: int = 0) -> Result:
    """The best of the polished starts: feasible ones first, then by objective."""
    x = descend(problem, starts(problem, count, seed))
    with torch.no_grad():
        merit = torch.nan_to_num(_merit(problem, x), nan=math.inf)
    order = torch.argsort(merit)[:min(POLISH, count)]
    best: Result | None = None
    iterations = STEPS * count
    for i in order.tolist():
        r = local(replace(problem, x0=x[i]))
        iterations += r.iterations
        if best is None or _rank(problem, r) < _rank(problem, best):
            best = r
    assert best is not None
    return replace(best, iterations=iterations, engine=f"multistart({count})+{best.engine}")


def _rank(problem: Problem, r: Result) -> tuple[int, float]:
    feasible = r.status in ("locally optimal", "optimal") and r.max_violation <= PRECISION
    value = problem.sense * r.objective if problem.sense and math.isfinite(r.objective) else 0.0
    return (0 if feasible else 1 if r.status != "unbounded" else -1, value)
