"""Typed reads of cells through a Book: the one place a cell's value is checked and a bad one named.

Each reader takes the value from the Book and checks it with the one value checker (`xlcollab.core.checks`); a
value that fails becomes a `WorkbookError` naming the file, the sheet and the cell ("file g.xlsx, sheet 'adam',
cell B7: the learning rate must be a number > 0, found -1"). Limits are `checks.number`'s keywords: lo, hi,
lo_open, hi_open, integer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.core import checks
from xlcollab.errors import WorkbookError


@contextmanager
def at(book: Book, sheet: str, cell: str | None) -> Iterator[None]:
    """Inside: a CheckError becomes a WorkbookError naming the book, `sheet` and `cell` (for values read already)."""
    try:
        yield
    except checks.CheckError as exc:
        raise WorkbookError(str(exc), sheet=sheet, cell=cell, path=book.name) from None


def number_at(book: Book, sheet: str, ref: str, what: str, **limits: Any) -> float:
    """The number in cell `ref` ("B7") of `sheet`, within `limits`."""
    with at(book, sheet, ref):
        return checks.number(book.read(sheet, ref)[0][0], what, **limits)


def whole_at(book: Book, sheet: str, ref: str, what: str, **limits: Any) -> int:
    """The whole number in cell `ref`, within `limits` (lo, hi)."""
    with at(book, sheet, ref):
        return checks.whole(book.read(sheet, ref)[0][0], what, **limits)


def choice_at(book: Book, sheet: str, ref: str, what: str, options: tuple[str, ...] | list[str]) -> str:
    """The text in cell `ref`, which must be one of `options`."""
    with at(book, sheet, ref):
        return checks.choice(book.read(sheet, ref)[0][0], what, options)


def named_number(book: Book, sheet: str, name: str, what: str, **limits: Any) -> float:
    """The number in the one cell the sheet-scoped defined name `name` points at."""
    return number_at(book, sheet, book.ref_of(sheet, name), what, **limits)


def numbers_in(book: Book, sheet: str, name: str, what: str, *, blanks: bool = False,
               read: Callable[[str], list[list[Any]]] | None = None, **limits: Any) -> np.ndarray:
    """The block a sheet-scoped defined name points at, as a float64 array (rows x columns).

    Every cell must be a number within `limits`; with `blanks`, an empty cell is allowed and reads as NaN.
    `read(ref)` gives the block's values where the caller has read the sheet already (default: `book.read`).
    """
    ref = book.ref_of(sheet, name)
    r0, c0, r1, c1 = bounds(ref)
    grid = read(ref) if read else book.read(sheet, ref)
    quick = _plain_numbers(grid, (r1 - r0 + 1, c1 - c0 + 1), blanks, limits)
    if quick is not None:
        return quick
    out = np.full((r1 - r0 + 1, c1 - c0 + 1), np.nan)  # a bad cell somewhere: found and named one at a time
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if blanks and checks.is_blank(value):
                continue
            with at(book, sheet, cell_name(r0 + i, c0 + j)):
                out[i, j] = checks.number(value, what, **limits)
    return out


def _plain_numbers(grid: list[list[Any]], shape: tuple[int, int], blanks: bool,
                   limits: dict[str, Any]) -> np.ndarray | None:
    """The block in one array pass when every cell is a plain float or int (or None, with `blanks`) that
    checks.number accepts with these limits; None when any cell needs the cell-by-cell check (and its message)."""
    if len(grid) != shape[0] or any(len(row) != shape[1] for row in grid) or \
            set(limits) - {"lo", "hi", "lo_open", "hi_open", "integer"}:
        return None
    flat = [v for row in grid for v in row]
    if not all(type(v) is float or type(v) is int or (blanks and v is None) for v in flat):
        return None
    out = np.array([np.nan if v is None else v for v in flat], dtype=np.float64).reshape(shape)
    x = out[~np.isnan(out)] if blanks else out
    lo, hi = limits.get("lo"), limits.get("hi")
    ok = np.isfinite(x).all() and not (limits.get("integer") and (x != np.round(x)).any())
    ok = ok and (lo is None or bool((x > lo).all() if limits.get("lo_open") else (x >= lo).all()))
    ok = ok and (hi is None or bool((x < hi).all() if limits.get("hi_open") else (x <= hi).all()))
    return out if ok else None
