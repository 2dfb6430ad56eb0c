"""What the compiler knows of a workbook: each sheet's cells as grids, read through a Book once per sheet.

A sheet is loaded on first use with one `read` of its used range (live backends pay per call). Its grids hold,
per cell, the kind, number and text of constants and computed formulas, and where a value that depends on
the variables comes from at evaluation time (`src`: 0 is x, k > 0 the k-th compiled block; `pos` its
index there). Formula cells not computed yet are PENDING; asking for one raises NotReady.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlcollab.book.base import Book, bounds
from xlcollab.errors import WorkbookError
from xlcollab.solver.refs import Cell, a1
from xlcollab.solver.values import BLANK, BOOL, ERR, NUM, classify

CONST, PENDING, FAILED = -1, -2, -3
MAX_CELLS = 10_000_000  # grids of the used range: about 40 bytes a cell


class NotReady(Exception):
    """Cells whose formulas must be compiled first."""

    def __init__(self, cells: list[Cell]) -> None:
        super().__init__(f"{len(cells)} cells not ready")
        self.cells = cells


@dataclass
class CellList:
    """Cells of one sheet as parallel lists, in reading order: numbers read, or formula texts of one extent."""
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, row: int, col: int, value: Any) -> None:
        self.rows.append(row)
        self.cols.append(col)
        self.values.append(value)

    def outside(self, owned: np.ndarray) -> CellList:
        """The cells not marked in `owned` (the extents of array formulas)."""
        keep = [k for k, (r, c) in enumerate(zip(self.rows, self.cols)) if not owned[r, c]]
        return CellList([self.rows[k] for k in keep], [self.cols[k] for k in keep], [self.values[k] for k in keep])


class SheetData:
    """The grids of one sheet (1-based: index [row, col]; row/col 0 unused)."""

    def __init__(self, book: Book, name: str) -> None:
        self.name = name
        r0, c0, r1, c1 = bounds(book.used_range(name))
        arrays = {bounds(anchor)[:2]: bounds(extent) for anchor, extent in book.array_formulas(name).items()}
        r1 = max([r1] + [e[2] for e in arrays.values()])
        c1 = max([c1] + [e[3] for e in arrays.values()])
        if r1 * c1 > MAX_CELLS:
            raise WorkbookError(f"the used range {book.used_range(name)} is too large to compile", sheet=name,
                                path=book.name)
        shape = (r1 + 1, c1 + 1)
        self.kind = np.full(shape, BLANK, dtype=np.int8)
        self.num = np.zeros(shape)
        self.text = np.full(shape, "", dtype=object)
        self.src = np.full(shape, CONST, dtype=np.int32)
        self.pos = np.zeros(shape, dtype=np.int32)
        self.group = np.full(shape, -1, dtype=np.int32)
        self.shape = shape
        self.formulas: dict[tuple[int, int] | None, CellList] = {}  # by extent, in the order first read
        self._load(book.read(name, f"A1:{a1(r1, c1)}"), arrays, book)

    def _load(self, grid: list[list[Any]], arrays: dict[tuple[int, int], tuple[int, int, int, int]], book: Book) -> None:
        """Classify the read values: numbers in bulk, formulas by extent, the rest one by one (text, bools, dates).

        Inside an array formula's extent only the anchor counts (its formula); the other cells' values come from it.
        """
        nums, formulas, others = CellList(), CellList(), []
        for i, row in enumerate(grid, start=1):
            for j, v in enumerate(row, start=1):
                if v is None:
                    continue
                kind = type(v)
                if kind is float or kind is int:
                    nums.add(i, j, v)
                elif kind is str and len(v) > 1 and v[0] == "=":
                    formulas.add(i, j, v)
                else:
                    others.append((i, j, v))
        owned = np.zeros(self.shape, dtype=bool)
        for er0, ec0, er1, ec1 in arrays.values():
            owned[er0:er1 + 1, ec0:ec1 + 1] = True
        found: dict[tuple[int, int] | None, tuple[tuple[int, int], CellList]] = {}
        for (r, c), (er0, ec0, er1, ec1) in sorted(arrays.items()):
            v = grid[r - 1][c - 1]
            if v is None:
                continue
            if not (isinstance(v, str) and v.startswith("=")):
                raise WorkbookError("an array formula's anchor reads without its formula", sheet=self.name,
                                    cell=a1(r, c), path=book.name)
            extent = (er1 - er0 + 1, ec1 - ec0 + 1)
            group = found.setdefault(extent, ((r, c), CellList()))[1]
            group.add(r, c, v)
            self.src[r:r + extent[0], c:c + extent[1]] = PENDING
        if arrays:  # what lies inside an extent (anchors included) is not read as a value or formula of its own
            nums, formulas = nums.outside(owned), formulas.outside(owned)
            others = [o for o in others if not owned[o[0], o[1]]]
        if formulas.rows:
            found[None] = ((formulas.rows[0], formulas.cols[0]), formulas)
            self.src[formulas.rows, formulas.cols] = PENDING
        self.formulas = {extent: part for extent, (_, part) in sorted(found.items(), key=lambda item: item[1][0])}
        values = np.array(nums.values, dtype=np.float64)
        finite = np.isfinite(values)
        self.kind[nums.rows, nums.cols] = np.where(finite, NUM, ERR)
        self.num[nums.rows, nums.cols] = np.where(finite, values, np.nan)
        self.text[np.array(nums.rows, dtype=int)[~finite], np.array(nums.cols, dtype=int)[~finite]] = "#NUM!"
        for i, j, v in others:
            self.kind[i, j], self.num[i, j], self.text[i, j] = classify(v)

    def grow(self, row: int, col: int) -> None:
        """Enlarge the grids to hold (row, col): a variable cell beyond the used range."""
        shape = (max(self.shape[0], row + 1), max(self.shape[1], col + 1))
        for name, fill in (("kind", BLANK), ("num", 0.0), ("text", ""), ("src", CONST), ("pos", 0), ("group", -1)):
            old = getattr(self, name)
            new = np.full(shape, fill, dtype=old.dtype)
            new[:old.shape[0], :old.shape[1]] = old
            setattr(self, name, new)
        self.shape = shape

    def inside(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (rows >= 1) & (cols >= 1) & (rows < self.shape[0]) & (cols < self.shape[1])

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """kind, num, text, src, pos of the cells at (rows, cols) (any shape); outside the grid: blank."""
        ok = self.inside(rows, cols)
        r, c = np.where(ok, rows, 0), np.where(ok, cols, 0)  # row 0 / col 0 are blank, constant
        return self.kind[r, c], self.num[r, c], self.text[r, c], self.src[r, c], self.pos[r, c]

    def settle(self, rows: np.ndarray, cols: np.ndarray, kind: np.ndarray, text: np.ndarray | None,
               src: int | np.ndarray, pos: np.ndarray | None = None, num: np.ndarray | None = None) -> None:
        """Record computed cells: where `src` is CONST their constant `num`, elsewhere the source `src` (x, or a
        compiled block's output) supplies them at `pos`."""
        kind = np.where(kind == BLANK, NUM, kind)  # a formula shows a blank it points at as 0
        self.kind[rows, cols] = kind
        if text is not None:
            self.text[rows, cols] = text
        self.src[rows, cols] = src
        if pos is not None:
            self.pos[rows, cols] = pos
        if num is not None:
            const = np.broadcast_to(np.asarray(src) == CONST, kind.shape)
            self.num[rows[const], cols[const]] = np.where((kind == NUM) | (kind == BOOL), num, 0.0)[const]


class Workbook:
    """The sheets a compile touches, loaded on first use, and the book's defined names."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.sheets: dict[str, SheetData] = {}
        self._names = {s.upper(): s for s in book.sheet_names()}
        self._globals: dict[str, str] | None = None
        self._local: dict[str, dict[str, str]] = {}
        self.on_load = None  # called with each newly loaded SheetData (the graph groups its formulas)

    def sheet(self, name: str) -> SheetData:
        data = self.sheets.get(name)
        if data is None:
            real = self._names.get(name.upper())
            if real is None:
                raise WorkbookError(f"no sheet named '{name}'", path=self.book.name)
            data = self.sheets.get(real)
            if data is None:
                data = self.sheets[real] = SheetData(self.book, real)
                if self.on_load is not None:
                    self.on_load(data)
            self.sheets[name] = data
        return data

    def loaded(self) -> list[str]:
        """The sheets loaded so far (real names, in load order)."""
        return list(dict.fromkeys(d.name for d in self.sheets.values()))

    def real_name(self, name: str) -> str | None:
        return self._names.get(name.upper())

    def name_text(self, sheet: str, name: str) -> str | None:
        """What a defined name refers to: the sheet's own name first, then the workbook's."""
        key = name.upper()
        if sheet not in self._local:
            self._local[sheet] = self.book.names(sheet) if self.real_name(sheet) else {}
        for table in (self._local[sheet], self.global_names()):
            for k, v in table.items():
                if k.upper() == key:
                    return v
        return None

    def global_names(self) -> dict[str, str]:
        if self._globals is None:
            self._globals = self.book.global_names()
        return self._globals
