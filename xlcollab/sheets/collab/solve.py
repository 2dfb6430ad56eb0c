"""Solve the collab_filter tabs through the one Solver path (xlcollab.solver): each tab's own Solver model, its
formulas compiled into torch, so a student who edits a formula gets that formula solved. What only our tabs
have stays here, thin: the named blocks checked first (blocks.py: readable errors), each tab's default settings
(layout.DEFAULTS through core.settings), and the trace and "last run" blocks written after the solve. Every
epoch is one full-batch step of the GRG engine (for L-BFGS one iteration with its line search), as Solver sees
the whole sheet; the trace records the RMSE before each step and after the last one. Nothing is written unless
every requested tab solved; the caller commits.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from xlcollab.book.base import Book, bounds
from xlcollab.core.device import pick_device
from xlcollab.core.settings import SolveSettings, check_solve
from xlcollab.errors import WorkbookError
from xlcollab.sheets.collab.blocks import read_tab
from xlcollab.sheets.collab.layout import DEFAULTS, SCHEDULES, tabs
from xlcollab.sheets.common import LAST_RUN_LABELS
from xlcollab.solver import solve as solver
from xlcollab.solver.engines import grg
from xlcollab.solver.model import read_model


def settings_for(sheet: str, *, optimizer: str | None, lr: float | None, epochs: int | None, wd: float | None,
                 device: str) -> SolveSettings:
    """The tab's defaults (layout.DEFAULTS) overridden by what the user gave (core.settings.SOLVE checks them),
    on the torch device the solve runs on: a tab is tiny, so auto means the CPU and cuda forces."""
    s = check_solve(DEFAULTS[sheet], optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device)
    return replace(s, device=str(pick_device(s.device, 0)))


def trace_rows(trace: list[float], rows: int) -> list[list[Any]]:
    """`rows` (epoch, RMSE) pairs evenly spaced from epoch 0 to the last, blank-padded."""
    last = len(trace) - 1
    picks = sorted({round(i * last / (rows - 1)) for i in range(rows)}) if last >= rows else list(range(last + 1))
    out: list[list[Any]] = [[e, trace[e]] for e in picks]
    return out + [[None, None]] * (rows - len(out))


def write_run(book: Book, sheet: str, outcome: solver.Outcome, s: SolveSettings) -> None:
    """Buffer the trace and the "last run" block of one solved tab."""
    r0, c0, r1, c1 = bounds(book.ref_of(sheet, "trace"))
    if c1 - c0 != 1 or r1 - r0 < 1:
        raise WorkbookError("the trace block must be 2 columns (epoch, RMSE) and at least 2 rows", sheet=sheet,
                            path=book.name)
    book.write_name(sheet, "trace", trace_rows(outcome.trace, r1 - r0 + 1))
    values = [s.optimizer, s.lr, s.epochs, s.wd, s.device, round(outcome.seconds, 4), outcome.objective_before,
              outcome.objective_after]
    book.write_name(sheet, "last_run", [[v] for v in values[:len(LAST_RUN_LABELS)]])


def solve_book(book: Book, sheets: list[str] | str = "all", *, optimizer: str | None = None, lr: float | None = None,
               epochs: int | None = None, wd: float | None = None, device: str = "auto",
               multistart: int = 0) -> dict[str, dict[str, Any]]:
    """Solve each tab's Solver model with the tab's settings; every tab is checked and solved before any write."""
    names = tabs(sheets, path=book.name)
    for name in names:
        book.require_sheet(name)
    done = []
    for name in names:
        book.status(f"xlcollab: solving {name}")
        s = settings_for(name, optimizer=optimizer, lr=lr, epochs=epochs, wd=wd, device=device)
        read_tab(book, name)  # the blocks' cells checked: a bad one is named before anything is compiled
        options = solver.Options(engine="grg", device=s.device, multistart=multistart,
                                 grg=grg.Settings(optimizer=s.optimizer, lr=s.lr, iterations=s.epochs, wd=s.wd,
                                                  schedule=SCHEDULES.get(name, "constant")))
        outcome, writes = solver.solve_model(book, read_model(book, name), options)
        done.append((name, s, outcome, writes))
    results: dict[str, dict[str, Any]] = {}
    for name, s, outcome, writes in done:
        solver.apply(book, writes)
        write_run(book, name, outcome, s)
        results[name] = {"start_rmse": outcome.objective_before, "final_rmse": outcome.objective_after,
                         "optimizer": s.optimizer, "lr": s.lr, "epochs": s.epochs, "wd": s.wd} | outcome.as_json()
    return results
