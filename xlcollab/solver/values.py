"""The compiler's values: a block of cells as static kinds (number, bool, text, blank, error) plus numbers.

A `Val` holds, for the G cells of a filled block evaluated together, an (G, h, w) array of kinds, the text of
its text and error elements, and its numbers: a float64 tensor (1, G, h, w) when they are constant, or a
`Thunk` (env -> (B, G, h, w) tensor) when they depend on the variables. Kinds never depend on the variables:
a formula whose type would flip with them is refused where it is built. G and B may be 1 (broadcast).
"""
from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from openpyxl.utils.datetime import to_excel

NUM, BOOL, TEXT, BLANK, ERR = 0, 1, 2, 3, 4
ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#SPILL!", "#CALC!",
               "#GETTING_DATA")
F64 = torch.float64


class Unsupported(Exception):
    """A construct the compiler cannot turn into torch; the caller names the cell."""


Run = tuple[int, int, int]  # (source, first cell, cells): a run of one source's cells, in `pos` order


@dataclass
class Env:
    """What one evaluation carries: the source tensors (x (B, n), then each block's outputs (B, G, h, w)), the IF
    masks, and the runs of cells read (`run`, noted in `runs_read`: the program's set, which plans its splits)."""
    src: list[torch.Tensor]
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    runs_read: set[Run] = field(default_factory=set)
    _flat: dict[int, torch.Tensor] = field(default_factory=dict)
    _twin: dict[int, torch.Tensor] = field(default_factory=dict)
    _pieces: dict[Run, torch.Tensor] = field(default_factory=dict)

    def flat(self, s: int) -> torch.Tensor:
        """Source s as (B, cells), its cells in the order `pos` counts them (one view per evaluation)."""
        t = self._flat.get(s)
        if t is None:
            t = self._flat[s] = self.src[s] if self.src[s].dim() == 2 else self.src[s].reshape(self.src[s].shape[0], -1)
        return t

    def run(self, s: int, start: int, n: int) -> torch.Tensor:
        """Cells start..start + n - 1 of source s as (B, n): its piece of the source's `split` when one was cut,
        else a narrow (and the run is noted)."""
        piece = self._pieces.get((s, start, n))
        if piece is None:
            self.runs_read.add((s, start, n))
            piece = self.flat(s).narrow(1, start, n)
        return piece

    def split(self, s: int, sizes: list[int], runs: list[Run | None]) -> None:
        """Cut source s into pieces of `sizes` cells in one op (a narrow per run costs one op each, forward and
        backward: 2.4% of a dotprod evaluation); runs[i] is the run piece i answers (None: cells between runs)."""
        for run, piece in zip(runs, self.flat(s).split(sizes, 1)):
            if run is not None:
                self._pieces[run] = piece

    def twin(self, s: int) -> torch.Tensor:
        """Source s flat and, beside it, a detached copy (B, 2 * cells): masked reads take untaken cells there."""
        t = self._twin.get(s)
        if t is None:
            flat = self.flat(s)
            t = self._twin[s] = torch.cat([flat, flat.detach()], 1)
        return t


Thunk = Callable[[Env], torch.Tensor]
Num = Union[torch.Tensor, Thunk]


@dataclass(frozen=True)
class Val:
    """The values of a block's cells (or of an array per cell): kinds and texts static, numbers maybe not."""
    kind: np.ndarray                  # int8, (G|1, h, w)
    num: Num                          # float64 (1, G|1, h, w) tensor, or a thunk giving (B, G|1, h, w)
    text: np.ndarray | None = None    # object array broadcastable to kind: the text / error code per element

    @property
    def dynamic(self) -> bool:
        return callable(self.num)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.kind.shape  # type: ignore[return-value]

    def texts(self) -> np.ndarray:
        """The text array broadcast to the kinds' shape (empty strings where there is none)."""
        if self.text is None:
            return np.full(self.kind.shape, "", dtype=object)
        return np.broadcast_to(self.text, self.kind.shape)


def lift(fn: Callable[..., torch.Tensor], *nums: Num, device: torch.device) -> Num:
    """fn applied now when every argument is constant, else a thunk that applies it at each evaluation."""
    if not any(callable(n) for n in nums):
        return fn(*nums)
    args = [n if callable(n) else n.to(device) for n in nums]
    flags = [callable(a) for a in args]
    if flags == [True]:  # the common shapes, without a list per call (a sheet's evaluation is many small calls)
        (a,) = args
        return lambda env: fn(a(env))
    if len(args) == 2:
        a, b = args
        if flags == [True, True]:
            return lambda env: fn(a(env), b(env))
        return (lambda env: fn(a(env), b)) if flags[0] else (lambda env: fn(a, b(env)))

    def run(env: Env) -> torch.Tensor:
        return fn(*[a(env) if f else a for a, f in zip(args, flags)])
    return run


def tensor(a: np.ndarray) -> torch.Tensor:
    """A static (G, h, w) array as a (1, G, h, w) tensor."""
    return torch.from_numpy(np.array(a))[None]  # a copy: static arrays are often read-only broadcast views


def const_val(kind: np.ndarray, num: np.ndarray, text: np.ndarray | None = None) -> Val:
    """A constant Val from (G, h, w) numpy arrays."""
    return Val(np.asarray(kind, dtype=np.int8), tensor(np.asarray(num, dtype=np.float64)), text)


def from_python(values: np.ndarray) -> Val:
    """Classify an object array (G, h, w) of cell values: None blank, bool, numbers, error codes, text."""
    flat = values.reshape(-1)
    kind = np.full(flat.shape, NUM, dtype=np.int8)
    num = np.zeros(flat.shape)
    text = np.full(flat.shape, "", dtype=object)
    for i, v in enumerate(flat):
        kind[i], num[i], text[i] = classify(v)
    has_text = bool(np.isin(kind, (TEXT, ERR)).any())
    return const_val(kind.reshape(values.shape), num.reshape(values.shape),
                     text.reshape(values.shape) if has_text else None)


def classify(v: Any) -> tuple[int, float, str]:
    """(kind, number, text) of one Python cell value."""
    if v is None:
        return BLANK, 0.0, ""
    if isinstance(v, bool):
        return BOOL, float(v), ""
    if isinstance(v, (int, float)):
        x = float(v)
        return (NUM, x, "") if math.isfinite(x) else (ERR, math.nan, "#NUM!")
    if hasattr(v, "dtype") and np.issubdtype(v.dtype, np.number):
        return classify(float(v))
    if isinstance(v, (datetime.date, datetime.time, datetime.timedelta)):  # Excel keeps dates as serial numbers
        return NUM, float(to_excel(v)), ""
    s = str(v)
    if s in ERROR_CODES:
        return ERR, math.nan, s
    return TEXT, 0.0, s


def scalar(v: Any) -> Val:
    """A 1x1 constant."""
    return from_python(np.array([[[v]]], dtype=object))


def error(code: str, shape: tuple[int, ...] = (1, 1, 1)) -> Val:
    return const_val(np.full(shape, ERR), np.full(shape, math.nan), np.full(shape, code, dtype=object))


def distinct(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer or bool array, as np.unique(a) gives them; np.unique itself imports
    numpy.ma on first use (numpy 2 checks its argument for a masked array), 8 ms of every solve process."""
    a = np.sort(a, axis=None)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if a.size else a


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """Excel's array broadcasting: equal sizes, or 1 along a dimension; other mismatches are refused."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise Unsupported(f"arrays of different sizes ({' and '.join('x'.join(map(str, s[1:])) for s in shapes)})") from None


def number_from_text(s: str) -> float | None:
    """Excel's reading of text as a number in arithmetic ("3", " 1e3 ", "50%"); None when it is not one."""
    t = s.strip().replace(",", "")
    scale = 1.0
    if t.endswith("%"):
        t, scale = t[:-1], 0.01
    try:
        x = float(t)
    except ValueError:
        return None
    if not math.isfinite(x) or t.lower() in ("nan", "inf", "infinity", "-inf", "+inf"):
        return None
    return x * scale


def first_error(*vals: Val, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mask, codes): where any operand is an error, and the first operand's code there (Excel's order)."""
    mask = np.zeros(shape, dtype=bool)
    codes = np.full(shape, "", dtype=object)
    for v in vals:
        here = np.broadcast_to(v.kind == ERR, shape) & ~mask
        if here.any():
            codes[here] = np.broadcast_to(v.texts(), shape)[here]
            mask |= here
    return mask, codes


def with_errors(kind: np.ndarray, num: Num, mask: np.ndarray, codes: np.ndarray,
                text: np.ndarray | None = None) -> Val:
    """A Val whose elements under `mask` are the errors `codes` (their numbers are NaN)."""
    if not mask.any():
        return Val(kind.astype(np.int8), num, text)
    kind = np.where(mask, ERR, kind).astype(np.int8)
    full_text = np.full(kind.shape, "", dtype=object) if text is None else np.array(np.broadcast_to(text, kind.shape))
    full_text[mask] = codes[mask]
    return Val(kind, num, full_text)
