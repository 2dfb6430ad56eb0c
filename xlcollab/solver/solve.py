"""Excel Solver's job on any workbook: read the sheet's model, compile its cells into torch, pick an engine,
solve, and buffer the write-back (variable cells + cached values of the formulas); the caller commits.

A model without an answer (infeasible, unbounded, past the node limit) raises SolveError and writes nothing;
so does every bad model (model.py, the compiler). With several sheets, every one is solved before any write.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from xlcollab.book.base import Book, cell_name
from xlcollab.core.device import pick_device, torch_threads
from xlcollab.core.settings import SOLVE_ENGINES
from xlcollab.errors import DivergedError, SettingsError, SolveError, WorkbookError
from xlcollab.solver.cached import as_cached
from xlcollab.solver.engines import branch, grg, linear, lp, multistart
from xlcollab.solver.engines.problem import Problem, Result
from xlcollab.solver.extra_cells import WithFormulas
from xlcollab.solver.model import Constraint, Formula, SolverModel, TYPE_WORDS, checked
from xlcollab.solver.refs import Cell, cell_label

EVOLUTIONARY_STARTS = 32


@dataclass(frozen=True)
class Options:
    """How to solve: engine (auto: Simplex LP when the model is linear, else the stored engine), device, starts."""
    engine: str = "auto"
    device: str = "auto"
    multistart: int = 0
    grg: grg.Settings = field(default_factory=grg.Settings)
    node_limit: int = 500
    seed: int = 0


@dataclass
class Outcome:
    """What `solve --json` reports for one sheet."""
    sheet: str
    status: str
    engine: str
    device: str
    objective_cell: str | None
    objective_before: float | None
    objective_after: float | None
    iterations: int
    seconds: float
    max_violation: float
    trace: list[float] = field(default_factory=list, repr=False)
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "trace"}


@dataclass
class Built:
    """A model compiled: the problem the engines see, and what each of its output rows is (for messages)."""
    problem: Problem
    compiled: Any
    rows: list[str]
    book: WithFormulas


# -- from model to problem ---------------------------------------------------------------------------------
Side = tuple[Constraint, int, "int | float"]  # (constraint, its left side's output, right side's output or constant)


def build(book: Book, model: SolverModel, device: torch.device) -> Built:
    """Compile the objective and the constraints' sides; bound constraints become the variables' box."""
    from xlcollab.solver.compile import compile_cells

    view = WithFormulas(book, model.sheet)
    outputs, sides = _outputs(model, view)
    compiled = compile_cells(view, list(model.variables), outputs, device=device)
    x0 = compiled.x0.to(device=device, dtype=torch.float64)
    at_start = compiled(x0[None].clone().requires_grad_(True))  # an output without a gradient: no variable moves it
    if model.objective is not None:
        _require_dependence(book, model, compiled, x0)
    lower, upper, general = _bounds(model, sides, at_start, x0)
    integer, alldiff = _types(model, lower, upper)
    sense = {"min": 1.0, "max": -1.0}.get(model.goal, 0.0) if model.objective else 0.0
    problem = Problem(x0, lower, upper, _evaluator(model, compiled, general), sense,
                      integer if bool(integer.any()) else None, alldiff)
    return Built(problem, compiled, _labels(model, general, outputs), view)


def _outputs(model: SolverModel, view: WithFormulas) -> tuple[list[list[Cell]], list[Side]]:
    """The cells to compile (objective first, then each constraint's sides; a formula right side placed in a
    spare cell of the view) and, per constraint, where its sides are among them."""
    outputs: list[list[Cell]] = [[model.objective]] if model.objective else []
    sides: list[Side] = []
    for c in model.constraints:
        if c.rel in TYPE_WORDS:
            continue
        outputs.append(list(c.lhs))
        if isinstance(c.rhs, (Formula, tuple)):
            outputs.append([view.place(c.rhs.text)] if isinstance(c.rhs, Formula) else list(c.rhs))
            sides.append((c, len(outputs) - 2, len(outputs) - 1))
        else:
            sides.append((c, len(outputs) - 1, float(c.rhs)))
    return outputs, sides


def _types(model: SolverModel, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
    """Integer marks (int and bin; bin also clips the box to [0, 1]) and the all-different groups."""
    index = {v: i for i, v in enumerate(model.variables)}
    integer = torch.zeros(len(index), dtype=torch.bool, device=lower.device)
    alldiff = []
    for c in model.constraints:
        at = [index[v] for v in c.lhs] if c.rel in TYPE_WORDS else []
        if c.rel in ("int", "bin"):
            integer[at] = True
        if c.rel == "bin":
            lower[at], upper[at] = lower[at].clamp_min(0.0), upper[at].clamp_max(1.0)
        if c.rel == "dif":
            alldiff.append(at)
    return integer, alldiff


def _labels(model: SolverModel, general: list[Side], outputs: list[list[Cell]]) -> list[str]:
    """What each row of [objective, g, h] is, for messages (in the order `_evaluator` stacks them)."""
    rows = [f"the objective {cell_label(model.objective)}"] if model.objective else []
    g_rows, h_rows = [], []
    for c, _, rhs in general:
        n = max(len(c.lhs), len(outputs[rhs]) if isinstance(rhs, int) else 1)
        labels = [f"{c.label} at {cell_label(c.lhs[min(i, len(c.lhs) - 1)])}" for i in range(n)]
        (h_rows if c.rel == "=" else g_rows).extend(labels)
    rows += g_rows + h_rows
    if model.objective is not None and model.goal == "value":
        rows.append(f"the objective {cell_label(model.objective)} = {model.value:g}")
    return rows


def _evaluator(model: SolverModel, compiled: Any, general: list[Side]):
    """x [batch, n] -> (objective cell, g <= 0, h = 0): the compiled sheet as the engines' Problem sees it."""
    value_of = model.objective is not None and model.goal == "value"
    empties: dict[tuple[int, torch.device], torch.Tensor] = {}

    def empty(x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[0], x.device)
        if key not in empties:
            empties[key] = x.new_empty((x.shape[0], 0))
        return empties[key]

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = compiled._batch(x)[0] if x.dtype != torch.float64 or x.dim() != 2 else x
        if model.objective and not general and not value_of:  # the objective alone (the collab tabs' models)
            return compiled.first_cell(x), empty(x), empty(x)
        outs = compiled.run(x)
        obj = outs[0][:, 0] if model.objective else torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        g, h = [], []
        for c, lhs_at, rhs in general:
            left = outs[lhs_at]
            diff = left - (outs[rhs] if isinstance(rhs, int) else torch.full_like(left, rhs))
            if c.rel == "=":
                h.append(diff)
            else:
                g.append(diff if c.rel == "<=" else -diff)
        if value_of:
            h.append((obj - model.value)[:, None])
        return obj, torch.cat(g, 1) if g else empty(x), torch.cat(h, 1) if h else empty(x)

    return evaluate


def _require_dependence(book: Book, model: SolverModel, compiled: Any, x0: torch.Tensor) -> None:
    """An objective that no variable moves is refused (Excel: 'The Objective Cell must contain a formula')."""
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
    x = torch.stack([x0, x0 + (1 + x0.abs()) * noise]).requires_grad_(True)
    obj = compiled(x)[0][:, 0]
    grad = torch.autograd.grad(obj.sum(), x, allow_unused=True)[0] if obj.requires_grad else None
    if grad is None or not bool((grad != 0).any()):
        sheet, r, c = model.objective
        raise WorkbookError("the objective cell does not depend on the variable cells "
                            f"({', '.join(sorted({s for s, _, _ in model.variables}))}): no change of them moves it",
                            sheet=sheet, cell=cell_name(r, c), path=book.name)


def _bounds(model: SolverModel, sides: list[Side], at_start: list[torch.Tensor],
            x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[Side]]:
    """(lower, upper, the constraints that are not bounds): a single variable against a constant, or against
    cells no variable moves, is a bound (OpenSolver's rule); a formula right side never is."""
    n = len(model.variables)
    lower = torch.full((n,), -math.inf, dtype=torch.float64, device=x0.device)
    upper = torch.full((n,), math.inf, dtype=torch.float64, device=x0.device)
    index = {v: i for i, v in enumerate(model.variables)}
    general = []
    for c, lhs_at, rhs in sides:
        constant = not isinstance(rhs, int) or (not isinstance(c.rhs, Formula) and not at_start[rhs].requires_grad)
        if not constant or any(v not in index for v in c.lhs):
            general.append((c, lhs_at, rhs))
            continue
        values = [float(rhs)] * len(c.lhs) if not isinstance(rhs, int) else at_start[rhs][0].detach().tolist()
        if len(values) == 1:
            values = values * len(c.lhs)
        if len(values) != len(c.lhs):
            general.append((c, lhs_at, rhs))
            continue
        for v, b in zip(c.lhs, values):
            i = index[v]
            if c.rel in ("<=", "="):
                upper[i] = min(float(upper[i]), b)
            if c.rel in (">=", "="):
                lower[i] = max(float(lower[i]), b)
    if model.nonnegative:
        lower = torch.where(torch.isinf(lower), torch.zeros_like(lower), lower)
    return lower, upper, general


# -- engines --------------------------------------------------------------------------------------------------
def run(built: Built, model: SolverModel, options: Options) -> Result:
    """Pick the engine (Excel's rules) and solve."""
    p = built.problem
    if bool((p.lower > p.upper).any()):
        i = int(torch.nonzero(p.lower > p.upper)[0])
        return Result(p.x0, "infeasible", math.nan, 0, math.inf, "bounds",
                      message=f"the bounds on {cell_label(model.variables[i])} contradict each other "
                              f"({float(p.lower[i]):g} > {float(p.upper[i]):g})")
    engine = options.engine if options.engine != "auto" else model.engine
    if options.engine in ("auto", "lp"):
        lin, bad = linear.linearize(p, seed=options.seed)
        if lin is not None:
            return lp.solve(p, lin, node_limit=options.node_limit)
        if engine == "lp":
            raise SolveError(f"the model is not linear ({built.rows[bad]} is not a linear function of the variable "
                             "cells), so Simplex LP cannot solve it; use --engine grg", sheet=model.sheet,
                             path=built.book.name)
    if p.alldiff:
        raise SolveError("all-different (dif) constraints need a linear model (Simplex LP); this one is not linear",
                         sheet=model.sheet, path=built.book.name)

    def local(q: Problem) -> Result:
        if q.integer is not None:
            return branch.solve(q, lambda r: grg.solve(r, options.grg), node_limit=options.node_limit)
        return grg.solve(q, options.grg)

    starts = options.multistart or (EVOLUTIONARY_STARTS if engine == "evolutionary" else 0)
    if starts:
        return multistart.solve(p, starts, local, seed=options.seed)
    return local(p)


# -- a whole sheet ---------------------------------------------------------------------------------------------
FAILURES = {"infeasible": "Solver could not find a feasible solution",
            "unbounded": "the objective cell values do not converge",
            "node limit": "branch-and-bound reached its node limit without finishing (raise --node-limit)",
            "error": "the engine stopped"}


Writes = dict[str, dict[str, dict[str, Any]]]  # {"values" | "cached": {sheet: {cell: value}}}


def solve_model(book: Book, model: SolverModel, options: Options = Options()) -> tuple[Outcome, Writes]:
    """Solve one model: (outcome, what to write), or SolveError naming the failure; the book is not touched."""
    if options.engine not in SOLVE_ENGINES:
        raise SettingsError(f"unknown engine {options.engine!r}; choose one of {', '.join(SOLVE_ENGINES)}")
    start = time.perf_counter()
    model = checked(book, model)
    device = pick_device(options.device, max(options.multistart, 1) * len(model.variables) * 100)
    with torch_threads(1):  # a sheet's tensors are tiny: threads only add synchronisation
        built = build(book, model, device)
        with torch.no_grad():
            before = float(built.problem.evaluate(built.problem.x0[None])[0][0]) if model.objective else None
        try:
            result = run(built, model, options)
        except DivergedError as exc:
            raise DivergedError(f"sheet '{model.sheet}': {exc}. Nothing was written.") from None
    if result.status not in ("optimal", "locally optimal"):
        detail = f" ({result.message})" if result.message else ""
        raise SolveError(f"{result.status}: {FAILURES.get(result.status, result.status)}{detail}; nothing was written",
                         sheet=model.sheet, path=book.name)
    outcome = Outcome(model.sheet, result.status, result.engine, str(device),
                      _quoted(model.objective) if model.objective else None, before,
                      result.objective if model.objective else None, result.iterations,
                      time.perf_counter() - start, result.max_violation, result.trace, result.message)
    return outcome, _writes(built, model, result.x)


def _quoted(cell: Cell) -> str:
    """"'bias'!Z4": the objective cell as `--json` reports it (the sheet always quoted, as Excel's names write it)."""
    return "'" + cell[0].replace("'", "''") + "'!" + cell_name(cell[1], cell[2])


def _writes(built: Built, model: SolverModel, x: torch.Tensor) -> Writes:
    """The variable cells' new values and the cached values of every formula the compile touched."""
    out: dict[str, dict[str, Any]] = {}
    for (sheet, r, c), v in zip(model.variables, x.detach().cpu().tolist()):
        out.setdefault(sheet, {})[cell_name(r, c)] = v
    with torch.no_grad():
        values = built.compiled.values(x)
    return {"values": out, "cached": as_cached(values, leave_out=built.book.extra)}


def apply(book: Book, writes: Writes) -> None:
    """Buffer what solve_model computed into the book (the caller commits)."""
    for sheet, cells in writes["values"].items():
        for cell, v in cells.items():
            book.write(sheet, cell, v)
    for sheet, cells in writes["cached"].items():
        book.write_cached(sheet, cells)
