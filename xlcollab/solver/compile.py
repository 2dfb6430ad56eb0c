"""Any workbook's formulas -> one batched, differentiable torch function of its variable cells.

`compile_cells(book, variables, outputs)` follows the outputs' precedents through formulas, across sheets
and defined names, down to the variable cells and constants; constant parts are folded at compile time,
each filled block becomes one set of batched tensor operations. The result maps x (n,) or (B, n) to one
tensor per output range and, for writing cached values, gives every formula cell of the touched sheets.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from xlcollab.book.base import Book
from xlcollab.errors import WorkbookError
from xlcollab.solver.graph import Group, Program
from xlcollab.solver.lower import gather_thunk
from xlcollab.solver.refs import Cell, a1, cell_label
from xlcollab.solver.values import BLANK, BOOL, ERR, NUM, TEXT, Num, distinct
from xlcollab.solver.workbook import FAILED, PENDING, Workbook

__all__ = ["Cell", "Compiled", "compile_cells"]


@dataclass(frozen=True)
class Compiled:
    """The compiled model: x[..., i] is the value of variables[i]; calling it gives the outputs' values."""
    variables: list[Cell]
    x0: torch.Tensor
    outputs: list[list[Cell]]
    notes: list[str] = field(default_factory=list)   # e.g. zero-gradient functions on the variables' path
    _program: Program = field(default=None, repr=False, compare=False)
    _reads: list[Num] = field(default_factory=list, repr=False, compare=False)
    _first: Num = field(default=None, repr=False, compare=False)
    _path: int = field(default=0, repr=False)
    _touched: list[str] = field(default_factory=list, repr=False)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (n,) or (batch, n) float64 -> one tensor per output range, shape ((batch,) cells); differentiable."""
        xb, single = self._batch(x)
        outs = self.run(xb)
        return [o[0] for o in outs] if single else outs

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """`self(x)` for x already (batch, n) float64 on the compile's device, unchecked: the engines' inner loop."""
        env = self._program.evaluate(x, self._path)
        return [r(env) if callable(r) else r.expand(x.shape[0], -1) for r in self._reads]

    def first_cell(self, x: torch.Tensor) -> torch.Tensor:
        """The first output range's first cell as (batch,), for x as `run` takes it: an objective read with no
        indexing op on the path of every evaluation."""
        first = self._first
        return first(self._program.evaluate(x, self._path)) if callable(first) else first.expand(x.shape[0])

    def values(self, x: torch.Tensor, sheets: Sequence[str] | None = None) -> dict[Cell, float | str | bool | None]:
        """Every formula cell on `sheets` (default: every sheet the compile touched), evaluated at x (n,): for
        writing cached values.

        Numbers are floats, TRUE/FALSE bools, text str, errors their text ("#DIV/0!"; a number that is not
        finite at x is the error Excel would show there); cells whose formulas the compiler cannot evaluate
        (functions off the variables' path it does not know, circular references) are left out.
        """
        prog = self._program
        sheets = self._touched if sheets is None else [prog.wb.sheet(s).name for s in sheets]
        for sheet in sheets:
            data = prog.wb.sheet(sheet)
            rows, cols = np.nonzero(data.src == PENDING)
            prog.ensure([(sheet, int(r), int(c)) for r, c in zip(rows, cols)], strict=False)
        xb, _ = self._batch(x)
        with torch.no_grad():
            env = prog.evaluate(xb[:1])
        out: dict[Cell, float | str | bool | None] = {}
        for sheet in sheets:
            data = prog.wb.sheet(sheet)
            rows, cols = np.nonzero((data.group >= 0) & (data.src != FAILED))
            kind, num, text, src, pos = data.lookup(rows, cols)
            nums = num.astype(float).copy()
            dyn = src >= 0
            for s in distinct(src[dyn]):
                nums[src == s] = env.flat(s)[0, torch.as_tensor(pos[src == s])].cpu().numpy()
            for r, c, k, v, t in zip(rows, cols, kind, nums, text):
                out[(sheet, int(r), int(c))] = _cell_value(int(k), float(v), str(t))
        return out

    def readers(self, sheets: Iterable[str]) -> list[str]:
        """`sheets` and every touched sheet whose formulas read them, directly or through other sheets."""
        prog = self._program
        found = {prog.wb.sheet(s).name for s in sheets}
        reads: dict[str, set[str]] = {}
        for g in prog.groups:
            reads.setdefault(g.sheet, set()).update(prog.sheets_read(g))
        grew = True
        while grew:
            more = {s for s, read in reads.items() if read & found} - found
            found |= more
            grew = bool(more)
        return [s for s in self._touched if s in found]

    def _batch(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(x, dtype=torch.float64, device=self.x0.device)
        if x.shape[-1:] != (len(self.variables),) or x.dim() > 2:
            raise ValueError(f"x must have shape ({len(self.variables)},) or (batch, {len(self.variables)}), "
                             f"got {tuple(x.shape)}")
        return (x[None], True) if x.dim() == 1 else (x, False)


def compile_cells(book: Book, variables: Sequence[Cell], outputs: Sequence[Sequence[Cell]], *,
                  device: str | torch.device = "cpu", sheets: Sequence[str] = ()) -> Compiled:
    """Compile the formulas from `variables` to `outputs` (lists of (sheet, row, col), 1-based) into torch;
    `sheets` are touched too (their formula cells in `values`), whether the outputs need them or not."""
    device = torch.device(device)
    wb = Workbook(book)
    prog = Program(wb, device)
    for sheet in sheets:
        wb.sheet(sheet)
    variables = [_real(wb, c) for c in variables]
    x0 = _place_variables(wb, variables, book)
    outputs = [[_real(wb, c) for c in out] for out in outputs]
    prog.ensure([c for out in outputs for c in out], strict=True)
    reads = [_read_output(prog, out) for out in outputs]
    first = _read_output(prog, outputs[0][:1], flat=True) if outputs and outputs[0] else None
    for note in prog.notes:
        warnings.warn(note, stacklevel=2)
    touched = wb.loaded()
    return Compiled(variables, x0.to(device), outputs, list(prog.notes), prog, reads, first, len(prog.sources), touched)


def _cell_value(kind: int, num: float, text: str) -> float | str | bool | None:
    if kind == NUM:
        return num if math.isfinite(num) else "#NUM!" if math.isnan(num) else "#DIV/0!"
    if kind == BOOL:
        return bool(num)
    return text if kind in (TEXT, ERR) else None


def _real(wb: Workbook, cell: Cell) -> Cell:
    sheet, r, c = cell
    real = wb.real_name(sheet)
    if real is None:
        raise WorkbookError(f"no sheet named '{sheet}'", path=wb.book.name)
    return real, int(r), int(c)


def _place_variables(wb: Workbook, variables: list[Cell], book: Book) -> torch.Tensor:
    """Mark the variable cells as x's elements; their current values (blank = 0) are x0. One array pass per sheet;
    the first bad variable in the model's order is the one named."""
    if len(set(variables)) != len(variables):
        dup = next(c for c in variables if variables.count(c) > 1)
        raise WorkbookError("a variable cell is listed twice", sheet=dup[0], cell=a1(dup[1], dup[2]), path=book.name)
    x0 = np.zeros(len(variables))
    by_sheet: dict[str, list[int]] = {}
    for i, (sheet, _, _) in enumerate(variables):
        by_sheet.setdefault(sheet, []).append(i)
    bad: list[tuple[int, str]] = []  # (variable, what is wrong)
    for sheet, idx in by_sheet.items():
        data = wb.sheet(sheet)
        rows = np.array([variables[i][1] for i in idx])
        cols = np.array([variables[i][2] for i in idx])
        if not data.inside(rows, cols).all():
            data.grow(int(rows.max()), int(cols.max()))
        kind = data.kind[rows, cols]
        formula = data.group[rows, cols] >= 0
        other = ~np.isin(kind, (NUM, BLANK, BOOL))
        for j in np.flatnonzero(formula | other)[:1]:
            shown = data.text[rows[j], cols[j]]
            held = f"text {shown!r}" if kind[j] == TEXT else f"the error {shown}"
            bad.append((idx[j], "a variable cell holds a formula; Solver changes only constant cells" if formula[j]
                        else f"a variable cell holds {held}, not a number"))
        x0[idx] = data.num[rows, cols]
        data.kind[rows, cols], data.src[rows, cols], data.pos[rows, cols] = NUM, 0, idx
    if bad:
        i, message = min(bad)
        sheet, r, c = variables[i]
        raise WorkbookError(message, sheet=sheet, cell=a1(r, c), path=book.name)
    return torch.as_tensor(x0)


def _read_output(prog: Program, cells: list[Cell], flat: bool = False) -> Num:
    """env -> (B, len(cells)) for one output range (flat: (B,) for one cell); text or errors there are refused,
    naming the cell."""
    if not cells:
        return torch.zeros((1, 0), dtype=torch.float64, device=prog.device)
    parts = [prog.wb.sheet(s).lookup(np.array([r]), np.array([c])) for s, r, c in cells]
    kind, num, text, src, pos = (np.concatenate(p) for p in zip(*parts))
    for cell, k, t in zip(cells, kind, text):
        if k == TEXT:
            raise WorkbookError(f"holds text ({t!r}) where a number is needed", sheet=cell[0],
                                cell=a1(cell[1], cell[2]), path=prog.wb.book.name)
        if k == ERR:
            origin = _error_origin(prog, cell)
            where = f" (it starts at {cell_label(origin)})" if origin != cell else ""
            raise WorkbookError(f"evaluates to the error {t}{where}", sheet=cell[0], cell=a1(cell[1], cell[2]),
                                path=prog.wb.book.name)
    if flat:
        src, pos, num = src.reshape(()), pos.reshape(()), num.reshape(())
    if not (src > 0).any() and not (src == 0).any():
        return torch.as_tensor(num, dtype=torch.float64, device=prog.device)[None]
    return gather_thunk(src, pos, num, prog.device)  # (B, len(cells)), or (B,): pos is one-dimensional, or 0-d


def _error_origin(prog: Program, cell: Cell) -> Cell:
    """Follow error values back through the formulas to the first cell that holds one."""
    seen = {cell}
    while True:
        g = prog.group_of(cell)
        if g is None or g.tree is None:
            return cell
        anchor = _anchor(g, cell)
        single = Group(g.sheet, g.key, g.tree, None, np.array([anchor[0]]), np.array([anchor[1]]), g.extent, g.array)
        nxt = None
        for dep in prog.dep_cells(single):
            data = prog.wb.sheet(dep[0])
            if dep not in seen and data.kind[dep[1], dep[2]] == ERR:
                nxt = dep
                break
        if nxt is None:
            return cell
        seen.add(nxt)
        cell = nxt


def _anchor(g: Group, cell: Cell) -> tuple[int, int]:
    """The host (row, col) of the group member whose extent holds `cell`."""
    eh, ew = g.extent
    _, r, c = cell
    k = np.nonzero((g.rows <= r) & (r < g.rows + eh) & (g.cols <= c) & (c < g.cols + ew))[0][0]
    return int(g.rows[k]), int(g.cols[k])
