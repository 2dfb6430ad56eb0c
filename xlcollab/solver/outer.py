"""MMULT filled over a block as one matrix product: the outer-product pattern of a filled prediction grid.

`=MMULT($B31:$F31, I$24:I$28)` filled over I31:W45 reads, per cell, a row range that moves only with the host
row and a column range that moves only with the host column. Per cell that is G tiny products; here the R
distinct left operands and the C distinct right ones are read once each and multiplied as one (R x k) by
(k x C) product (a batched einsum when the per-cell results are larger than 1 x 1), and each cell picks its
(row, column) entry. Recognised by the references' R1C1 form, whatever the sheet.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from xlcollab.solver.lower import Block, Lowered, RefVal
from xlcollab.solver.values import NUM, Env, Val, lift, with_errors

__all__ = ["outer_mmult"]


def outer_mmult(block: Block, a: Lowered, b: Lowered) -> Val | None:
    """MMULT(a, b) for every host cell as one product, or None when the operands do not follow the pattern (the
    left range fixed by the host row, the right by the host column, fewer distinct operands than cells)."""
    if not (isinstance(a, RefVal) and isinstance(b, RefVal)) or block.masks or a.w != b.h or block.G < 4:
        return None
    rows, row_of, at_row = _distinct(block.rows)
    cols, col_of, at_col = _distinct(block.cols)
    R, C, G = len(rows), len(cols), block.G
    if R * C > 2 * G or max(R, C) == G or not (_follows(a, row_of, at_row) and _follows(b, col_of, at_col)):
        return None  # a sparse grid (a diagonal), or one row or column: nothing shared
    h, k, w = a.h, a.w, b.w
    a_one, b_one = _pick(a, at_row, G), _pick(b, at_col, G)
    left_rect, right_rect = _stacked(a_one, down=True), _stacked(b_one, down=False)
    left = block.gather(left_rect or a_one)     # (R, h, k), or (1, R * h, k): one rectangle of the R operands
    right = block.gather(right_rect or b_one)   # (C, k, w), or (1, k, C * w)
    left_kind = left.kind.reshape(R, h, k)
    right_kind = right.kind.reshape(k, C, w).transpose(1, 0, 2) if right_rect else right.kind
    bad = ~(left_kind == NUM).all((1, 2))[row_of] | ~(right_kind == NUM).all((1, 2))[col_of]
    flat = row_of * C + col_of
    index = None if np.array_equal(flat, np.arange(G)) else torch.as_tensor(flat, dtype=torch.long, device=block.device)

    def columns(y: torch.Tensor) -> torch.Tensor:
        """The right operands as (batch, k, C) (h = w = 1)."""
        return y.reshape(-1, k, C) if right_rect else y.reshape(-1, C, k).transpose(1, 2)

    def product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if h == 1 and w == 1:  # (R x k) @ (k x C): the product of the two factor blocks, as plain 2-D products
            if y.shape[0] == 1:
                p = torch.mm(x.reshape(-1, k), y.reshape(k, C) if right_rect else y.reshape(C, k).t())
            else:
                p = torch.matmul(x.reshape(-1, R, k), columns(y))
        else:
            y = y.reshape(-1, k, C, w) if right_rect else y.reshape(-1, C, k, w)
            p = torch.einsum("...rhk,...kcw->...rchw" if right_rect else "...rhk,...ckw->...rchw",
                             x.reshape(-1, R, h, k), y)
        p = p.reshape(-1, R * C, h, w)
        return p if index is None else p.index_select(1, index)
    shape = (G, h, w)
    mask = np.broadcast_to(bad[:, None, None], shape)
    operands = [_flat_read(v.num) or v.num for v in (left, right)]  # read as flat runs: reshaped once, here
    return with_errors(np.zeros(shape, np.int8), lift(product, *operands, device=block.device), mask,
                       np.full(shape, "#VALUE!", dtype=object))


def _stacked(ref: RefVal, *, down: bool) -> RefVal | None:
    """The per-key references as one rectangle when they lie side by side in key order (the R user rows one
    under the other, the C movie columns one beside the other), else None."""
    n = len(ref.r0)
    along, across, size = (ref.r0, ref.c0, ref.h) if down else (ref.c0, ref.r0, ref.w)
    if n < 2 or (across != across[0]).any() or (along != along[0] + size * np.arange(n)).any():
        return None
    if down:
        return RefVal(ref.sheet, ref.r0[:1], ref.c0[:1], ref.h * n, ref.w)
    return RefVal(ref.sheet, ref.r0[:1], ref.c0[:1], ref.h, ref.w * n)


def _distinct(host: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct values, each cell's index among them, the first cell of each)."""
    values, first, inverse = np.unique(host, return_index=True, return_inverse=True)
    return values, inverse.reshape(-1), first


def _follows(ref: RefVal, key: np.ndarray, first: np.ndarray) -> bool:
    """Whether the reference's corner is the same for every cell of one key (host row, or host column)."""
    n = len(key)
    r0, c0 = np.broadcast_to(ref.r0, (n,)), np.broadcast_to(ref.c0, (n,))
    return bool((r0 == r0[first][key]).all() and (c0 == c0[first][key]).all())


def _pick(ref: RefVal, first: np.ndarray, n: int) -> RefVal:
    """The reference read once per key: at the key's first cell."""
    return RefVal(ref.sheet, np.broadcast_to(ref.r0, (n,))[first], np.broadcast_to(ref.c0, (n,))[first], ref.h, ref.w)


def _flat_read(num) -> Callable[[Env], torch.Tensor] | None:
    """env -> (B, n): a gather (`lower.gather_thunk`, which carries what it reads as `.cells`) that reads one run of
    one source's cells in order, as that run unreshaped (the product reshapes it anyway: one op less on every
    evaluation); None for any other read."""
    src, pos, _ = getattr(num, "cells", (None, None, None))
    if src is None or src.size == 0:
        return None
    s, flat = int(src.reshape(-1)[0]), pos.reshape(-1)
    if s < 0 or (src != s).any() or (np.diff(flat) != 1).any():
        return None
    start, n = int(flat[0]), len(flat)
    return lambda env: env.run(s, start, n)
