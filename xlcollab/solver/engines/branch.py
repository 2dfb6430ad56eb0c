"""Integer and binary variables on a nonlinear model: depth-first branch-and-bound over relaxed GRG solves.

Each node solves the continuous relaxation within its bounds; a node whose relaxed objective is no better than
the best whole-number point found is pruned (exact for convex models, a heuristic otherwise, as Excel's own
GRG branch-and-bound). Past `node_limit` nodes the search stops and says so rather than return a guess.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch

from xlcollab.solver.engines.problem import Problem, Result, finish

WHOLE = 1e-6  # |x - round(x)| below this counts as a whole number (Excel's integer tolerance is coarser)


def solve(problem: Problem, relax: Callable[[Problem], Result], *, node_limit: int = 500) -> Result:
    """The best whole-number point the search finds, 'infeasible', 'unbounded' or 'node limit'."""
    whole = problem.integer if problem.integer is not None else torch.zeros(problem.n, dtype=torch.bool)
    whole = whole.to(problem.x0.device)
    best: Result | None = None
    stack = [(problem.lower.clone(), problem.upper.clone(), problem.x0)]
    nodes = iterations = 0
    while stack:
        lo, hi, start = stack.pop()
        if bool((lo > hi).any()):
            continue
        nodes += 1
        if nodes > node_limit:
            return finish(problem, best.x if best else problem.x0, "node limit", iterations, "grg+bb",
                          message=f"branch-and-bound stopped after {node_limit} nodes")
        r = relax(replace(problem, lower=lo, upper=hi, x0=torch.maximum(torch.minimum(start, hi), lo)))
        iterations += r.iterations
        if r.status == "unbounded":
            return r
        if r.status != "locally optimal" or (best is not None and not _better(problem, r, best)):
            continue
        gap = (r.x - r.x.round()).abs().where(whole, torch.zeros_like(r.x))
        if (float(gap.max()) if gap.numel() else 0.0) <= WHOLE:
            fixed = r.x.round().where(whole, r.x)
            r = relax(replace(problem, lower=torch.where(whole, fixed, lo), upper=torch.where(whole, fixed, hi), x0=fixed))
            iterations += r.iterations
            if r.status == "locally optimal" and (best is None or _better(problem, r, best)):
                best = r
            continue
        i = int(gap.argmax())
        v = float(r.x[i])
        down_hi, up_lo = hi.clone(), lo.clone()
        down_hi[i], up_lo[i] = math.floor(v), math.ceil(v)
        branches = [(lo, down_hi, r.x), (up_lo, hi, r.x)]
        if v - math.floor(v) > 0.5:
            branches.reverse()  # explore the nearer whole number first (popped last-in)
        stack += branches[::-1]
    if best is None:
        return finish(problem, problem.x0, "infeasible", iterations, "grg+bb", message="no whole-number point is feasible")
    return finish(problem, best.x, "locally optimal", iterations, "grg+bb", best.trace)


def _better(problem: Problem, r: Result, best: Result) -> bool:
    if not problem.sense:
        return False
    a, b = problem.sense * r.objective, problem.sense * best.objective
    return a < b - 1e-9 * (1 + abs(b))
