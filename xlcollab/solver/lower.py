"""Lowering: one formula tree, evaluated for every cell of a filled block at once, into Vals and thunks.

A `Block` holds the G host cells (numpy row/col arrays) and lowers the shared R1C1 tree once: references
become per-cell rectangles (`RefVal`, resolved at compile time), reads of cells become one static gather
per reference, operators and functions become tensor operations over a (B, G, h, w) layout. Legacy Excel
semantics: outside array formulas and array-typed arguments, a multi-cell reference where one value is
expected is intersected with the host cell's row or column.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Callable, Iterator, Sequence
from typing import Union

import numpy as np
import torch

from xlcollab.solver import ops
from xlcollab.solver.forms import parse_formula
from xlcollab.solver.parse import ArrayLit, Binary, Bool, Call, Err, Missing, Name, Node, Num, ParseError, Ref, Str, Unary
from xlcollab.solver.refs import MAX_COL, MAX_ROW
from xlcollab.solver.values import (ERR, TEXT, Env, Unsupported, Val, broadcast, const_val, distinct, error,
                                    from_python, lift, scalar, tensor)
from xlcollab.solver.workbook import FAILED, PENDING, NotReady, Workbook

_mask_ids = itertools.count()


@dataclass(frozen=True)
class RefVal:
    """A reference resolved at compile time: per host cell the top-left corner, one shape for all."""
    sheet: str
    r0: np.ndarray  # (G|1,) int64
    c0: np.ndarray
    h: int
    w: int

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.r0[:, None, None] + np.arange(self.h)[None, :, None]
        cols = self.c0[:, None, None] + np.arange(self.w)[None, None, :]
        return np.broadcast_to(rows, (len(self.r0), self.h, self.w)), np.broadcast_to(cols, (len(self.c0), self.h, self.w))


Lowered = Union[RefVal, Val]
Function = Callable[["Block", Sequence[Node]], Lowered]
FUNCTIONS: dict[str, Function] = {}  # filled by functions.py, logic.py, lookup.py and criteria.py


def register(*names: str, lo: int = 1, hi: int | None = None) -> Callable[[Function], Function]:
    """Add an Excel function under its names, checking its argument count."""
    def wrap(fn: Function) -> Function:
        def checked(block: Block, args: Sequence[Node]) -> Lowered:
            if len(args) < lo or (hi is not None and len(args) > hi):
                most = "" if hi == lo else f" to {hi}" if hi else " or more"
                raise Unsupported(f"{names[0]} takes {lo}{most} arguments, not {len(args)}")
            return fn(block, args)
        for n in names:
            FUNCTIONS[n] = checked
        return fn
    return wrap


@dataclass(frozen=True)
class Mask:
    """The cells an IF branch takes: a static array, or an id the IF's thunk fills in at each evaluation."""
    id: int
    shape: tuple[int, ...]
    static: torch.Tensor | None = None


class Block:
    """Lowers formula trees for the host cells (sheet, rows[g], cols[g]), g < G."""

    def __init__(self, wb: Workbook, sheet: str, rows: np.ndarray, cols: np.ndarray, *, array: bool,
                 device: torch.device, notes: list[str], label: str) -> None:
        self.wb, self.sheet, self.rows, self.cols = wb, sheet, rows, cols
        self.G = len(rows)
        self.array, self.device, self.notes, self.label = array, device, notes, label
        self.masks: list[Mask] = []
        self.risky = False          # lowered a function that can give inf/NaN gradients (sqrt, log, /, ^)
        self._name_depth = 0

    # -- contexts -----------------------------------------------------------------------------------------
    @contextmanager
    def array_context(self, on: bool = True) -> Iterator[None]:
        saved, self.array = self.array, on
        try:
            yield
        finally:
            self.array = saved

    @contextmanager
    def masked(self, mask: Mask | None) -> Iterator[None]:
        if mask is not None:
            self.masks.append(mask)
        try:
            yield
        finally:
            if mask is not None:
                self.masks.pop()

    def new_mask(self, shape: tuple[int, ...], static: np.ndarray | None = None) -> Mask:
        return Mask(next(_mask_ids), shape, None if static is None else tensor(static).to(self.device))

    # -- the tree -------------------------------------------------------------------------------------------
    def lower(self, node: Node) -> Lowered:
        if isinstance(node, Ref):
            return self.ref(node)
        if isinstance(node, (Num, Str, Bool)):
            return scalar(node.value)
        if isinstance(node, Err):
            return error(node.code)
        if isinstance(node, Missing):
            return scalar(None)
        if isinstance(node, ArrayLit):
            return from_python(np.array([[[getattr(v, "code", v) for v in row] for row in node.rows]], dtype=object))
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary):
            arg = self.operand(node.arg)
            return ops.negate(arg, self.device) if node.op == "-" else ops.percent(arg, self.device)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            fn = FUNCTIONS.get(node.name)
            if fn is None:
                raise Unsupported(f"the function {node.name} is not supported")
            return fn(self, node.args)
        raise Unsupported(f"cannot compile {node!r}")

    def binary(self, node: Binary) -> Lowered:
        if node.op == ":":
            return self.span(self.lower(node.left), self.lower(node.right))
        a, b = self.operand(node.left), self.operand(node.right)
        if node.op == "&":
            return ops.concat(a, b)
        if node.op in ("+", "-", "*", "/", "^"):
            self.risky |= node.op in ("/", "^")
            return ops.arithmetic(node.op, a, b, self.device)
        return ops.compare(node.op, a, b, self.device)

    def span(self, a: Lowered, b: Lowered) -> RefVal:
        """The range operator: the smallest rectangle holding both references."""
        if not (isinstance(a, RefVal) and isinstance(b, RefVal)) or a.sheet != b.sheet:
            raise Unsupported("the range operator ':' needs two references on one sheet")
        r0, c0 = np.minimum(a.r0, b.r0), np.minimum(a.c0, b.c0)
        r1, c1 = np.maximum(a.r0 + a.h, b.r0 + b.h) - 1, np.maximum(a.c0 + a.w, b.c0 + b.w) - 1
        return self.rect(a.sheet, r0, c0, r1, c1)

    def rect(self, sheet: str, r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray) -> RefVal:
        h, w = r1 - r0 + 1, c1 - c0 + 1
        if (h != h.flat[0]).any() or (w != w.flat[0]).any():
            raise Ragged()
        if (r0 < 1).any() or (c0 < 1).any() or (r1 > MAX_ROW).any() or (c1 > MAX_COL).any():
            raise RefOutside()
        return RefVal(sheet, np.asarray(r0, np.int64), np.asarray(c0, np.int64), int(h.flat[0]), int(w.flat[0]))

    def ref(self, node: Ref) -> RefVal:
        sheet = self.sheet if node.sheet is None else self.wb.real_name(node.sheet)
        if sheet is None:
            raise Unsupported(f"no sheet named '{node.sheet}'")
        coords = []
        for value, rel, host in ((node.r0, node.rel[0], self.rows), (node.c0, node.rel[1], self.cols),
                                 (node.r1, node.rel[2], self.rows), (node.c1, node.rel[3], self.cols)):
            coords.append(host + value if rel else np.array([value]))
        r0, c0, r1, c1 = coords
        if node.whole == "col":  # A:A reads only as far down as the sheet holds anything
            r1 = np.minimum(r1, max(self.wb.sheet(sheet).shape[0] - 1, 1))
        if node.whole == "row":
            c1 = np.minimum(c1, max(self.wb.sheet(sheet).shape[1] - 1, 1))
        g = max(len(x) for x in (r0, c0, r1, c1))
        r0, c0, r1, c1 = (np.broadcast_to(x, (g,)) for x in (r0, c0, r1, c1))
        lo_r, lo_c, hi_r, hi_c = np.minimum(r0, r1), np.minimum(c0, c1), np.maximum(r0, r1), np.maximum(c0, c1)
        return self.rect(sheet, lo_r, lo_c, hi_r, hi_c)

    def name(self, node: Name) -> Lowered:
        sheet = self.sheet if node.sheet is None else (self.wb.real_name(node.sheet) or node.sheet)
        text = self.wb.name_text(sheet, node.name)
        if text is None:
            return error("#NAME?")
        if self._name_depth > 20:
            raise Unsupported(f"the defined name {node.name} refers to itself")
        try:
            _, tree = parse_formula(text, 1, 1)
        except ParseError as exc:
            raise Unsupported(f"the defined name {node.name}: {exc}") from None
        self._name_depth += 1
        try:  # relative references in a name are stored relative to A1 and mean "relative to the using cell"
            return self.lower(tree)
        finally:
            self._name_depth -= 1

    # -- values -----------------------------------------------------------------------------------------------
    def operand(self, node: Node | Lowered) -> Val:
        """The value of an argument where Excel expects one value per cell (intersecting outside arrays)."""
        x = self.lower(node) if isinstance(node, Node) else node
        if isinstance(x, RefVal):
            if not self.array and (x.h, x.w) != (1, 1):
                return self.intersect(x)
            return self.gather(x)
        return x

    def values(self, node: Node | Lowered) -> Val:
        """The value of an argument as a whole array (ranges are read in full)."""
        x = self.lower(node) if isinstance(node, Node) else node
        return self.gather(x) if isinstance(x, RefVal) else x

    def intersect(self, ref: RefVal) -> Val:
        """Implicit intersection: the cell of a one-row/one-column range on the host's column/row."""
        if ref.w == 1:
            inside = (self.rows >= ref.r0) & (self.rows < ref.r0 + ref.h)
            r0, c0 = np.where(inside, self.rows, ref.r0), np.broadcast_to(ref.c0, (self.G,))
        elif ref.h == 1:
            inside = (self.cols >= ref.c0) & (self.cols < ref.c0 + ref.w)
            r0, c0 = np.broadcast_to(ref.r0, (self.G,)), np.where(inside, self.cols, ref.c0)
        else:
            inside = ((self.rows >= ref.r0) & (self.rows < ref.r0 + ref.h) & (self.cols >= ref.c0)
                      & (self.cols < ref.c0 + ref.w))
            r0, c0 = np.where(inside, self.rows, ref.r0), np.where(inside, self.cols, ref.c0)
        val = self.gather(RefVal(ref.sheet, np.asarray(r0), np.asarray(c0), 1, 1))
        if inside.all():
            return val
        bad = np.broadcast_to(~inside[:, None, None], (self.G, 1, 1))
        return ops.select(bad, error("#VALUE!"), val, self.device)

    def gather(self, ref: RefVal) -> Val:
        """Read the cells of a reference: constants now, values on the variables' path at each evaluation."""
        data = self.wb.sheet(ref.sheet)
        rows, cols = ref.grid()
        kind, num, text, src, pos = data.lookup(rows, cols)
        if (src == PENDING).any():
            rr, cc = rows[src == PENDING], cols[src == PENDING]
            raise NotReady(sorted({(ref.sheet, int(r), int(c)) for r, c in zip(rr, cc)}))
        if (src == FAILED).any():
            k = np.argmax((src == FAILED).reshape(-1))
            raise DependsOnFailed((ref.sheet, int(rows.reshape(-1)[k]), int(cols.reshape(-1)[k])))
        has_text = bool(np.isin(kind, (TEXT, ERR)).any())
        if not (src >= 0).any():
            return const_val(kind, num, text if has_text else None)
        text = text if has_text else None
        masked = self.masked_gather(kind, text, src, pos)
        if masked is not None:
            return masked
        return self.apply_masks(Val(kind.astype(np.int8), gather_thunk(src, pos, num, self.device), text))

    def _fits(self, mask: Mask, shape: tuple[int, ...]) -> bool:
        g, h, w = shape
        mg, mh, mw = mask.shape
        return mh in (1, h) and mw in (1, w) and mg in (1, g, self.G)

    def masked_gather(self, kind: np.ndarray, text: np.ndarray | None, src: np.ndarray, pos: np.ndarray) -> Val | None:
        """A read of one source under static IF masks (see logic.IF) as one gather: where a branch is not taken,
        the cell's value comes from a detached copy of the source (the same value, no gradient), so a NaN/inf
        gradient there never reaches the variables, with no where() per read. None: not such a read."""
        taken, shape = None, src.shape
        for mask in self.masks:
            if not self._fits(mask, shape):
                continue
            if mask.static is None:
                return None
            shape = (max(shape[0], mask.shape[0]),) + shape[1:]
            m = mask.static[0].cpu().numpy()
            taken = np.broadcast_to(m, shape) if taken is None else np.broadcast_to(taken, shape) & m
        first = src.flat[0] if src.size else -1
        if taken is None or first < 0 or (src != first).any():
            return None
        thunk = _detached_gather(int(first), np.broadcast_to(pos, shape), ~taken)
        return Val(np.broadcast_to(kind, shape).astype(np.int8), thunk,
                   None if text is None else np.broadcast_to(text, shape))

    def apply_masks(self, val: Val) -> Val:
        """Keep NaN/inf gradients of an IF branch not taken away from the variables (see logic.IF)."""
        for mask in self.masks:
            g, h, w = val.shape
            mg, mh, mw = mask.shape
            if not self._fits(mask, val.shape):
                continue
            inner, static, mid = val.num, mask.static, mask.id

            def run(env: Env, inner=inner, static=static, mid=mid) -> torch.Tensor:
                t = inner(env)
                m = static if static is not None else env.masks.get(mid)
                return t if m is None else torch.where(m, t, t.detach())
            val = Val(np.broadcast_to(val.kind, (max(g, mg), h, w)).copy(), run,
                      None if val.text is None else np.broadcast_to(val.text, (max(g, mg), h, w)))
        return val

    def fit(self, out: Lowered, extent: tuple[int, int] | None) -> Val:
        """A formula's result shaped to its cell (ordinary formula: extent None) or to an array formula's extent."""
        if isinstance(out, RefVal):
            out = self.intersect(out) if extent is None and (out.h, out.w) != (1, 1) else self.gather(out)
        eh, ew = extent or (1, 1)
        _, h, w = out.shape
        if h in (1, eh) and w in (1, ew):
            shape = broadcast(out.shape, (self.G, eh, ew))
            return Val(np.broadcast_to(out.kind, shape), out.num,
                       None if out.text is None else np.broadcast_to(out.text, shape))
        return _resize(out, eh, ew, self.device)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def _resize(v: Val, eh: int, ew: int, device: torch.device) -> Val:
    """Excel's fit of an array result to a differently sized range: cut, or pad with #N/A."""
    _, h, w = v.shape
    th, tw = (eh if h == 1 else min(h, eh)), (ew if w == 1 else min(w, ew))
    kind = np.broadcast_to(v.kind, (v.shape[0], max(h, th), max(w, tw)))[:, :th, :tw]
    text = np.broadcast_to(v.texts(), kind.shape[:1] + (max(h, th), max(w, tw)))[:, :th, :tw]
    pad = ((0, 0), (0, eh - th), (0, ew - tw))
    kind = np.pad(kind, pad, constant_values=ERR)
    text = np.pad(text.astype(object), pad, constant_values="#N/A")

    def shape_num(t: torch.Tensor) -> torch.Tensor:
        t = t.expand(*t.shape[:2], max(h, th), max(w, tw))[..., :th, :tw]
        return torch.nn.functional.pad(t, (0, ew - tw, 0, eh - th), value=float("nan"))
    return Val(kind, lift(shape_num, v.num, device=device), text)


class Ragged(Unsupported):
    """The cells of a block would read ranges of different shapes: compile them one by one."""

    def __init__(self) -> None:
        super().__init__("ranges of different sizes across a filled block")


class RefOutside(Unsupported):
    def __init__(self) -> None:
        super().__init__("a reference outside the sheet (#REF!)")


class DependsOnFailed(Exception):
    """A needed cell holds a formula that could not be compiled."""

    def __init__(self, cell: tuple[str, int, int]) -> None:
        super().__init__(cell)
        self.cell = cell


def gather_thunk(src: np.ndarray, pos: np.ndarray, num: np.ndarray, device: torch.device):
    """env -> (B, G, h, w): the cells' values from their sources (x, earlier blocks) and constants.

    The thunk carries what it reads as `.cells` = (src, pos, num): a block that only reads other cells points its
    own cells there instead of becoming a source (graph.Program.lower)."""
    thunk = _gather(src, pos, num, device)
    thunk.cells = (src, pos, num)
    return thunk


def _detached_gather(s: int, pos: np.ndarray, detached: np.ndarray):
    """env -> (B, *pos.shape): source s at `pos`, read from its detached copy where `detached` (Env.twin)."""
    shape, flat_pos, flat_detached = pos.shape, pos.reshape(-1), detached.reshape(-1)
    index: list[torch.Tensor] = []  # built on the first evaluation, when the source's width is known

    def run(env: Env) -> torch.Tensor:
        twin = env.twin(s)
        if not index:
            index.append(torch.as_tensor(flat_pos + flat_detached * (twin.shape[1] // 2), dtype=torch.long,
                                         device=twin.device))
        return twin.index_select(1, index[0]).reshape(-1, *shape)
    return run


def _gather(src: np.ndarray, pos: np.ndarray, num: np.ndarray, device: torch.device):
    shape = src.shape
    flat_src, flat_pos = src.reshape(-1), pos.reshape(-1)
    dyn = flat_src >= 0
    sources = [int(s) for s in distinct(flat_src[dyn])]
    if len(sources) == 1 and dyn.all():
        s = sources[0]
        if len(flat_pos) and (np.diff(flat_pos) == 1).all():  # a run of one source's cells: a view, no copy
            start, n = int(flat_pos[0]), len(flat_pos)

            def run(env: Env) -> torch.Tensor:
                t = env.src[s]
                if start == 0 and n * t.shape[0] == t.numel():  # the whole source, in its order
                    return t.reshape(-1, *shape)
                return env.run(s, start, n).reshape(-1, *shape)
            return run
        idx = torch.as_tensor(flat_pos, dtype=torch.long, device=device)

        def single(env: Env) -> torch.Tensor:
            return env.flat(s).index_select(1, idx).reshape(-1, *shape)
        return single
    picks = [torch.as_tensor(flat_pos[flat_src == s], dtype=torch.long, device=device) for s in sources]
    consts = torch.as_tensor(num.reshape(-1)[~dyn], dtype=torch.float64, device=device)[None]
    order = np.concatenate([np.nonzero(flat_src == s)[0] for s in sources] + [np.nonzero(~dyn)[0]])
    perm = torch.as_tensor(np.argsort(order), dtype=torch.long, device=device)

    def mixed(env: Env) -> torch.Tensor:
        parts = [env.flat(s).index_select(1, p) for s, p in zip(sources, picks)]
        parts.append(consts.expand(parts[0].shape[0], -1))
        return torch.cat(parts, 1).index_select(1, perm).reshape(-1, *shape)
    return mixed
