"""A Book seen with some cells changed, read-only: what the compiler reads when it must see cells the file lacks.

Two uses. Excel lets a constraint's right side be a formula kept only in the name (`solver_rhs1` =
`=2*Sheet1!$B$1`); the compiler compiles cells, so `WithFormulas` places such a formula, in this view only, in
an empty column right of the sheet's used range. And the cached values a write carries are those of the book
after its buffered writes: `with_writes` shows them before they are committed. Nothing is ever written through a
view; every other read goes to the book itself.
"""
from __future__ import annotations

from typing import Any

from xlcollab.book.base import Book, Grid, bounds, range_name

Cell = tuple[str, int, int]


class Overlay:
    """`book` (read-only) with the values of `extra` ({(sheet, row, col): value}) in place of its own."""

    def __init__(self, book: Book, extra: dict[Cell, Any] | None = None) -> None:
        self.book, self.name = book, book.name
        self.extra: dict[Cell, Any] = {}
        self._by_sheet: dict[str, dict[tuple[int, int], Any]] = {}
        for cell, value in (extra or {}).items():
            self.put(cell, value)

    def put(self, cell: Cell, value: Any) -> None:
        """Show `value` at `cell` (sheet, row, col)."""
        self.extra[cell] = value
        self._by_sheet.setdefault(cell[0], {})[cell[1:]] = value

    def _box(self, sheet: str) -> tuple[int, int, int, int] | None:
        cells = self._by_sheet.get(sheet)
        if not cells:
            return None
        rows, cols = [r for r, _ in cells], [c for _, c in cells]
        return min(rows), min(cols), max(rows), max(cols)

    def used_range(self, sheet: str) -> str:
        ref = self.book.used_range(sheet)
        box = self._box(sheet)
        if box is None:
            return ref
        r0, c0, r1, c1 = bounds(ref)
        return range_name(min(r0, box[0]), min(c0, box[1]), max(r1, box[2]), max(c1, box[3]))

    def read(self, sheet: str, ref: str) -> Grid:
        grid = self.book.read(sheet, ref)
        box = self._box(sheet)
        if box is None:
            return grid
        r0, c0, r1, c1 = bounds(ref)
        width = c1 - c0 + 1
        grid = [list(row) + [None] * (width - len(row)) for row in grid]
        grid += [[None] * width for _ in range(r1 - r0 + 1 - len(grid))]
        for (r, c), value in self._by_sheet[sheet].items():
            if r0 <= r <= r1 and c0 <= c <= c1:
                grid[r - r0][c - c0] = value
        return grid

    def __getattr__(self, attr: str) -> Any:  # names, merged cells, array formulas, ...: the book's own
        return getattr(self.book, attr)


class WithFormulas(Overlay):
    """`book` plus formula text in spare cells of `sheet`; `place(formula)` returns the cell it took."""

    def __init__(self, book: Book, sheet: str) -> None:
        super().__init__(book)
        self.sheet = sheet
        self.column = bounds(book.used_range(sheet))[3] + 2

    def place(self, formula: str) -> Cell:
        cell = (self.sheet, len(self.extra) + 1, self.column)
        self.put(cell, formula)
        return cell


def with_writes(book: Book) -> Overlay:
    """`book` as it will read once its buffered writes are committed."""
    return Overlay(book, {(sheet, *bounds(cell)[:2]): value
                          for sheet, cells in book.pending().items() for cell, value in cells.items()})
