"""GRG Nonlinear in torch: L-BFGS (or Adam/SGD) on the variables' box by projection, other constraints by an
augmented Lagrangian (Powell-Hestenes-Rockafellar), gradients by autograd through the compiled sheet.

Bounds: the inner solver minimises F(y) = f(P(y)), P the clip into the box, with the projected gradient (zero on a
variable held at its bound by a gradient pointing out); its line search therefore runs along the projected path,
and each iterate is clipped back. Constraints g <= 0, h = 0 enter
    L(x) = f(x) + sum_h (lam h + rho/2 h^2) + sum_g (max(0, mu + rho g)^2 - mu^2) / (2 rho),
multipliers updated after each inner solve and rho raised tenfold when the violation did not fall to a quarter,
until the violation is below 1e-8. A model without constraints is one inner solve: the collab tabs' path.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from xlcollab.core import optim
from xlcollab.core.train import schedule_lr, train
from xlcollab.solver.engines.problem import PRECISION, TARGET, Problem, Result, finish

OPTIMIZERS = ("lbfgs", "adam", "adamw", "sgd", "momentum")
RHO_MAX = 1e12
GTOL = 1e-10       # an inner solve ends when the largest projected partial derivative is this small (relative)


@dataclass(frozen=True)
class Settings:
    """How the GRG engine descends: `iterations` per inner solve (the tabs' epochs), `outer` Lagrangian rounds."""
    optimizer: str = "lbfgs"
    lr: float = 1.0
    iterations: int = 1000
    wd: float = 0.0
    outer: int = 40
    schedule: str = "constant"  # or "annealed": the first-order rules' lr falls to 0 by the last iteration (cosine)


class _Lagrangian:
    """The augmented Lagrangian of a Problem at the current multipliers and penalty."""

    def __init__(self, problem: Problem, s: Settings, x: torch.Tensor) -> None:
        """The merit at the start point x: its evaluation sizes the multipliers and gives the first solve's scale."""
        self.problem, self.s = problem, s
        with torch.no_grad():
            obj, g, h = problem.evaluate(x[None])
        self.lam = torch.zeros(h.shape[1], dtype=x.dtype, device=x.device)
        self.mu = torch.zeros(g.shape[1], dtype=x.dtype, device=x.device)
        self.rho = 10.0
        self.constrained = bool(g.shape[1] or h.shape[1])
        self.start: tuple[torch.Tensor, float] | None = (x, float(self._merit(x, obj, g, h)[0]))

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantity minimised, objective cell) at x [n] or [1, n], each a one-element tensor (backward and float
        take it as it is: no indexing op on the path of every evaluation)."""
        return self._merit(x, *self.problem.evaluate(x if x.dim() == 2 else x[None]))

    def at(self, x: torch.Tensor) -> float:
        """The merit at x, from the start's evaluation when x is the start and the multipliers are the first."""
        if self.start is not None and torch.equal(self.start[0], x):
            return self.start[1]
        with torch.no_grad():
            return float(self(x)[0])

    def _merit(self, x: torch.Tensor, obj: torch.Tensor, g: torch.Tensor,
               h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = obj
        f = cell if self.problem.sense == 1 else self.problem.sense * cell if self.problem.sense else (x * 0).sum()
        if self.s.wd and self.s.optimizer == "lbfgs":
            f = f + 0.5 * self.s.wd * (x * x).sum()
        if h.shape[1]:
            f = f + (self.lam * h[0]).sum() + 0.5 * self.rho * (h[0] * h[0]).sum()
        if g.shape[1]:
            f = f + ((self.mu + self.rho * g[0]).clamp_min(0) ** 2 - self.mu ** 2).sum() / (2 * self.rho)
        return f, cell

    def update(self, x: torch.Tensor, previous: float) -> float:
        """Multipliers and penalty after an inner solve; returns how far x is from feasible and complementary:
        max |h|, |max(g, -mu/rho)| (Birgin & Martinez), zero only where every constraint holds and every
        inequality with a multiplier is active."""
        with torch.no_grad():
            _, g, h = self.problem.evaluate(x[None])
        viol = max(float(h.abs().max()) if h.shape[1] else 0.0,
                   float(torch.maximum(g[0], -self.mu / self.rho).abs().max()) if g.shape[1] else 0.0)
        self.start = None  # new multipliers: a new merit
        if h.shape[1]:
            self.lam = self.lam + self.rho * h[0]
        if g.shape[1]:
            self.mu = (self.mu + self.rho * g[0]).clamp_min(0)
        if viol > 0.25 * previous:
            self.rho = min(self.rho * 10, RHO_MAX)
        return viol


def solve(problem: Problem, s: Settings = Settings()) -> Result:
    """Minimise the problem from its x0 clipped into the box; Result status 'locally optimal' or a failure."""
    x = problem.project(problem.x0.detach().to(torch.float64))
    merit = _Lagrangian(problem, s, x)
    trace: list[float] = []
    iterations, viol = 0, math.inf
    for _ in range(s.outer if merit.constrained else 1):
        before = x
        x, its, converged = minimise(merit, problem, x, s, trace)
        iterations += its
        if not converged and _unbounded(problem, x, before, trace):
            return _ended(finish(problem, x, "unbounded", iterations, "grg", trace,
                                 "the objective cell does not converge"))
        if not merit.constrained:
            break
        viol = merit.update(x, viol)
        if (viol <= TARGET and converged) or (merit.rho >= RHO_MAX and viol > PRECISION):
            break
    return _ended(finish(problem, x, "locally optimal", iterations, "grg", trace))


def _ended(result: Result) -> Result:
    """The result with its trace closed by the objective cell where it ended (finish evaluated it there)."""
    result.trace.append(result.objective)
    return result


def minimise(merit: Callable, problem: Problem, x: torch.Tensor, s: Settings,
             trace: list[float]) -> tuple[torch.Tensor, int, bool]:
    """One inner solve by core.train's loop from x in the box: (x, iterations, converged); the objective cell
    before each iteration is appended to `trace` (the end's: `_ended`)."""
    lo, hi = problem.lower, problem.upper
    boxed = bool(torch.isfinite(lo).any() or torch.isfinite(hi).any())
    xt = x.detach().clone()[None].requires_grad_(True)  # [1, n]: the batch the sheet is evaluated on, no reshape op
    if boxed:  # the projected gradient: a variable held at a bound by a gradient pointing out does not move
        xt.register_hook(lambda g: g.masked_fill(((xt <= lo) & (g > 0)) | ((xt >= hi) & (g < 0)), 0.0))
    start = merit.at(x)  # the scale of "small" for the gradient: the merit where this solve starts
    gtol = GTOL * (1 + abs(start)) if math.isfinite(start) else 0.0  # 0: no test (the loop stops at a NaN)
    if s.optimizer == "lbfgs":  # it tests the gradient at each point it accepts itself
        update = optim.LBFGS([xt], lr=s.lr, tolerance_grad=gtol)
    else:
        rule = {"adamw": "adam", "momentum": "sgd"}.get(s.optimizer, s.optimizer)
        extra = {"decoupled": True} if s.optimizer == "adamw" else {"momentum": 0.9} if s.optimizer == "momentum" else {}
        update = optim.Rule([xt], rule, lr=s.lr, weight_decay=s.wd, **extra)

    def objective(_batch) -> tuple[torch.Tensor, torch.Tensor]:
        if not boxed:
            return merit(xt)
        return merit(xt + (torch.maximum(torch.minimum(xt, hi), lo) - xt).detach())  # f(P(x)), gradient through

    def clip(row: dict) -> None:
        if boxed:
            with torch.no_grad():
                xt.copy_(torch.maximum(torch.minimum(xt, hi), lo))
        if (s.optimizer != "lbfgs" and xt.grad is not None
                and float(torch.linalg.vector_norm(xt.grad, math.inf)) <= gtol):
            update.converged = True  # the projected gradient vanished: a (local) minimum of this solve

    lr_at = None if s.schedule == "constant" else (lambda step: schedule_lr(s.schedule, step / s.iterations, s.lr))
    rows = train(update, objective, s.iterations, on_epoch=clip, lr_hint=s.lr, lr_at=lr_at)
    trace += [row["loss"] for row in rows]
    return xt.detach()[0].clone(), len(rows), bool(getattr(update, "converged", False))


def _unbounded(problem: Problem, end: torch.Tensor, start: torch.Tensor, trace: list[float]) -> bool:
    """Does the objective keep improving without limit, feasibly, along the way this solve travelled?"""
    if not problem.sense or len(trace) < 3:
        return False
    d = end - start
    if not bool(d.abs().max() > 0):
        return False
    d = d / d.abs().max()
    pts = torch.stack([problem.project(end + t * d) for t in (1e3, 1e6, 1e9, 1e12)])
    with torch.no_grad():
        obj, _, _ = problem.evaluate(pts)
        ok = problem.violation(pts) <= PRECISION * (1 + pts.abs().amax(1))
    f = problem.sense * obj
    return bool(ok.all() and torch.isfinite(f).all() and (f.diff() < 0).all() and f[-1] < -1e9 * (1 + abs(trace[0])))
