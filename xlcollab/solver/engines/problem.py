"""What every engine solves, in torch: minimise f(x) subject to g(x) <= 0, h(x) = 0, bounds, integrality.

`evaluate(x)` takes x as [batch, n] float64 and returns the objective cell's value [batch] and the
constraint values g [batch, mi] (feasible when <= 0) and h [batch, me] (feasible when 0); `sense` turns the
objective cell into the quantity to minimise (1 min, -1 max, 0 none: a feasibility problem, including
Excel's "value of", whose target is one of the equalities). Engines know nothing of workbooks.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

TARGET = 1e-8      # constraint violation the GRG engine drives down to (absolute)
PRECISION = 1e-6   # Excel's default constraint precision (solver_pre): worse than this is infeasible


@dataclass
class Problem:
    x0: torch.Tensor                 # [n] float64 start (the variable cells' current values)
    lower: torch.Tensor              # [n], -inf where unbounded
    upper: torch.Tensor              # [n], +inf where unbounded
    evaluate: Evaluate
    sense: float = 1.0
    integer: torch.Tensor | None = None          # [n] bool: int and bin variables
    alldiff: list[list[int]] = field(default_factory=list)  # groups of variable indices: a permutation of 1..len

    @property
    def n(self) -> int:
        return int(self.x0.numel())

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x clipped into the bounds."""
        return torch.maximum(torch.minimum(x, self.upper), self.lower)

    def violation(self, x: torch.Tensor) -> torch.Tensor:
        """Largest violation of any constraint or bound at each row of x [batch, n] -> [batch]."""
        return self.outcome(x)[1]

    def outcome(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective cell, largest violation) at each row of x [batch, n], from one evaluation."""
        obj, g, h = self.evaluate(x)
        parts = [torch.zeros(x.shape[0], dtype=x.dtype, device=x.device),
                 (self.lower - x).clamp_min(0).nan_to_num(0).amax(1), (x - self.upper).clamp_min(0).nan_to_num(0).amax(1)]
        if g.shape[1]:
            parts.append(g.clamp_min(0).amax(1))
        if h.shape[1]:
            parts.append(h.abs().amax(1))
        return obj, torch.stack(parts).amax(0)


@dataclass
class Result:
    """What an engine reached: x, the objective cell's value there, and how it got there."""
    x: torch.Tensor
    status: str                      # optimal, locally optimal, infeasible, unbounded
    objective: float
    iterations: int
    max_violation: float
    engine: str
    trace: list[float] = field(default_factory=list)   # objective cell per iteration (start first)
    message: str = ""


def finish(problem: Problem, x: torch.Tensor, status: str, iterations: int, engine: str,
           trace: list[float] | None = None, message: str = "", tol: float = PRECISION) -> Result:
    """A Result at x, its status demoted to infeasible when a constraint is still violated beyond tol."""
    with torch.no_grad():
        obj, violation = problem.outcome(x[None])
        worst = float(violation[0])
    if status in ("optimal", "locally optimal") and not worst <= tol:
        status = "infeasible"
    value = float(obj[0]) if obj.numel() else math.nan
    return Result(x.detach(), status, value, iterations, worst, engine, list(trace or []), message)
