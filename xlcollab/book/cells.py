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
    out = np.full((r1 - r0 + 1, c1 - c0 + 1), np.nan)
    for i, row in enumerate(read(ref) if read else book.read(sheet, ref)):
        for j, value in enumerate(row):
            if blanks and checks.is_blank(value):
                continue
            with at(book, sheet, cell_name(r0 + i, c0 + j)):
                out[i, j] = checks.number(value, what, **limits)
    return out
