"""The one value checker: is this a finite number, a whole number, inside its range? Says what it found.

Every place that takes a number from outside — a cell, a UDF argument, a setting, a CLI flag — checks it here, so
the rules and the words are the same everywhere. A failed check raises `CheckError` with a message that says what the
value should be and what it is ("the learning rate must be a number > 0, found -1"); callers that know where the
value came from wrap it with the place (a sheet and cell: `xlcollab.book.cells`; a setting's name: `SettingsError`).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from xlcollab.errors import XlcollabError


class CheckError(XlcollabError, ValueError):
    """A value that is not what its place needs; the message says both (no location: the caller adds it)."""


def is_blank(value: Any) -> bool:
    """An empty cell: None, or text of spaces only (Excel's "" included)."""
    return value is None or (isinstance(value, str) and not value.strip())


def is_number(value: Any) -> bool:
    """A finite real number (int, float, numpy scalar); never a bool, text or formula."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def describe(value: Any) -> str:
    """How a found value reads in a message: "blank", "a formula (=A1*2)", "'abc'", "nan"."""
    if is_blank(value):
        return "blank"
    if isinstance(value, str) and value.startswith("="):
        return f"a formula ({value})"
    return repr(value)


def _limit(x: float) -> str:
    """A limit as a message shows it: a whole-number limit in full (1000000, not 1e+06)."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bound(limit: float, open_: bool, side: str) -> str:
    return f"{side}{'' if open_ else '='} {_limit(limit)}"


def number(value: Any, what: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False) -> float:
    """`value` as a float when it is a finite number within [lo, hi] (open ends as asked), whole if `integer`.

    CheckError otherwise: "{what} must be a whole number >= 1, found 0.5".
    """
    need = ["a whole number" if integer else "a number"]
    if lo is not None:
        need.append(_bound(lo, lo_open, ">"))
    if hi is not None:
        need.append(_bound(hi, hi_open, "<"))
    if lo is not None and hi is not None:
        need = [need[0], f"in {'(' if lo_open else '['}{_limit(lo)}, {_limit(hi)}{')' if hi_open else ']'}"]
    ok = is_number(value)
    if ok:
        x = float(value)
        ok = not (integer and x != int(x))
        ok = ok and not (lo is not None and (x < lo or (lo_open and x == lo)))
        ok = ok and not (hi is not None and (x > hi or (hi_open and x == hi)))
    if not ok:
        raise CheckError(f"{what} must be {' '.join(need)}, found {describe(value)}")
    return float(value)


def whole(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """`number(..., integer=True)` as an int."""
    return int(number(value, what, lo=lo, hi=hi, integer=True))


def choice(value: Any, what: str, options: tuple[str, ...] | list[str]) -> str:
    """One of `options` (exact match); CheckError listing them otherwise."""
    if not isinstance(value, str) or value not in options:
        raise CheckError(f"{what} must be one of {', '.join(options)}, found {describe(value)}")
    return value
