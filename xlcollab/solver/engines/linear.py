"""Is the compiled model linear? Its autograd Jacobian at two points decides, and then it is the LP's matrix.

OpenSolver perturbs each variable and recalculates the sheet (n + 2 recalculations); here one batched evaluation
with one backward pass gives every row of the Jacobian (row i of the batch carries output i's gradient). The
model is linear when the Jacobians at the start point and at a second point agree and the affine model predicts
the outputs at a third point.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from xlcollab.solver.engines.problem import Problem

RTOL = 1e-9


@dataclass
class Linear:
    """objective = c.x + c0; g = G x + g0 <= 0; h = H x + h0 = 0 (rows as in Problem.evaluate)."""
    c: torch.Tensor
    c0: float
    G: torch.Tensor
    g0: torch.Tensor
    H: torch.Tensor
    h0: torch.Tensor


def outputs(problem: Problem, x: torch.Tensor) -> torch.Tensor:
    """[batch, 1 + mi + me]: the objective cell, then g, then h."""
    obj, g, h = problem.evaluate(x)
    return torch.cat([obj[:, None], g, h], 1)


def jacobian(problem: Problem, x: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs [m], Jacobian [m, n]) at x [n]: x repeated m times, output i of copy i differentiated (one copy,
    the first evaluation, when the objective is the only output)."""
    first = x.detach()[None].clone().requires_grad_(True)
    out = outputs(problem, first)
    values = out.detach()[0]
    m = values.numel()
    if m == 1:
        return values, _gradient(out[:, 0], first)
    rows = []
    for start in range(0, m, chunk):
        k = min(chunk, m - start)
        xs = x.detach().expand(k, -1).clone().requires_grad_(True)
        out = outputs(problem, xs)
        rows.append(_gradient(out[torch.arange(k, device=x.device), torch.arange(start, start + k, device=x.device)],
                              xs))
    return values, torch.cat(rows)


def _gradient(picked: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Row i: the gradient of picked[i] with respect to xs[i] (the rows of xs are independent copies)."""
    grad = torch.autograd.grad(picked.sum(), xs, allow_unused=True)[0] if picked.requires_grad else None
    return torch.zeros_like(xs) if grad is None else grad.detach()


def probe_points(problem: Problem, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two points inside the bounds, away from the start and from each other."""
    x0 = problem.x0
    pts = []
    for _ in range(2):
        u = torch.rand(x0.shape, dtype=x0.dtype, generator=generator).to(x0.device)
        lo, hi = problem.lower, problem.upper
        span = torch.where(torch.isfinite(lo) & torch.isfinite(hi), hi - lo, 1 + x0.abs() * 2)
        base = torch.where(torch.isfinite(lo), lo, torch.where(torch.isfinite(hi), hi - span, x0 - span / 2))
        pts.append(base + (0.1 + 0.8 * u) * span)
    return pts[0], pts[1]


def linearize(problem: Problem, seed: int = 0) -> tuple[Linear | None, int | None]:
    """(the linear model, None) when every output is affine in x, else (None, index of the first output that is not)."""
    gen = torch.Generator().manual_seed(seed)
    x1, x2 = probe_points(problem, gen)
    f0, j0 = jacobian(problem, problem.x0)
    f1, j1 = jacobian(problem, x1)
    with torch.no_grad():
        f2 = outputs(problem, x2[None])[0]
    scale = 1 + j0.abs().amax(1) * (1 + problem.x0.abs().amax() + x1.abs().amax())
    bad = ((j0 - j1).abs().amax(1) > RTOL * scale) | ~torch.isfinite(f0) | ~torch.isfinite(f1)
    predicted = f0 + j0 @ (x2 - problem.x0)
    bad |= (predicted - f2).abs() > 1e3 * RTOL * (scale + f2.abs())
    if bool(bad.any()):
        return None, int(torch.nonzero(bad)[0])
    const = f0 - j0 @ problem.x0
    mi = problem.evaluate(problem.x0[None])[1].shape[1]
    return Linear(j0[0], float(const[0]), j0[1:1 + mi], const[1:1 + mi], j0[1 + mi:], const[1 + mi:]), None
