"""A Book seen with formulas in cells the workbook leaves empty: how a formula right-hand side gets compiled.

Excel lets a constraint's right side be a formula kept only in the name (`solver_rhs1` = `=2*Sheet1!$B$1`). The
compiler compiles cells, so such a formula is placed, in this view only, in an empty column right of the
sheet's used range; nothing is ever written there.
"""
from __future__ import annotations

from typing import Any

from xlcollab.book.base import Book, Grid, bounds, range_name

Cell = tuple[str, int, int]


class WithFormulas(Book):
    """`book` plus formula text in spare cells of `sheet`; `place(formula)` returns the cell it took."""

    def __init__(self, book: Book, sheet: str) -> None:
        super().__init__()
        self.book, self.sheet, self.name = book, sheet, book.name
        self.column = bounds(book.used_range(sheet))[3] + 2
        self.extra: dict[Cell, str] = {}

    def place(self, formula: str) -> Cell:
        cell = (self.sheet, len(self.extra) + 1, self.column)
        self.extra[cell] = formula
        return cell

    def sheet_names(self) -> list[str]:
        return self.book.sheet_names()

    def names(self, sheet: str) -> dict[str, str]:
        return self.book.names(sheet)

    def used_range(self, sheet: str) -> str:
        ref = self.book.used_range(sheet)
        if sheet != self.sheet or not self.extra:
            return ref
        r0, c0, r1, c1 = bounds(ref)
        return range_name(min(r0, 1), min(c0, 1), max(r1, len(self.extra)), self.column)

    def read(self, sheet: str, ref: str) -> Grid:
        grid = self.book.read(sheet, ref)
        if sheet == self.sheet:
            r0, c0, _, _ = bounds(ref)
            for (_, r, c), text in self.extra.items():
                if 0 <= r - r0 < len(grid) and 0 <= c - c0 < len(grid[r - r0]):
                    grid[r - r0][c - c0] = text
        return grid

    def _commit(self, writes: dict[str, dict[str, Any]]) -> None:
        raise RuntimeError("a WithFormulas view is read-only")

    # every other capability is the book's own
    def global_names(self) -> dict[str, str]:
        return self.book.global_names()

    def array_formulas(self, sheet: str) -> dict[str, str]:
        return self.book.array_formulas(sheet)

    def merged_cells(self, sheet: str) -> list[str]:
        return self.book.merged_cells(sheet)

    def is_protected(self, sheet: str) -> bool:
        return self.book.is_protected(sheet)
