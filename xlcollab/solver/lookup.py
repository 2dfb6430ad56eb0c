"""Look-ups: INDEX, MATCH, VLOOKUP, HLOOKUP, OFFSET, CHOOSE, ROW(S), COLUMN(S).

Their positions and keys must not depend on the variables: they are resolved at compile time, per
cell of a block, into references (so INDEX($B$6:$F$20, MATCH(...), 1) becomes a static gather).
The values they return may depend on the variables.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from xlcollab.solver import ops
from xlcollab.solver.lower import Block, Lowered, RefVal, register
from xlcollab.solver.parse import Missing, Node
from xlcollab.solver.values import (BOOL, ERR, NUM, TEXT, Unsupported, Val, const_val, distinct, error, lift, tensor,
                                    with_errors)


def static_arg(block: Block, node: Node, fn: str, what: str) -> Val:
    v = block.operand(node)
    if v.dynamic:
        raise Unsupported(f"{fn}'s {what} depends on the variables")
    return v


def _ints(block: Block, node: Node | None, fn: str, what: str, default: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A per-cell whole number argument: (values (G,), error mask (G,), error codes (G,))."""
    if node is None or isinstance(node, Missing):
        return np.full(1, default), np.zeros(1, bool), np.full(1, "", dtype=object)
    v = ops.to_number(static_arg(block, node, fn, what), block.device)
    if v.shape[1:] != (1, 1):
        raise Unsupported(f"{fn}'s {what} must be one value per cell")
    nums = np.nan_to_num(v.num[0].numpy().reshape(-1))
    err = (v.kind == ERR).reshape(-1)
    return np.trunc(nums).astype(np.int64), np.broadcast_to(err, nums.shape), np.broadcast_to(v.texts().reshape(-1), nums.shape)


def _finish(block: Block, out: Lowered, err: np.ndarray, codes: np.ndarray) -> Lowered:
    """The result, with the cells whose arguments were errors (or out of range) turned into those errors."""
    if not err.any():
        return out
    val = block.operand(out)
    shape = (max(val.shape[0], len(err)),) + val.shape[1:]
    mask = np.broadcast_to(np.broadcast_to(err, (shape[0],))[:, None, None], shape)
    return with_errors(np.broadcast_to(val.kind, shape).copy(), val.num, mask,
                       np.broadcast_to(np.broadcast_to(codes, (shape[0],))[:, None, None], shape).copy(),
                       None if val.text is None else np.broadcast_to(val.text, shape))


# -- INDEX, OFFSET, CHOOSE ----------------------------------------------------------------------------------
@register("INDEX", lo=2, hi=4)
def index(block: Block, args: Sequence[Node]) -> Lowered:
    with block.array_context():
        arr = block.lower(args[0])
    h, w = (arr.h, arr.w) if isinstance(arr, RefVal) else arr.shape[1:]
    r, r_err, r_codes = _ints(block, args[1], "INDEX", "row", 0)
    c, c_err, c_codes = _ints(block, args[2] if len(args) > 2 else None, "INDEX", "column", -1)
    if len(args) > 3 and not isinstance(args[3], Missing):
        area, _, _ = _ints(block, args[3], "INDEX", "area", 1)
        if (area != 1).any():
            raise Unsupported("INDEX with several areas")
    if (c == -1).all():  # no column given: a single row or column is indexed by the one number
        r, c = (np.ones_like(r), r) if h == 1 and w > 1 else (r, np.ones_like(r) if w == 1 else np.zeros_like(r))
    G = max(len(r), len(c))
    r, c = np.broadcast_to(r, (G,)), np.broadcast_to(c, (G,))
    err = np.broadcast_to(r_err, (G,)) | np.broadcast_to(c_err, (G,))
    codes = np.where(np.broadcast_to(r_err, (G,)), np.broadcast_to(r_codes, (G,)), np.broadcast_to(c_codes, (G,)))
    out_of_range = ~err & ((r < 0) | (r > h) | (c < 0) | (c > w))
    err, codes = err | out_of_range, np.where(out_of_range, "#REF!", codes)
    r, c = np.where(err, 1, r), np.where(err, 1, c)
    if ((r == 0) != (r[0] == 0)).any() or ((c == 0) != (c[0] == 0)).any():
        raise Unsupported("INDEX picks whole rows in some cells of a block and single cells in others")
    nh, nw = (h if r[0] == 0 else 1), (w if c[0] == 0 else 1)
    dr, dc = np.maximum(r - 1, 0), np.maximum(c - 1, 0)
    if isinstance(arr, RefVal):
        out: Lowered = RefVal(arr.sheet, arr.r0 + dr, arr.c0 + dc, nh, nw)
    else:
        out = _slice(arr, dr, dc, nh, nw, block.device)
    return _finish(block, out, err, codes)


def _slice(v: Val, dr: np.ndarray, dc: np.ndarray, nh: int, nw: int, device: torch.device) -> Val:
    """The (nh, nw) block at per-cell offsets (dr, dc) of an array value."""
    G = max(len(dr), v.shape[0])
    g = np.arange(G)[:, None, None] % v.shape[0]
    rows = np.broadcast_to(dr, (G,))[:, None, None] + np.arange(nh)[None, :, None]
    cols = np.broadcast_to(dc, (G,))[:, None, None] + np.arange(nw)[None, None, :]
    kind = v.kind[g, rows, cols]
    text = None if v.text is None else np.broadcast_to(v.text, v.shape)[g, rows, cols]
    gi, ri, ci = (torch.as_tensor(np.broadcast_to(a, (G, nh, nw)).copy()) for a in (g, rows, cols))

    def take(t: torch.Tensor) -> torch.Tensor:
        t = t.expand(t.shape[0], v.shape[0], *t.shape[2:]) if t.shape[1] != v.shape[0] else t
        return t[:, gi.to(t.device), ri.to(t.device), ci.to(t.device)]
    return Val(kind, lift(take, v.num, device=device), text)


@register("OFFSET", lo=3, hi=5)
def offset(block: Block, args: Sequence[Node]) -> Lowered:
    base = block.lower(args[0])
    if not isinstance(base, RefVal):
        return error("#VALUE!")
    dr, e1, k1 = _ints(block, args[1], "OFFSET", "rows", 0)
    dc, e2, k2 = _ints(block, args[2], "OFFSET", "columns", 0)
    h, e3, k3 = _ints(block, args[3] if len(args) > 3 else None, "OFFSET", "height", base.h)
    w, e4, k4 = _ints(block, args[4] if len(args) > 4 else None, "OFFSET", "width", base.w)
    if any(e.any() for e in (e1, e2, e3, e4)) or (h < 1).any() or (w < 1).any():
        raise Unsupported("OFFSET whose arguments are errors or sizes below 1")
    r0, c0 = base.r0 + dr, base.c0 + dc
    return block.rect(base.sheet, r0, c0, r0 + h - 1, c0 + w - 1)


@register("CHOOSE", lo=2)
def choose(block: Block, args: Sequence[Node]) -> Lowered:
    i, err, codes = _ints(block, args[0], "CHOOSE", "index", 1)
    bad = ~err & ((i < 1) | (i >= len(args)))
    err, codes = err | bad, np.where(bad, "#VALUE!", codes)
    i = np.where(err, 1, i)
    if (i == i[0]).all():
        return _finish(block, block.lower(args[int(i[0])]), err, codes)
    out = None
    for k in distinct(i):
        v = block.operand(args[int(k)])
        out = v if out is None else ops.select((i == k)[:, None, None], v, out, block.device)
    return _finish(block, out, err, codes)


# -- ROW, COLUMN, ROWS, COLUMNS ---------------------------------------------------------------------------------
def _position(block: Block, args: Sequence[Node], axis: int) -> Val:
    if not args or isinstance(args[0], Missing):
        host = block.rows if axis == 0 else block.cols
        return const_val(np.zeros((block.G, 1, 1)), host.reshape(-1, 1, 1).astype(float))
    ref = block.lower(args[0])
    if not isinstance(ref, RefVal):
        return error("#VALUE!")
    start = (ref.r0 if axis == 0 else ref.c0).reshape(-1, 1, 1).astype(float)
    if not block.array:
        return const_val(np.zeros(start.shape), start)
    steps = np.arange(ref.h).reshape(1, -1, 1) if axis == 0 else np.arange(ref.w).reshape(1, 1, -1)
    values = start + steps
    return const_val(np.zeros(values.shape), values)


register("ROW", lo=0, hi=1)(lambda block, args: _position(block, args, 0))
register("COLUMN", lo=0, hi=1)(lambda block, args: _position(block, args, 1))


def _size(block: Block, args: Sequence[Node], axis: int) -> Val:
    with block.array_context():
        x = block.lower(args[0])
    shape = (x.h, x.w) if isinstance(x, RefVal) else x.shape[1:]
    return const_val(np.zeros((1, 1, 1)), np.full((1, 1, 1), float(shape[axis])))


register("ROWS", lo=1, hi=1)(lambda block, args: _size(block, args, 0))
register("COLUMNS", lo=1, hi=1)(lambda block, args: _size(block, args, 1))


# -- MATCH, VLOOKUP, HLOOKUP ----------------------------------------------------------------------------------------
def _key(kind: int, num: float, text: str) -> tuple | None:
    if kind == NUM:
        return ("n", float(num))
    if kind == TEXT:
        return ("t", str(text).casefold())
    if kind == BOOL:
        return ("b", float(num))
    return None


def wildcard(text: str) -> re.Pattern | None:
    """A regex for Excel's * and ? (~ escapes them); None when the text has none."""
    if not re.search(r"(?<!~)[*?]", text):
        return None
    out, i = "", 0
    while i < len(text):
        ch = text[i]
        if ch == "~" and i + 1 < len(text):
            out, i = out + re.escape(text[i + 1]), i + 2
            continue
        out += ".*" if ch == "*" else "." if ch == "?" else re.escape(ch)
        i += 1
    return re.compile(out + r"\Z", re.IGNORECASE | re.DOTALL)


def match_positions(value: Val, look: Val, mtype: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MATCH for each cell: 1-based positions, an error mask and codes (#N/A where nothing matches)."""
    if look.shape[1] != 1 and look.shape[2] != 1:
        n = max(value.shape[0], look.shape[0])
        return np.zeros(n), np.ones(n, bool), np.full(n, "#N/A", dtype=object)
    G = max(value.shape[0], look.shape[0], len(mtype))
    lk = np.broadcast_to(look.kind.reshape(look.shape[0], -1), (G, look.shape[1] * look.shape[2]))
    ln = np.broadcast_to(look.num[0].numpy().reshape(look.num.shape[1], -1), lk.shape)
    lt = np.broadcast_to(look.texts().reshape(look.shape[0], -1), lk.shape)
    vk = np.broadcast_to(value.kind.reshape(-1), (G,))
    vn = np.broadcast_to(value.num[0].numpy().reshape(-1), (G,))
    vt = np.broadcast_to(value.texts().reshape(-1), (G,))
    mt = np.broadcast_to(mtype, (G,))
    pos, err, codes = np.zeros(G), np.zeros(G, bool), np.full(G, "", dtype=object)
    exact_index: dict | None = None
    for g in range(G):
        if vk[g] == ERR:
            err[g], codes[g] = True, vt[g]
            continue
        key = _key(int(vk[g]), vn[g], vt[g])
        found = None
        if key is not None and mt[g] == 0:
            pattern = wildcard(str(vt[g])) if vk[g] == TEXT else None
            if pattern is not None:
                found = next((i for i in range(lk.shape[1]) if lk[g, i] == TEXT and pattern.match(str(lt[g, i]))), None)
            else:
                if exact_index is None or look.shape[0] != 1:
                    exact_index = {}
                    for i in range(lk.shape[1] - 1, -1, -1):
                        k = _key(int(lk[g, i]), ln[g, i], lt[g, i])
                        if k is not None:
                            exact_index[k] = i
                found = exact_index.get(key)
        elif key is not None:
            same = lk[g] == vk[g]
            if key[0] == "t":
                items = np.array([str(t).casefold() for t in lt[g]], dtype=object)
                ok = same & ((items <= key[1]) if mt[g] > 0 else (items >= key[1]))
            else:
                ok = same & ((ln[g] <= key[1]) if mt[g] > 0 else (ln[g] >= key[1]))
            hits = np.nonzero(ok)[0]
            found = int(hits[-1]) if len(hits) else None
        if found is None:
            err[g], codes[g] = True, "#N/A"
        else:
            pos[g] = found + 1
    return pos, err, codes


@register("MATCH", lo=2, hi=3)
def match(block: Block, args: Sequence[Node]) -> Val:
    value = static_arg(block, args[0], "MATCH", "lookup value")
    with block.array_context():
        look = block.values(args[1])
    if look.dynamic:
        raise Unsupported("MATCH's lookup array depends on the variables")
    mtype, m_err, m_codes = _ints(block, args[2] if len(args) > 2 else None, "MATCH", "match type", 1)
    pos, err, codes = match_positions(value, look, np.sign(mtype))
    G = len(pos)
    err, codes = err | np.broadcast_to(m_err, (G,)), np.where(np.broadcast_to(m_err, (G,)), m_codes, codes)
    return with_errors(np.zeros((G, 1, 1), np.int8), tensor(pos.reshape(G, 1, 1)),
                       err.reshape(G, 1, 1), codes.reshape(G, 1, 1))


def _lookup(block: Block, args: Sequence[Node], fn: str, vertical: bool) -> Lowered:
    value = static_arg(block, args[0], fn, "lookup value")
    with block.array_context():
        table = block.lower(args[1])
    idx, i_err, i_codes = _ints(block, args[2], fn, "column" if vertical else "row", 1)
    approx = True
    if len(args) > 3 and not isinstance(args[3], Missing):
        flag = ops.to_bool(static_arg(block, args[3], fn, "match mode"), block.device)
        approx = bool(flag.num[0].numpy().reshape(-1)[0])
    if isinstance(table, RefVal):
        keys_ref = RefVal(table.sheet, table.r0, table.c0, table.h if vertical else 1, 1 if vertical else table.w)
        keys = block.gather(keys_ref)
        size = table.w if vertical else table.h
    else:
        origin = np.zeros(1, int)
        keys = _slice(table, origin, origin, table.shape[1] if vertical else 1, 1 if vertical else table.shape[2],
                      block.device)
        size = table.shape[2] if vertical else table.shape[1]
    if keys.dynamic:
        raise Unsupported(f"{fn}'s first {'column' if vertical else 'row'} depends on the variables")
    pos, err, codes = match_positions(value, keys, np.array([1 if approx else 0]))
    G = max(len(pos), len(idx))
    pos, idx = np.broadcast_to(pos, (G,)), np.broadcast_to(idx, (G,))
    bad = (idx < 1) | (idx > size)
    err_all = np.broadcast_to(err, (G,)) | np.broadcast_to(i_err, (G,)) | bad
    codes = np.where(np.broadcast_to(i_err, (G,)), np.broadcast_to(i_codes, (G,)),
                     np.where(bad, np.where(idx < 1, "#VALUE!", "#REF!"), np.broadcast_to(codes, (G,))))
    step = np.where(err_all, 0, pos - 1).astype(np.int64)
    other = np.where(err_all, 0, idx - 1).astype(np.int64)
    dr, dc = (step, other) if vertical else (other, step)
    if isinstance(table, RefVal):
        out: Lowered = RefVal(table.sheet, table.r0 + dr, table.c0 + dc, 1, 1)
    else:
        out = _slice(table, dr, dc, 1, 1, block.device)
    return _finish(block, out, err_all, codes)


register("VLOOKUP", lo=3, hi=4)(lambda block, args: _lookup(block, args, "VLOOKUP", True))
register("HLOOKUP", lo=3, hi=4)(lambda block, args: _lookup(block, args, "HLOOKUP", False))
