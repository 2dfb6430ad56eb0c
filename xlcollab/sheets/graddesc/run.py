"""Run and Reset on any Book: what fast.ai's VBA buttons did, read from and written to the tab's named cells.

`run_book` runs the tab's own rule (xlcollab.core.optim) on the tab's data from the tab's state, N epochs,
appends one trace row per epoch, and writes the final a, b and state into the top cells so that the formulas
show the next epoch. `reset_book` puts a, b back at the start values, zeroes the state and clears the trace.
Both check everything before they buffer a write, and buffer the tabs' formulas' values (cached in a file, for
readers that do not calculate) with it; the caller commits.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from xlcollab.book import cells
from xlcollab.book.base import Book, bounds, cell_name, range_name
from xlcollab.errors import SettingsError, WorkbookError
from xlcollab.sheets.graddesc.layout import DATA_FIRST, FIRST, Layout
from xlcollab.sheets.graddesc.simulate import Start, simulate
from xlcollab.sheets.graddesc.specs import DATA, LIMITS, SPECS, tabs
from xlcollab.solver.cached import buffer_formula_values


def read_inputs(book: Book, sheet: str) -> dict[str, float]:
    """The tab's inputs, each checked (lr > 0, β in [0, 1), ε and wd >= 0, γ in (0, 1])."""
    return {inp.name: cells.named_number(book, sheet, inp.name, inp.label, **LIMITS[inp.kind])
            for inp in SPECS[sheet].inputs}


# what each state cell may hold, as limits of xlcollab.core.checks.number
_STATE_LIMITS: dict[str, dict[str, Any]] = {
    "epoch": {"lo": 0, "integer": True}, "step": {"lo": 0, "integer": True}, "lr_now": {"lo": 0},
    "b1t": {"lo": 0, "hi": 1}, "b2t": {"lo": 0, "hi": 1}, "rms_a": {"lo": 0}, "rms_b": {"lo": 0}, "g_rms": {"lo": 0},
}


def read_start(book: Book, sheet: str) -> Start:
    """Inputs plus the state in the top cells (epochs done, lr, a, b, t, powers, RMS, buffers), each checked."""
    spec, state = SPECS[sheet], {}
    for name in spec.state_names:
        limits = _STATE_LIMITS.get(name, {"lo": 0} if name[:2] in ("s_", "v_") else {})  # sums/averages of squares
        value = cells.named_number(book, sheet, name, f"the state cell '{name}'", **limits)
        state[name] = int(value) if limits.get("integer") else value
    return Start(read_inputs(book, sheet), state)


def read_data(book: Book) -> tuple[list[float], list[float]]:
    """x and y from the `data` tab's named blocks, every value a number."""
    if DATA not in book.sheet_names():
        raise WorkbookError(f"no '{DATA}' tab: is this the graddesc workbook? (`xlcollab build` writes one)", path=book.name)
    columns = []
    for col, name in enumerate(("x", "y"), start=1):
        ref = book.ref_of(DATA, name)
        r0, c0, _, c1 = bounds(ref)
        if (r0, c0, c1) != (DATA_FIRST, col, col):  # the step formulas read data!A5, data!B5, ...
            raise WorkbookError(f"the name '{name}' is {ref}, but the step formulas read it from "
                                f"{cell_name(DATA_FIRST, col)} down; rebuild the workbook", sheet=DATA, path=book.name)
        columns.append(cells.numbers_in(book, DATA, name, name)[:, 0].tolist())
    return columns[0], columns[1]


def _norm(formula: Any) -> Any:
    """A formula as text to compare: no $ anchors, spaces or sheet-name quotes (LibreOffice adds them)."""
    return formula.replace("$", "").replace(" ", "").replace("'", "").upper() if isinstance(formula, str) else formula


def check_formulas(book: Book, sheet: str, n: int) -> Layout:
    """The step table must hold exactly the formulas `build` wrote: otherwise torch would not be running the sheet."""
    spec = SPECS[sheet]
    lay = Layout(spec, n)
    ref = book.ref_of(sheet, "steps")
    if ref != lay.steps:
        raise WorkbookError(f"the step table 'steps' is {ref}, expected {lay.steps} for {n} data points; "
                            "rebuild the workbook (xlcollab build) after changing the number of points",
                            sheet=sheet, path=book.name)
    found = book.read(sheet, ref)
    for i, (got_row, want_row) in enumerate(zip(found, lay.formulas())):
        for j, (got, want) in enumerate(zip(got_row, want_row)):
            if _norm(got) != _norm(want):
                raise WorkbookError(f"holds {got!r} where the step table needs the formula {want}; undo the edit "
                                    "or rebuild the workbook", sheet=sheet, cell=cell_name(FIRST + i, j + 1), path=book.name)
    for name, cell in lay.inputs.items() | lay.state.items():
        if book.ref_of(sheet, name) != cell:
            raise WorkbookError(f"the name '{name}' points at {book.ref_of(sheet, name)}, but the formulas use {cell}",
                                sheet=sheet, path=book.name)
    return lay


def trace_fill(book: Book, sheet: str, *, strict: bool = True) -> tuple[str, int, int]:
    """(trace range, filled rows, capacity); strict: the filled rows must start at the top with no gaps.

    Not strict (for reset), `filled rows` reaches down to the last non-empty row, gaps included.
    """
    ref = book.ref_of(sheet, "trace")
    r0, c0, r1, c1 = bounds(ref)
    if strict:  # run: the epoch column tells which rows are filled (reading one column is 9x cheaper)
        filled = [v is not None and v != "" for (v,) in book.read(sheet, range_name(r0, c0, r1, c0))]
    else:       # reset: every column, so that nothing is left behind
        filled = [any(v is not None and v != "" for v in row) for row in book.read(sheet, ref)]
    if not strict:
        return ref, max((i + 1 for i, f in enumerate(filled) if f), default=0), len(filled)
    used = filled.index(False) if False in filled else len(filled)
    if any(filled[used:]):
        gap = used + filled[used:].index(True)
        raise WorkbookError(f"the trace block has a gap: row {r0 + used} is empty but row {r0 + gap} is not; "
                            "clear it with xlcollab reset", sheet=sheet, cell=cell_name(r0 + gap, c0), path=book.name)
    return ref, used, len(filled)


def run_book(book: Book, sheets: str | Iterable[str], epochs: int) -> dict[str, dict[str, Any]]:
    """Run each tab's own rule for `epochs` epochs from its top cells; append the trace, write the new state.

    Everything is checked before anything is written (buffered in `book`; the caller commits).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise SettingsError(f"epochs must be a whole number >= 1, got {epochs!r}")
    names = tabs(sheets, path=book.name)
    xs, ys = read_data(book)
    plans = []
    for sheet in names:
        book.require_sheet(sheet)
        lay = check_formulas(book, sheet, len(xs))
        start = read_start(book, sheet)
        ref, used, capacity = trace_fill(book, sheet)
        if used + epochs > capacity:
            raise WorkbookError(f"the trace block ({ref}) holds {capacity:,} epochs, {used:,} are filled: "
                                f"{epochs:,} more do not fit; run fewer epochs or xlcollab reset",
                                sheet=sheet, cell=ref.split(":")[1], path=book.name)
        plans.append((sheet, lay, start, used))
    results, writes = {}, []
    for sheet, lay, start, used in plans:
        clock = time.perf_counter()
        trace = simulate(SPECS[sheet], start, xs, ys, epochs, sheet=sheet)
        results[sheet] = {"epochs": epochs, "epoch": start.epoch, "a": start.a, "b": start.b, "loss": trace[-1][3],
                          "lr": trace[-1][4], "seconds": time.perf_counter() - clock}
        writes.append((sheet, lay, start, used, trace))
    for sheet, lay, start, used, trace in writes:  # only once every tab has run: a divergence writes nothing
        r0 = FIRST + used
        book.write(sheet, range_name(r0, lay.trace_col0, r0 + len(trace) - 1, lay.trace_col0 + len(trace[0]) - 1), trace)
        write_state(book, sheet, start)
    buffer_formula_values(book, names)
    return results


def write_state(book: Book, sheet: str, start: Start) -> None:
    """Buffer the state cells (epochs done, lr, a, b, t, powers, RMS, buffers) from `start`."""
    for name in SPECS[sheet].state_names:
        value = start.state[name]
        book.write(sheet, book.ref_of(sheet, name), int(value) if name in ("epoch", "step") else value)


def reset_book(book: Book, sheets: str | Iterable[str]) -> dict[str, dict[str, Any]]:
    """Put a, b back at the start values, zero the state and clear the trace (buffered; the caller commits).

    fast.ai's Adagrad tabs measure their first RMS at the start values, from the `data` tab."""
    names = tabs(sheets, path=book.name)
    data = read_data(book) if any(SPECS[sheet].rms_scaled for sheet in names) else None
    plans = []
    for sheet in names:
        book.require_sheet(sheet)
        inputs = read_inputs(book, sheet)
        for name in SPECS[sheet].state_names:
            book.ref_of(sheet, name)
        ref, used, _ = trace_fill(book, sheet, strict=False)
        plans.append((sheet, inputs, ref, used))
    results = {}
    for sheet, inputs, ref, used in plans:
        start = Start.fresh(SPECS[sheet], inputs, data)
        write_state(book, sheet, start)
        if used:
            r0, c0, _, c1 = bounds(ref)
            book.write(sheet, range_name(r0, c0, r0 + used - 1, c1), [[None] * (c1 - c0 + 1) for _ in range(used)])
        results[sheet] = {"a": start.a, "b": start.b, "cleared": used}
    buffer_formula_values(book, names)
    return results
