"""Conditional sums and counts: SUMIF(S), COUNTIF(S), AVERAGEIF(S) with criteria that do not depend on the variables.

Each criterion ("<>5", "ab*", 3, TRUE) becomes a static mask over its range per cell of a block, at compile
time; only the summed values may depend on the variables.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from xlcollab.solver import ops
from xlcollab.solver.functions import reduce
from xlcollab.solver.lookup import static_arg, wildcard
from xlcollab.solver.lower import Block, Lowered, RefVal, register
from xlcollab.solver.parse import Missing, Node
from xlcollab.solver.values import BLANK, BOOL, ERR, NUM, TEXT, Unsupported, Val, error, lift, number_from_text, tensor, \
    with_errors

_OP = re.compile(r"^(<=|>=|<>|=|<|>)?(.*)$", re.DOTALL)


def criteria_mask(kind: np.ndarray, num: np.ndarray, text: np.ndarray, ck: int, cn: float, ct: str) -> np.ndarray:
    """Which cells (kind/num/text arrays) meet one criterion, as COUNTIF reads it ("<>5", "ab*", 3, TRUE)."""
    if ck == NUM:
        return (kind == NUM) & (num == cn)
    if ck == BOOL:
        return (kind == BOOL) & (num == cn)
    if ck == BLANK:
        return kind == BLANK
    m = _OP.match(str(ct))
    op, rest = m[1] or "=", m[2]
    if rest == "":
        blank = (kind == BLANK) | ((kind == TEXT) & (text == ""))
        return blank if op == "=" and m[1] is None or op == "=" else ~blank if op == "<>" else np.zeros(kind.shape, bool)
    x = number_from_text(rest)
    if x is not None:
        hit = (kind == NUM) & ops.order(op, np.sign(num - x))
        return hit | ((kind != NUM) if op == "<>" else False)
    if rest.upper() in ("TRUE", "FALSE") and op in ("=", "<>"):
        hit = (kind == BOOL) & (num == float(rest.upper() == "TRUE"))
        return ~hit if op == "<>" else hit
    folded = np.array([str(t).casefold() for t in text.reshape(-1)], dtype=object).reshape(text.shape)
    if op in ("=", "<>"):
        pattern = wildcard(rest)
        if pattern is None:
            hit = (kind == TEXT) & (folded == rest.casefold())
        else:
            hit = (kind == TEXT) & np.vectorize(lambda t: bool(pattern.match(t)), otypes=[bool])(folded)
        return ~hit if op == "<>" else hit
    sign = np.vectorize(lambda t: (t > rest.casefold()) - (t < rest.casefold()), otypes=[int])(folded)
    return (kind == TEXT) & ops.order(op, sign)


def _condition(block: Block, range_node: Node, crit_node: Node, fn: str) -> tuple[Lowered, np.ndarray, np.ndarray, np.ndarray]:
    """(range, mask (G, h, w), error mask (G,), codes (G,)) of one range/criterion pair."""
    with block.array_context():
        rng = block.lower(range_node)
    vals = block.gather(rng) if isinstance(rng, RefVal) else rng
    if vals.dynamic:
        raise Unsupported(f"{fn}'s criteria range depends on the variables")
    crit = static_arg(block, crit_node, fn, "criteria")
    if crit.shape[1:] != (1, 1):
        raise Unsupported(f"{fn} with an array of criteria")
    G = max(vals.shape[0], crit.shape[0])
    kind, num, text = vals.kind, np.broadcast_to(vals.num[0].numpy(), vals.shape), vals.texts()
    ck, cn, ct = (np.broadcast_to(a.reshape(-1), (G,)) for a in (crit.kind, crit.num[0].numpy(), crit.texts()))
    mask = np.zeros((G,) + vals.shape[1:], dtype=bool)
    cache: dict[tuple, np.ndarray] = {}
    for g in range(G):
        gv = g if vals.shape[0] > 1 else 0
        key = (gv, int(ck[g]), float(cn[g]) if ck[g] != ERR else 0.0, str(ct[g]))
        if key not in cache:
            cache[key] = criteria_mask(kind[gv], num[gv], text[gv], int(ck[g]), float(cn[g]), str(ct[g]))
        mask[g] = cache[key]
    return rng, mask, ck == ERR, np.where(ck == ERR, ct, "")


def _conditional(block: Block, args: Sequence[Node], fn: str, how: str) -> Val:
    """SUMIF(S) / COUNTIF(S) / AVERAGEIF(S): one mask from the criteria, then a sum or a count."""
    multi = fn.endswith("S")
    if multi:
        target, pairs = (args[0] if how != "count" else None), list(zip(args[1 if how != "count" else 0::2],
                                                                         args[2 if how != "count" else 1::2]))
    else:
        target, pairs = (args[2] if len(args) > 2 and how != "count" else None), [(args[0], args[1])]
    conds = [_condition(block, r, c, fn) for r, c in pairs]
    shapes = {(x.h, x.w) if isinstance(x, RefVal) else x.shape[1:] for x, _, _, _ in conds}
    if len(shapes) != 1:
        return error("#VALUE!")
    h, w = shapes.pop()
    G = max(m.shape[0] for _, m, _, _ in conds)
    mask = np.ones((G, h, w), dtype=bool)
    err, codes = np.zeros(G, bool), np.full(G, "", dtype=object)
    for _, m, e, k in conds:
        mask &= m
        new = np.broadcast_to(e, (G,)) & ~err
        codes, err = np.where(new, np.broadcast_to(k, (G,)), codes), err | new
    count = mask.sum((1, 2)).reshape(G, 1, 1).astype(float)
    if how == "count":
        return with_errors(np.zeros((G, 1, 1), np.int8), tensor(count), err.reshape(G, 1, 1), codes.reshape(G, 1, 1))
    base = conds[0][0] if target is None or isinstance(target, Missing) else block.lower(target)
    if isinstance(base, RefVal):  # Excel sizes the sum range like the criteria range, from its top-left cell
        base = RefVal(base.sheet, base.r0, base.c0, h, w)
    values = block.gather(base) if isinstance(base, RefVal) else base
    keep = mask & (values.kind == NUM)
    total = reduce(values, keep, "sum", block.device)
    if how == "average":
        n = keep.sum((1, 2)).reshape(-1, 1, 1).astype(float)
        total = lift(lambda t, c: t / c, total, tensor(np.maximum(n, 1)), device=block.device)
        zero = (n == 0).reshape(-1)
        codes, err = np.where(zero & ~err, "#DIV/0!", codes), err | zero
    return with_errors(np.zeros((G, 1, 1), np.int8), total, err.reshape(G, 1, 1), codes.reshape(G, 1, 1))


for _fn, _how, _lo, _hi in (("SUMIF", "sum", 2, 3), ("COUNTIF", "count", 2, 2), ("AVERAGEIF", "average", 2, 3),
                            ("SUMIFS", "sum", 3, None), ("COUNTIFS", "count", 2, None),
                            ("AVERAGEIFS", "average", 3, None)):
    register(_fn, lo=_lo, hi=_hi)(lambda block, args, fn=_fn, how=_how: _conditional(block, args, fn, how))
