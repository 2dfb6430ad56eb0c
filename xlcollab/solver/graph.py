"""The dependency graph: formula cells grouped into blocks, compiled in dependency order, cycles found.

Cells of one sheet whose formulas share an R1C1 form (and array extent) form one group, compiled by one
`Block`. Groups are compiled on demand, depth first with an explicit stack (no recursion limit): a group's
statically referenced formula cells first, then itself; references found only while lowering (INDEX, OFFSET
and look-up targets) come back as NotReady and are compiled the same way. A group that depends on itself,
or a cycle through a group of several cells, splits that group into single cells; a cycle of single cells
is a circular reference.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from xlcollab.errors import WorkbookError
from xlcollab.solver import criteria, functions, logic, lookup  # noqa: F401  (importing them registers the Excel functions)
from xlcollab.solver.lower import Block, DependsOnFailed, Ragged
from xlcollab.solver.forms import group_formulas, parse_formula
from xlcollab.solver.parse import Call, Name, Node, ParseError, Ref
from xlcollab.solver.refs import Cell, a1, cell_label
from xlcollab.solver.values import ERR, Env, Run, Unsupported, distinct
from xlcollab.solver.workbook import CONST, FAILED, NotReady, SheetData, Workbook

TODO, ACTIVE, DONE, BROKEN, SPLIT = range(5)
# arguments read for their position only (their cells' values are not needed): no static dependency
_POSITION_ARGS = {"INDEX": (0,), "OFFSET": (0,), "VLOOKUP": (1,), "HLOOKUP": (1,), "ROW": (0,), "COLUMN": (0,),
                  "ROWS": (0,), "COLUMNS": (0,)}


@dataclass(eq=False)
class Group:
    """Formula cells of one sheet with one R1C1 form (hosts rows[i], cols[i]; an array formula's extent)."""
    sheet: str
    key: str
    tree: Node | None
    problem: str | None          # why the formula could not be parsed
    rows: np.ndarray
    cols: np.ndarray
    extent: tuple[int, int]
    array: bool
    state: int = TODO
    deps: list[int] | None = None      # the groups it reads (indices into Program.groups)
    run: Callable[[Env], torch.Tensor] | None = None  # env -> (B, cells), for a group on the variables' path
    why: str = ""                 # why it failed (BROKEN)

    @property
    def first(self) -> Cell:
        return (self.sheet, int(self.rows[0]), int(self.cols[0]))

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        eh, ew = self.extent
        rows = self.rows[:, None, None] + np.arange(eh)[None, :, None]
        cols = self.cols[:, None, None] + np.arange(ew)[None, None, :]
        return np.broadcast_to(rows, (len(self.rows), eh, ew)), np.broadcast_to(cols, (len(self.rows), eh, ew))


@dataclass
class Program:
    """Every group of the loaded sheets, and the compiled ones that depend on the variables, in order."""
    wb: Workbook
    device: torch.device
    notes: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    sources: list[Group] = field(default_factory=list)   # env.src[k + 1] is sources[k]'s output (B, G, h, w)
    runs_read: set[Run] = field(default_factory=set)     # the runs of cells the evaluations read (Env.run)
    _splits: dict[int, tuple[list[int], list[Run | None]]] = field(default_factory=dict)  # source -> its cut
    _splits_for: int = 0                                 # len(runs_read) when _splits were planned

    def __post_init__(self) -> None:
        self.wb.on_load = self.register

    # -- building groups ---------------------------------------------------------------------------------
    def register(self, data: SheetData) -> None:
        """Parse every formula of a newly loaded sheet and group the cells that share an R1C1 form."""
        for extent, formulas in data.formulas.items():
            rows, cols = np.array(formulas.rows), np.array(formulas.cols)
            for key, tree, problem, idx in group_formulas(formulas.values, rows, cols):
                self._add(Group(data.name, key, tree, problem, rows[idx], cols[idx], extent or (1, 1),
                                extent is not None))

    def _add(self, g: Group) -> None:
        self.groups.append(g)
        rows, cols = g.cells()
        self.wb.sheet(g.sheet).group[rows, cols] = len(self.groups) - 1

    def split(self, g: Group) -> None:
        """Replace a group by one group per cell."""
        g.state = SPLIT
        for other in self.groups:
            other.deps = None
        for r, c in zip(g.rows, g.cols):
            self._add(Group(g.sheet, g.key, g.tree, g.problem, np.array([r]), np.array([c]), g.extent, g.array))

    def group_of(self, cell: Cell) -> Group | None:
        sheet, r, c = cell
        data = self.wb.sheet(sheet)
        if not data.inside(np.array(r), np.array(c)) or data.group[r, c] < 0:
            return None
        return self.groups[data.group[r, c]]

    # -- static dependencies -----------------------------------------------------------------------------------
    def static_deps(self, g: Group) -> list[int]:
        """The groups of the formula cells this group's references read (not the position-only ones)."""
        if g.deps is None:
            found: set[int] = set()
            for sheet, rows, cols in self._read_cells(g):
                ids = self.wb.sheet(sheet).group[rows, cols]
                found |= set(distinct(ids[ids >= 0]).tolist())
            g.deps = sorted(found)
        return g.deps

    def dep_cells(self, g: Group) -> list[Cell]:
        """The formula cells this group's references read."""
        cells: set[Cell] = set()
        for sheet, rows, cols in self._read_cells(g):
            hit = self.wb.sheet(sheet).group[rows, cols] >= 0
            cells |= {(sheet, int(r), int(c)) for r, c in zip(rows[hit], cols[hit])}
        return sorted(cells)

    def _read_cells(self, g: Group):
        """(sheet, rows, cols) arrays of the cells the group's references cover, clipped to the sheet."""
        if g.tree is None:
            return
        for sheet, r0, c0, r1, c1 in self._rects(g.tree, g, 0):
            r0, c0 = np.maximum(r0, 1), np.maximum(c0, 1)
            h, w = r1 - r0 + 1, c1 - c0 + 1
            if (h < 1).all() or (w < 1).all():
                continue
            if len(r0) > 1 and all((a == a[0]).all() for a in (r0, c0, r1, c1)):  # one rectangle for every cell
                r0, c0, r1, c1, h, w = r0[:1], c0[:1], r1[:1], c1[:1], h[:1], w[:1]
            if len(set(h.tolist())) == 1 and len(set(w.tolist())) == 1 and h[0] * w[0] * len(h) <= 4_000_000:
                rows = (r0[:, None, None] + np.arange(h[0])[None, :, None])
                cols = (c0[:, None, None] + np.arange(w[0])[None, None, :])
                rows, cols = np.broadcast_arrays(rows, cols)
                yield sheet, rows.reshape(-1), cols.reshape(-1)
                continue
            for a, b, c, d in set(zip(r0.tolist(), c0.tolist(), r1.tolist(), c1.tolist())):
                if c < a or d < b:
                    continue
                rr, cc = np.mgrid[a:c + 1, b:d + 1]
                yield sheet, rr.reshape(-1), cc.reshape(-1)

    def sheets_read(self, g: Group) -> set[str]:
        """The sheets whose cells the group's formula reads (position-only arguments too)."""
        return set() if g.tree is None else {rect[0] for rect in self._rects(g.tree, g, 0, every=True)}

    def _rects(self, node: Node, g: Group, depth: int, every: bool = False):
        if isinstance(node, Ref):
            sheet = g.sheet if node.sheet is None else self.wb.real_name(node.sheet)
            if sheet is None:
                return
            n = len(g.rows)
            hosts = (g.rows, g.cols, g.rows, g.cols)
            r0, c0, r1, c1 = (host + v if rel else np.full(n, v) for v, rel, host in
                              zip((node.r0, node.c0, node.r1, node.c1), node.rel, hosts))
            data = self.wb.sheet(sheet)
            yield sheet, np.minimum(r0, r1), np.minimum(c0, c1), np.minimum(np.maximum(r0, r1), data.shape[0] - 1), \
                np.minimum(np.maximum(c0, c1), data.shape[1] - 1)
            return
        if isinstance(node, Name) and depth < 20:
            text = self.wb.name_text(g.sheet if node.sheet is None else node.sheet, node.name)
            if text is not None:
                try:
                    _, tree = parse_formula(text, 1, 1)
                except ParseError:
                    return
                yield from self._rects(tree, g, depth + 1, every)
            return
        skip = _POSITION_ARGS.get(node.name, ()) if isinstance(node, Call) and not every else ()
        children = node.args if isinstance(node, Call) else [getattr(node, a) for a in ("arg", "left", "right")
                                                            if hasattr(node, a)]
        for i, child in enumerate(children):
            if i not in skip:
                yield from self._rects(child, g, depth, every)

    # -- compiling ---------------------------------------------------------------------------------------------------
    def ensure(self, cells: list[Cell], *, strict: bool) -> None:
        """Compile the groups of these formula cells and everything they need; strict: failures raise."""
        while True:
            try:
                self._walk(cells, strict)
                return
            except _Restart:
                for g in self.groups:
                    if g.state == ACTIVE:
                        g.state = TODO

    def _walk(self, cells: list[Cell], strict: bool) -> None:
        try:
            self._walk_roots(cells, strict)
        except _Cycle as cycle:
            first = cycle.loop[0]
            names = " -> ".join(cell_label(x.first) for x in cycle.loop)
            if strict:
                raise WorkbookError(f"circular reference: {names}", sheet=first.sheet, cell=a1(*first.first[1:]),
                                    path=self.wb.book.name) from None
            for g in cycle.loop[:-1]:
                self._fail(g, Unsupported(f"is part of a circular reference ({names})"), False)
            raise _Restart() from None

    def _walk_roots(self, cells: list[Cell], strict: bool) -> None:
        for root_cell in cells:
            root = self.group_of(root_cell)
            if root is None or root.state in (DONE, BROKEN):
                continue
            stack = [root]
            root.state = ACTIVE
            while stack:
                g = stack[-1]
                if g.state in (DONE, BROKEN, SPLIT):
                    stack.pop()
                    continue
                nxt = self._next_dep(g, [self.groups[i] for i in self.static_deps(g)], stack)
                if nxt is not None:
                    stack.append(nxt)
                    nxt.state = ACTIVE
                    continue
                try:
                    self.lower(g)
                    g.state = DONE
                except NotReady as need:
                    nxt = self._next_dep(g, [x for x in map(self.group_of, need.cells) if x is not None], stack)
                    if nxt is not None:
                        stack.append(nxt)
                        nxt.state = ACTIVE
                except Ragged:
                    self.split(g)
                    raise _Restart() from None
                except (Unsupported, DependsOnFailed) as exc:
                    self._fail(g, exc, strict)

    def _next_dep(self, g: Group, deps: list[Group], stack: list[Group]) -> Group | None:
        """The first of `deps` not compiled yet; splits groups or reports a cycle when one closes."""
        for d in deps:
            if d.state in (DONE, BROKEN):
                continue
            if d.state == SPLIT:
                raise _Restart()
            if d.state != ACTIVE:
                return d
            loop = stack[stack.index(d):]
            multi = [x for x in loop if len(x.rows) > 1]
            if multi:
                for x in multi:
                    self.split(x)
                raise _Restart()
            raise _Cycle(loop + [d])
        return None

    def _fail(self, g: Group, exc: Exception, strict: bool) -> None:
        if isinstance(exc, DependsOnFailed):
            culprit = self.group_of(exc.cell)
            why = culprit.why if culprit is not None else "cannot be compiled"
            message = f"needs {cell_label(exc.cell)}, which {why}"
        else:
            message = str(exc)
        if strict:
            sheet, r, c = g.first
            raise WorkbookError(message, sheet=sheet, cell=a1(r, c), path=self.wb.book.name)
        g.state, g.why = BROKEN, f"cannot be compiled ({message})"
        rows, cols = g.cells()
        self.wb.sheet(g.sheet).src[rows, cols] = FAILED

    def lower(self, g: Group) -> None:
        """Compile one group and record its cells' values (constants) or where they come from (the variables' path)."""
        if g.tree is None:
            raise Unsupported(g.problem or "cannot read the formula")
        block = Block(self.wb, g.sheet, g.rows, g.cols, array=g.array, device=self.device, notes=self.notes,
                      label=cell_label(g.first))
        val = block.fit(block.lower(g.tree), g.extent if g.array else None)
        rows, cols = g.cells()
        shape = rows.shape
        kind = np.broadcast_to(val.kind, shape)
        text = None if val.text is None else np.broadcast_to(val.text, shape)
        data = self.wb.sheet(g.sheet)
        if not val.dynamic:
            data.settle(rows, cols, kind, text, CONST, num=np.broadcast_to(val.num[0].numpy(), shape))
            return
        read = getattr(val.num, "cells", None)
        if read is not None and not (kind == ERR).any():  # only reads other cells (=B5, INDEX(...)): no block of
            src, pos, num = (np.broadcast_to(a, shape) for a in read)  # its own, its cells point where those do
            data.settle(rows, cols, kind, text, src, pos, num)
            return
        inner, full = val.num, shape

        def run(env: Env) -> torch.Tensor:
            t = inner(env)
            if t.shape[1:] != full:  # a value shared by every cell (or row, column) of the block
                t = t.expand(t.shape[0], *full).contiguous()
            return t
        g.run = run
        self.sources.append(g)
        data.settle(rows, cols, kind, text, len(self.sources), np.arange(rows.size).reshape(shape))

    def evaluate(self, x: torch.Tensor, upto: int | None = None) -> Env:
        """Run the compiled groups on x (B, n): env.src holds x and each group's outputs. A source read as two or
        more runs is cut into them in one op as soon as it is there (the runs the evaluations before read)."""
        env = Env([x], runs_read=self.runs_read)
        if self._splits_for != len(self.runs_read):  # new runs were read: plan again
            self._plan_splits(x.shape[1])
        splits = self._splits
        if not splits:
            for g in self.sources[:upto]:
                env.src.append(g.run(env))
            return env
        if 0 in splits:
            env.split(0, *splits[0])
        for g in self.sources[:upto]:
            env.src.append(g.run(env))
            if len(env.src) - 1 in splits:
                env.split(len(env.src) - 1, *splits[len(env.src) - 1])
        return env

    def _plan_splits(self, n: int) -> None:
        """Each source read as two or more runs (x of n cells, a group's output of its cells) -> its cut."""
        self._splits_for = len(self.runs_read)
        self._splits.clear()
        for s in {r[0] for r in self.runs_read}:
            g = self.sources[s - 1] if s else None
            width = n if g is None else g.rows.size * g.extent[0] * g.extent[1]
            plan = _plan_split(s, width, sorted(r[1:] for r in self.runs_read if r[0] == s))
            if plan is not None:
                self._splits[s] = plan


def _plan_split(s: int, width: int, runs: list[tuple[int, int]]) -> tuple[list[int], list[Run | None]] | None:
    """The sizes that cut a source of `width` cells into its runs (sorted (start, n)) and the cells around them, and
    which run each piece is; None when fewer than two runs are read or two overlap (they keep their narrows)."""
    if len(runs) < 2:
        return None
    sizes: list[int] = []
    pieces: list[Run | None] = []
    at = 0
    for start, n in runs:
        if start < at or start + n > width:
            return None
        if start > at:
            sizes.append(start - at)
            pieces.append(None)
        sizes.append(n)
        pieces.append((s, start, n))
        at = start + n
    if at < width:
        sizes.append(width - at)
        pieces.append(None)
    return sizes, pieces


class _Restart(Exception):
    """Groups were split: walk again from the roots."""


class _Cycle(Exception):
    def __init__(self, loop: list[Group]) -> None:
        super().__init__("cycle")
        self.loop = loop
