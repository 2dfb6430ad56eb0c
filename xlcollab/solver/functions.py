"""Excel's functions, lowered for a whole filled block: maths, aggregates (AND and OR among them) and matrices.

Each entry of FUNCTIONS takes the Block and the call's argument trees and returns a RefVal or Val, so a
function decides how its arguments are read (one value per cell, a whole range, a reference) and in which
context (array-typed arguments are evaluated as arrays, as in Excel). Ranges skip text, TRUE/FALSE and
blanks where Excel's aggregates do; direct arguments count them. Logic and IF live in `logic.py`, lookups in `lookup.py`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from xlcollab.solver import ops
from xlcollab.solver.lower import Block, Function, RefVal, register
from xlcollab.solver.outer import outer_mmult
from xlcollab.solver.parse import Missing, Node
from xlcollab.solver.values import (BLANK, BOOL, ERR, F64, NUM, Unsupported, Val, broadcast, const_val, error, lift,
                                    tensor, with_errors)

# -- elementwise maths -------------------------------------------------------------------------------------
def _round_half_away(x: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """Excel's ROUND: halves away from zero; the nudge undoes binary error (1.005 -> 1.01, as Excel shows)."""
    scale = torch.pow(10.0, torch.trunc(digits))
    s = (x * scale).abs()
    return torch.sign(x) * torch.floor(s * (1 + 2 ** -50) + 0.5) / scale


def _floor_sig(x: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    bad = (x > 0) & (sig < 0)
    return torch.where(bad, torch.nan, torch.floor(x / sig) * sig)


_MATH: dict[str, tuple[Callable[..., torch.Tensor], int, int, bool]] = {
    # name: (torch function, min args, max args, can give inf/NaN gradients)
    "ABS": (torch.abs, 1, 1, False),
    "SQRT": (torch.sqrt, 1, 1, True),
    "EXP": (torch.exp, 1, 1, True),
    "LN": (torch.log, 1, 1, True),
    "LOG10": (torch.log10, 1, 1, True),
    "LOG": (lambda x, b=None: torch.log(x) / (torch.log(b) if b is not None else math.log(10.0)), 1, 2, True),
    "POWER": (torch.pow, 2, 2, True),
    "INT": (torch.floor, 1, 1, False),
    "ROUND": (_round_half_away, 2, 2, False),
    "FLOOR": (_floor_sig, 2, 2, False),
    "SIGN": (torch.sign, 1, 1, False),
    "MOD": (torch.remainder, 2, 2, True),   # the divisor's sign, as Excel
    "SIN": (torch.sin, 1, 1, False),
    "COS": (torch.cos, 1, 1, False),
    "TANH": (torch.tanh, 1, 1, False),
}
_ZERO_GRADIENT = {"INT", "ROUND", "FLOOR", "SIGN"}


def _math(name: str) -> Function:
    fn, _, _, risky = _MATH[name]

    def impl(block: Block, args: Sequence[Node]) -> Val:
        vals = [block.operand(a) for a in args]
        block.risky |= risky
        out = ops.elementwise(fn, vals, block.device,
                              zero_div=(lambda a: a[1] == 0) if name in ("FLOOR", "MOD") else None)
        if name in _ZERO_GRADIENT and out.dynamic:
            block.note(f"{block.label}: {name} has zero gradient with respect to the variables")
        return out
    return impl


for _name, (_fn, _lo, _hi, _risky) in _MATH.items():
    register(_name, lo=_lo, hi=_hi)(_math(_name))


# -- aggregates ----------------------------------------------------------------------------------------------
def arguments(block: Block, args: Sequence[Node], *, array: bool = False) -> list[tuple[Val, bool]]:
    """Each argument's values and whether Excel reads it as a range/array (skipping text and booleans there)."""
    out = []
    with block.array_context(array or block.array):
        for a in args:
            if isinstance(a, Missing):
                continue
            low = block.lower(a)
            if isinstance(low, RefVal):
                out.append((block.gather(low), True))
            else:
                out.append((low, low.shape[1:] != (1, 1)))
    return out


def _numbers(v: Val, in_range: bool, device: torch.device, *, bools_in_range: bool = False) -> tuple[Val, np.ndarray]:
    """(numbers, which elements count) as SUM/AVERAGE/MIN/MAX read an argument."""
    if in_range:
        keep = (v.kind == NUM) | ((v.kind == BOOL) if bools_in_range else False)
        return v, keep
    v = ops.to_number(v, device)
    return v, v.kind == NUM


def _member_errors(vals: list[Val], G: int) -> tuple[np.ndarray, np.ndarray]:
    """Per host cell: whether any argument holds an error there, and the first error's code."""
    mask = np.zeros((G, 1, 1), dtype=bool)
    codes = np.full((G, 1, 1), "", dtype=object)
    for v in vals:
        err = np.broadcast_to(v.kind == ERR, (max(G, v.shape[0]),) + v.shape[1:])
        if not err.any():
            continue
        texts = np.broadcast_to(v.texts(), err.shape)
        for g in range(err.shape[0]):
            if not mask[g % G, 0, 0] and err[g].any():
                mask[g % G, 0, 0], codes[g % G, 0, 0] = True, texts[g][err[g]][0]
    return mask, codes


def reduce(v: Val, keep: np.ndarray, how: str, device: torch.device):
    """Sum / sum of squares / product / min / max over each cell's (h, w), only where `keep`."""
    every = bool(np.all(keep))
    if every and v.shape[1:] == (1, 1):  # one value per cell: nothing to reduce
        return lift(lambda t: t * t, v.num, device=device) if how == "sumsq" else v.num
    k = tensor(np.broadcast_to(keep, np.broadcast_shapes(keep.shape, v.shape)))
    fill = {"sum": 0.0, "sumsq": 0.0, "prod": 1.0, "min": math.inf, "max": -math.inf}[how]

    def run(t: torch.Tensor, k_: torch.Tensor) -> torch.Tensor:
        if not every:
            t = torch.where(k_, t, torch.full((), fill, dtype=F64, device=t.device))
        if how == "sumsq":
            t = t * t
        if how in ("sum", "sumsq"):
            return t.sum((-2, -1), keepdim=True)
        if how == "prod":
            return t.prod(-1, keepdim=True).prod(-2, keepdim=True)
        return t.amin((-2, -1), keepdim=True) if how == "min" else t.amax((-2, -1), keepdim=True)
    return lift(run, v.num, k, device=device)


def _aggregate(how: str) -> Function:
    def impl(block: Block, args: Sequence[Node]) -> Val:
        items = [(*_numbers(v, r, block.device), r) for v, r in arguments(block, args)]
        G = max([block.G] + [v.shape[0] for v, _, _ in items])
        err, codes = _member_errors([v for v, _, _ in items], G)
        count = sum(np.broadcast_to(k, (G,) + v.shape[1:]).sum((1, 2)) for v, k, _ in items).reshape(G, 1, 1) \
            if items else np.zeros((G, 1, 1))
        parts = [reduce(v, k, "sum" if how == "average" else how, block.device) for v, k, _ in items]
        if how in ("min", "max", "prod"):  # of no numbers at all: 0
            combine = {"min": torch.minimum, "max": torch.maximum, "prod": torch.mul}[how]
            total = _fold(parts, combine, block.device)
            if not (count > 0).all():
                total = lift(lambda t, c: torch.where(c > 0, t, torch.zeros((), dtype=F64, device=t.device)), total,
                             tensor(count), device=block.device)
        else:
            total = _fold(parts, torch.add, block.device)
            if how == "average":
                n = np.maximum(count, 1)
                total = lift(lambda t, c: t / c, total, tensor(n), device=block.device) if (n != n.flat[0]).any() \
                    else lift(lambda t: t / float(n.flat[0]), total, device=block.device)
                err, codes = err | (count == 0) & ~err, np.where((count == 0) & ~err, "#DIV/0!", codes)
        return with_errors(np.zeros((G, 1, 1), np.int8), total, err, codes)
    return impl


def _fold(parts: list, combine: Callable, device: torch.device):
    if not parts:
        return tensor(np.zeros((1, 1, 1)))
    total = parts[0]
    for p in parts[1:]:
        total = lift(combine, total, p, device=device)
    return total


for _name, _how in (("SUM", "sum"), ("SUMSQ", "sumsq"), ("AVERAGE", "average"), ("MIN", "min"), ("MAX", "max"),
                    ("PRODUCT", "prod")):
    register(_name, lo=1)(_aggregate(_how))


def _count(block: Block, args: Sequence[Node], hits: Callable[[Val, bool], np.ndarray]) -> Val:
    """How many values of the arguments `hits(values, in_range)` marks, per cell of the block."""
    total = np.zeros((block.G, 1, 1))
    for v, in_range in arguments(block, args):
        total = total + np.broadcast_to(hits(v, in_range), (max(block.G, v.shape[0]),) + v.shape[1:]).sum((1, 2)).reshape(-1, 1, 1)
    return const_val(np.zeros(total.shape), total)


@register("COUNT", lo=1)
def count(block: Block, args: Sequence[Node]) -> Val:
    """Numbers in ranges; numbers, TRUE/FALSE and numeric text given directly. Never an error."""
    return _count(block, args, lambda v, in_range: v.kind == NUM if in_range else
                  np.isin(ops.to_number(v, block.device).kind, (NUM,)) & (v.kind != BLANK))


@register("COUNTA", lo=1)
def counta(block: Block, args: Sequence[Node]) -> Val:
    return _count(block, args, lambda v, _: v.kind != BLANK)


@register("SUMPRODUCT", lo=1)
def sumproduct(block: Block, args: Sequence[Node]) -> Val:
    """Products of same-sized arrays, summed; anything not a number counts as 0 (errors stay errors)."""
    with block.array_context():
        vals = [block.values(a) for a in args]
    if len({v.shape[1:] for v in vals}) != 1:
        return error("#VALUE!")
    shape = broadcast(*(v.shape for v in vals))
    keep = np.ones(shape, dtype=bool)
    for v in vals:
        keep = keep & (v.kind == NUM)
    err, codes = _member_errors(vals, shape[0])
    k, every = tensor(keep), bool(keep.all())

    def run(k_: torch.Tensor, *ts: torch.Tensor) -> torch.Tensor:
        prod = ts[0]
        for t in ts[1:]:
            prod = prod * t
        if not every:
            prod = torch.where(k_, prod, torch.zeros((), dtype=F64, device=prod.device))
        return prod.sum((-2, -1), keepdim=True)
    total = lift(run, k, *(v.num for v in vals), device=block.device)
    return with_errors(np.zeros((shape[0], 1, 1), np.int8), total, err, codes)


@register("SUMXMY2", lo=2, hi=2)
def sumxmy2(block: Block, args: Sequence[Node]) -> Val:
    """Sum of (x - y)^2 over the pairs where both are numbers (Excel skips text, TRUE/FALSE and blanks)."""
    with block.array_context():
        x, y = block.values(args[0]), block.values(args[1])
    if x.shape[1] * x.shape[2] != y.shape[1] * y.shape[2]:
        return error("#N/A")
    if x.shape[1:] != y.shape[1:]:
        raise Unsupported("SUMXMY2 of arrays of different shapes")
    shape = broadcast(x.shape, y.shape)
    keep = tensor(np.broadcast_to((x.kind == NUM) & (y.kind == NUM), shape))
    err, codes = _member_errors([x, y], shape[0])

    def run(a: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        d = torch.where(k, a - b, torch.zeros((), dtype=F64, device=a.device))
        return (d * d).sum((-2, -1), keepdim=True)
    return with_errors(np.zeros((shape[0], 1, 1), np.int8), lift(run, x.num, y.num, keep, device=block.device),
                       err, codes)


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Matrix products per cell; small ones as multiply-and-sum (batched tiny matmuls are slow on CPUs)."""
    h, k, w = a.shape[-2], a.shape[-1], b.shape[-1]
    if b.shape[0] == 1 and b.shape[-3] == 1:  # one right operand for every cell (a one-hot row x an embedding
        return torch.mm(a.reshape(-1, k), b.reshape(k, w)).reshape(*a.shape[:-1], w)  # matrix): one product
    if h == 1 and w == 1:  # a row times a column, per cell
        return (a * b.transpose(-1, -2)).sum(-1, keepdim=True)
    if h * k * w <= 512:
        return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)
    return torch.matmul(a, b)


@register("MMULT", lo=2, hi=2)
def mmult(block: Block, args: Sequence[Node]) -> Val:
    with block.array_context():
        a, b = block.lower(args[0]), block.lower(args[1])
        outer = outer_mmult(block, a, b)
        if outer is not None:
            return outer
        a, b = block.values(a), block.values(b)
    if a.shape[2] != b.shape[1]:
        return error("#VALUE!")
    bad = ~np.broadcast_to((a.kind == NUM).all((1, 2)), (max(a.shape[0], b.shape[0]),)) | \
        ~np.broadcast_to((b.kind == NUM).all((1, 2)), (max(a.shape[0], b.shape[0]),))
    G = max(a.shape[0], b.shape[0])
    shape = (G, a.shape[1], b.shape[2])
    mask = np.broadcast_to(bad[:, None, None], shape)
    return with_errors(np.zeros(shape, np.int8), lift(_matmul, a.num, b.num, device=block.device), mask,
                       np.full(shape, "#VALUE!", dtype=object))


@register("TRANSPOSE", lo=1, hi=1)
def transpose(block: Block, args: Sequence[Node]) -> Val:
    with block.array_context():
        v = block.values(args[0])
    text = None if v.text is None else np.ascontiguousarray(np.broadcast_to(v.text, v.shape).transpose(0, 2, 1))
    return Val(np.ascontiguousarray(v.kind.transpose(0, 2, 1)),
               lift(lambda t: t.transpose(-1, -2), v.num, device=block.device), text)


# -- AND / OR ------------------------------------------------------------------------------------------------------
def _truth(block: Block, args: Sequence[Node], how: str) -> Val:
    """AND / OR: ranges count numbers and TRUE/FALSE (text and blanks skipped); no values at all is #VALUE!."""
    parts, vals = [], []
    counts = np.zeros((block.G, 1, 1))
    for v, in_range in arguments(block, args):
        if in_range:
            keep = (v.kind == NUM) | (v.kind == BOOL)
            b = ops.to_bool(Val(np.where(keep, v.kind, NUM).astype(np.int8), v.num, v.text), block.device)
        else:
            b = ops.to_bool(v, block.device)
            keep = b.kind != ERR
        vals.append(b)
        counts = counts + np.broadcast_to(keep, (max(block.G, v.shape[0]),) + v.shape[1:]).sum((1, 2)).reshape(-1, 1, 1)
        parts.append(reduce(b, keep, "min" if how == "and" else "max", block.device))
    err, codes = _member_errors(vals, counts.shape[0])
    total = _fold(parts, torch.minimum if how == "and" else torch.maximum, block.device)
    err, codes = err | (counts == 0), np.where((counts == 0) & ~err, "#VALUE!", codes)
    return with_errors(np.full(counts.shape, BOOL, np.int8), total, err, codes)


register("AND", lo=1)(lambda block, args: _truth(block, args, "and"))
register("OR", lo=1)(lambda block, args: _truth(block, args, "or"))
