"""A Book seen with formulas in cells the workbook leaves empty: how a formula right-hand side gets compiled.

Excel lets a constraint's right side be a formula kept only in the name (`solver_rhs1` = `=2*Sheet1!$B$1`). The
compiler compiles cells, so such a formula is placed, in this view only, in an empty column right of the
sheet's used range; nothing is ever written there, and every other read goes to the book itself.
"""
from __future__ import annotations

from typing import Any

from xlcollab.book.base import Book, Grid, bounds, range_name

Cell = tuple[str, int, int]


class WithFormulas:
    """`book` (read-only) plus formula text in spare cells of `sheet`; `place(formula)` returns the cell it took."""

    def __init__(self, book: Book, sheet: str) -> None:
        self.book, self.sheet, self.name = book, sheet, book.name
        self.column = bounds(book.used_range(sheet))[3] + 2
        self.extra: dict[Cell, str] = {}

    def place(self, formula: str) -> Cell:
        cell = (self.sheet, len(self.extra) + 1, self.column)
        self.extra[cell] = formula
        return cell

    def used_range(self, sheet: str) -> str:
        ref = self.book.used_range(sheet)
        if sheet != self.sheet or not self.extra:
            return ref
        r0, c0, r1, _ = bounds(ref)
        return range_name(min(r0, 1), min(c0, 1), max(r1, len(self.extra)), self.column)

    def read(self, sheet: str, ref: str) -> Grid:
        grid = self.book.read(sheet, ref)
        if sheet == self.sheet and self.extra:
            r0, c0, r1, c1 = bounds(ref)
            width = c1 - c0 + 1
            grid = [list(row) + [None] * (width - len(row)) for row in grid]
            grid += [[None] * width for _ in range(r1 - r0 + 1 - len(grid))]
            for (_, r, c), text in self.extra.items():
                if 0 <= r - r0 < len(grid) and 0 <= c - c0 < len(grid[r - r0]):
                    grid[r - r0][c - c0] = text
        return grid

    def __getattr__(self, attr: str) -> Any:  # names, merged cells, array formulas, ...: the book's own
        return getattr(self.book, attr)
