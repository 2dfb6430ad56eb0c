"""Simplex LP: a linear model (see linear.py) solved exactly by HiGHS through scipy, integers and all-different too.

HiGHS (scipy.optimize.milp) returns vertices to machine precision, honours integer and binary variables by its
own branch-and-cut, and reports infeasible and unbounded models. All-different groups (Excel's `dif`: the k
cells take the values 1..k, each once) become a k x k assignment of binaries, x_i = sum_v v * z_iv.
"""
from __future__ import annotations

import numpy as np
import torch

from xlcollab.solver.engines.linear import Linear
from xlcollab.solver.engines.problem import Problem, Result, finish

STATUS = {0: "optimal", 2: "infeasible", 3: "unbounded"}


def solve(problem: Problem, lin: Linear, *, node_limit: int | None = None) -> Result:
    """The exact optimum of the linear model (or its infeasible/unbounded verdict), as a Result."""
    from scipy.optimize import Bounds, milp

    n = problem.n
    c, rows, integrality, lo, hi = _assemble(problem, lin)
    options = {"presolve": True} | ({"node_limit": node_limit} if node_limit else {})
    res = milp(c, integrality=integrality, bounds=Bounds(lo, hi), constraints=rows or None, options=options)
    status = STATUS.get(res.status)
    if res.status == 4 and "unbounded or infeasible" in res.message:
        probe = milp(np.zeros_like(c), integrality=integrality, bounds=Bounds(lo, hi), constraints=rows or None)
        status = "unbounded" if probe.status == 0 else "infeasible"
    if status is None:
        return finish(problem, problem.x0, "error", 0, "lp", message=f"HiGHS stopped: {res.message}")
    if status != "optimal":
        return finish(problem, problem.x0, status, 0, "lp")
    x = np.asarray(res.x[:n], dtype=np.float64)
    whole = integrality[:n].astype(bool)
    x[whole] = np.round(x[whole])
    xt = torch.as_tensor(x, dtype=problem.x0.dtype, device=problem.x0.device)
    iterations = int(getattr(res, "mip_node_count", 0) or 0)
    return finish(problem, xt, "optimal", iterations, "lp", message=res.message)


def _assemble(problem: Problem, lin: Linear):
    """c, constraint rows, integrality and bounds over x followed by the all-different binaries."""
    from scipy.optimize import LinearConstraint

    n = problem.n
    k_total = sum(len(g) ** 2 for g in problem.alldiff)
    width = n + k_total
    c = np.zeros(width)
    c[:n] = problem.sense * lin.c.cpu().numpy()
    lo = np.concatenate([problem.lower.cpu().numpy(), np.zeros(k_total)])
    hi = np.concatenate([problem.upper.cpu().numpy(), np.ones(k_total)])
    integrality = np.concatenate([(problem.integer.cpu().numpy() if problem.integer is not None else np.zeros(n)),
                                  np.ones(k_total)]).astype(np.int64)
    rows = []
    if lin.G.shape[0]:
        G = lin.G.cpu().numpy()
        rows.append(LinearConstraint(np.hstack([G, np.zeros((G.shape[0], k_total))]), -np.inf, -lin.g0.cpu().numpy()))
    if lin.H.shape[0]:
        H = lin.H.cpu().numpy()
        rows.append(LinearConstraint(np.hstack([H, np.zeros((H.shape[0], k_total))]), -lin.h0.cpu().numpy(),
                                     -lin.h0.cpu().numpy()))
    offset = n
    for group in problem.alldiff:
        k = len(group)
        A = np.zeros((3 * k, width))
        b = np.zeros(3 * k)
        for a, i in enumerate(group):
            A[a, i] = 1.0                                           # x_i - sum_v v z_iv = 0
            A[a, offset + a * k: offset + (a + 1) * k] = -np.arange(1, k + 1)
            A[k + a, offset + a * k: offset + (a + 1) * k] = 1.0    # each cell takes one value
            b[k + a] = 1.0
            A[2 * k + a, offset + a: offset + k * k: k] = 1.0       # each value is taken once
            b[2 * k + a] = 1.0
        rows.append(LinearConstraint(A, b, b))
        integrality[group] = 1
        lo[group] = np.maximum(lo[group], 1)
        hi[group] = np.minimum(hi[group], k)
        offset += k * k
    return c, rows, integrality, lo, hi
