"""Excel's logic functions, lowered for a whole filled block: NOT, the IS* tests, constants, IF and IFERROR.

IF and IFERROR evaluate each branch only for the cells that take it (as Excel does, so an error in the branch not
taken does not reach the result); conditions' errors pass through. Maths and aggregates live in `functions.py`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from xlcollab.solver import ops
from xlcollab.solver.lower import Block, Function, register
from xlcollab.solver.parse import Missing, Node
from xlcollab.solver.values import (BLANK, BOOL, ERR, NUM, TEXT, Env, Unsupported, Val, broadcast, const_val, error,
                                    first_error, lift, scalar, tensor, with_errors)


# -- logic ------------------------------------------------------------------------------------------------------
@register("NOT", lo=1, hi=1)
def not_(block: Block, args: Sequence[Node]) -> Val:
    b = ops.to_bool(block.operand(args[0]), block.device)
    return Val(b.kind, lift(lambda t: 1.0 - t, b.num, device=block.device), b.text)


register("TRUE", lo=0, hi=0)(lambda block, args: scalar(True))
register("FALSE", lo=0, hi=0)(lambda block, args: scalar(False))
register("NA", lo=0, hi=0)(lambda block, args: error("#N/A"))
register("PI", lo=0, hi=0)(lambda block, args: scalar(math.pi))


@register("SINGLE", lo=1, hi=1)
def single(block: Block, args: Sequence[Node]) -> Val:
    """Excel 365's `@` (stored as _xlfn.SINGLE): implicit intersection, even inside an array formula."""
    with block.array_context(False):
        return block.operand(args[0])


def _is(test: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Function:
    """ISNUMBER & co: decided by the kinds alone, so they never depend on the variables."""
    def impl(block: Block, args: Sequence[Node]) -> Val:
        v = block.operand(args[0])
        hit = test(v.kind, v.texts())
        return const_val(np.full(v.shape, BOOL), hit.astype(float))
    return impl


for _name, _test in (("ISNUMBER", lambda k, t: k == NUM), ("ISTEXT", lambda k, t: k == TEXT),
                     ("ISNONTEXT", lambda k, t: k != TEXT), ("ISBLANK", lambda k, t: k == BLANK),
                     ("ISLOGICAL", lambda k, t: k == BOOL), ("ISERROR", lambda k, t: k == ERR),
                     ("ISNA", lambda k, t: (k == ERR) & (t == "#N/A")),
                     ("ISERR", lambda k, t: (k == ERR) & (t != "#N/A"))):
    register(_name, lo=1, hi=1)(_is(_test))


# -- IF and IFERROR ----------------------------------------------------------------------------------------------
@register("IF", lo=1, hi=3)
def if_(block: Block, args: Sequence[Node]) -> Val:
    """Both branches compiled, chosen per element; a branch not taken cannot send NaN gradients to x."""
    cond = ops.to_bool(block.operand(args[0]), block.device)
    then_node = args[1] if len(args) > 1 else None
    else_node = args[2] if len(args) > 2 else None
    branch = lambda node: (block.operand(node) if node is not None and not isinstance(node, Missing)
                           else scalar(0.0) if isinstance(node, Missing) else scalar(node is not None))
    err = cond.kind == ERR
    if not cond.dynamic:
        truth = (cond.num[0].numpy() != 0) & ~err
        if truth.all() or (~truth | err).all():
            out = branch(then_node if truth.all() else else_node)
        else:
            t = _lower_branch(block, lambda: branch(then_node), block.new_mask(truth.shape, truth))
            e = _lower_branch(block, lambda: branch(else_node), block.new_mask(truth.shape, ~truth))
            out = ops.select(truth, t, e, block.device)
        return _with_cond_errors(out, cond)
    m_then, m_else = block.new_mask(cond.shape), block.new_mask(cond.shape)
    t = _lower_branch(block, lambda: branch(then_node), m_then)
    e = _lower_branch(block, lambda: branch(else_node), m_else)
    shape = broadcast(cond.shape, t.shape, e.shape)
    kt, ke = np.broadcast_to(t.kind, shape), np.broadcast_to(e.kind, shape)
    numeric = lambda k: (k == NUM) | (k == BOOL)
    if not ((numeric(kt) & numeric(ke)) | np.broadcast_to(cond.kind == ERR, shape)).all():
        raise Unsupported("IF gives text, an error or numbers depending on the variables")
    c_num, t_num, e_num = (v.num if callable(v.num) else v.num.to(block.device) for v in (cond, t, e))
    ids = (m_then.id, m_else.id)

    def run(env: Env) -> torch.Tensor:
        c = (c_num(env) != 0)
        env.masks[ids[0]], env.masks[ids[1]] = c, ~c
        tv = t_num(env) if callable(t_num) else t_num
        ev = e_num(env) if callable(e_num) else e_num
        return torch.where(c, tv, ev)
    kind = np.where(kt == ke, kt, NUM).astype(np.int8)
    return _with_cond_errors(Val(kind, run, None), cond)


def _lower_branch(block: Block, lower: Callable[[], Val], mask) -> Val:
    """Lower a branch; if it holds a function with a singular gradient, again with its inputs masked."""
    saved = block.risky
    block.risky = False
    val = lower()
    if block.risky and val.dynamic:
        with block.masked(mask):
            val = lower()
    block.risky = saved or block.risky
    return val


def _with_cond_errors(out: Val, cond: Val) -> Val:
    if not (cond.kind == ERR).any():
        return out
    shape = broadcast(out.shape, cond.shape)
    mask, codes = first_error(cond, shape=shape)
    return with_errors(np.broadcast_to(out.kind, shape).copy(), out.num, mask, codes,
                       None if out.text is None else np.broadcast_to(out.text, shape))


@register("IFERROR", lo=2, hi=2)
def iferror(block: Block, args: Sequence[Node]) -> Val:
    """The value, or the fallback where it is an error (on the variables' path: where it is not finite)."""
    saved = block.risky
    block.risky = False
    v = block.operand(args[0])
    risky, block.risky = block.risky, saved or block.risky
    alt = block.operand(args[1])
    static_err = v.kind == ERR
    if not v.dynamic:
        return ops.select(static_err, alt, v, block.device) if static_err.any() else v
    shape = broadcast(v.shape, alt.shape)
    ka = np.broadcast_to(alt.kind, shape)
    if not np.isin(ka[~np.broadcast_to(static_err, shape)], (NUM, BOOL)).all():
        raise Unsupported("IFERROR's fallback is not a number where the value depends on the variables")
    mask = block.new_mask(v.shape)
    v_masked = v
    if risky:  # evaluate once without gradients to find the errors, then again with those inputs masked
        with block.masked(mask):
            v_masked = block.operand(args[0])
    v_num, vm_num = v.num, v_masked.num
    alt_num = alt.num if callable(alt.num) else alt.num.to(block.device)
    se = tensor(np.broadcast_to(static_err, shape)).to(block.device)

    def run(env: Env) -> torch.Tensor:
        a = alt_num(env) if callable(alt_num) else alt_num
        if not risky:
            t = v_num(env)
            return torch.where(torch.isfinite(t) & ~se, t, a)
        with torch.no_grad():
            ok = torch.isfinite(v_num(env)) & ~se
        env.masks[mask.id] = ok
        return torch.where(ok, vm_num(env), a)
    kind = np.where(np.broadcast_to(static_err, shape), ka, NUM).astype(np.int8)
    return Val(kind, run, None if alt.text is None else np.broadcast_to(alt.text, shape))

