"""One small Book interface over a workbook, live or on disk.

A macro or a solve reads named blocks and cells through a Book, buffers its writes, and commits them at
once; backends: `xlcollab.book.filebook.FileBook` (a .xlsx/.xlsm on disk, headless), a LibreOffice backend
over UNO and an xlwings backend for live Excel. Values are plain Python: float/int/str/bool or None for
an empty cell; a formula cell reads as its formula text ("=SUM(A1:A3)").
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

from xlcollab.errors import WorkbookError

Grid = list[list[Any]]

_REF = re.compile(r"^(?:(?P<sheet>'(?:[^']|'')+'|[^!]+)!)?(?P<range>\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?)$")


def split_ref(text: str) -> tuple[str | None, str]:
    """Split "'my sheet'!$B$3:$P$17" into ("my sheet", "B3:P17"); the sheet is None when absent."""
    m = _REF.match(text.strip().lstrip("="))
    if not m:
        raise WorkbookError(f"not a cell range: {text!r}")
    sheet = m["sheet"]
    if sheet and sheet.startswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    return sheet, m["range"].replace("$", "")


def bounds(ref: str) -> tuple[int, int, int, int]:
    """(min_row, min_col, max_row, max_col), 1-based, of "B3:P17" or "B3"."""
    min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
    return min_row, min_col, max_row, max_col


def cell_name(row: int, col: int) -> str:
    """"B3" for (3, 2)."""
    return f"{get_column_letter(col)}{row}"


def range_name(min_row: int, min_col: int, max_row: int, max_col: int) -> str:
    """"B3:P17" for (3, 2, 17, 16); a single cell gives "B3"."""
    first = cell_name(min_row, min_col)
    return first if (min_row, min_col) == (max_row, max_col) else f"{first}:{cell_name(max_row, max_col)}"


def cells_of(ref: str) -> list[list[str]]:
    """The cell names of a range, row by row."""
    r0, c0, r1, c1 = bounds(ref)
    return [[cell_name(r, c) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]


def column_index(letters: str) -> int:
    return column_index_from_string(letters)


class Book(ABC):
    """A workbook: read cells and sheet-scoped defined names, buffer writes, commit them together.

    Writes never touch a formula cell (they raise WorkbookError naming it), and nothing is visible
    in the workbook until `commit()`; `discard()` drops buffered writes.
    """

    #: what the workbook is called in messages (file name or book name)
    name: str = "workbook"

    @abstractmethod
    def sheet_names(self) -> list[str]:
        """The worksheet names, in workbook order."""

    @abstractmethod
    def names(self, sheet: str) -> dict[str, str]:
        """Sheet-scoped defined names of `sheet`: name -> the text it refers to ("'s'!$B$3:$P$17" or "2")."""

    @abstractmethod
    def read(self, sheet: str, ref: str) -> Grid:
        """The values of range `ref` ("B3:P17") on `sheet` as a 2-D list (formulas as "=..." text)."""

    @abstractmethod
    def _commit(self, writes: dict[str, dict[str, Any]]) -> None:
        """Apply {sheet: {cell: value}} all at once (atomically for files)."""

    def status(self, message: str) -> None:
        """Show progress (Excel's status bar); silent where there is nowhere to show it."""

    def alert(self, message: str) -> None:
        """Tell the user something went wrong (a message box in a live application)."""

    # -- shared behaviour -------------------------------------------------------------------
    def __init__(self) -> None:
        self._writes: dict[str, dict[str, Any]] = {}

    def require_sheet(self, sheet: str) -> None:
        if sheet not in self.sheet_names():
            raise WorkbookError(f"no sheet named '{sheet}' (sheets: {', '.join(self.sheet_names())})", path=self.name)

    def ref_of(self, sheet: str, name: str) -> str:
        """The range ("B3:P17") a sheet-scoped defined name points at, on that same sheet."""
        self.require_sheet(sheet)
        text = self.names(sheet).get(name)
        if text is None:
            raise WorkbookError(f"the defined name '{name}' is missing", sheet=sheet, path=self.name)
        target_sheet, ref = split_ref(text)
        if target_sheet is not None and target_sheet != sheet:
            raise WorkbookError(f"the defined name '{name}' points at another sheet ({text})", sheet=sheet, path=self.name)
        return ref

    def read_name(self, sheet: str, name: str) -> Grid:
        """The values of a named block."""
        return self.read(sheet, self.ref_of(sheet, name))

    def write(self, sheet: str, ref: str, values: Sequence[Sequence[Any]] | Any) -> None:
        """Buffer a write of a 2-D block (or one value) starting at the top-left cell of `ref`."""
        self.require_sheet(sheet)
        grid = values if _is_grid(values) else [[values]]
        r0, c0, r1, c1 = bounds(ref)
        if ":" in ref and (len(grid), max((len(row) for row in grid), default=0)) != (r1 - r0 + 1, c1 - c0 + 1):
            raise WorkbookError(f"{len(grid)}x{len(grid[0]) if grid else 0} values do not fit {ref}", sheet=sheet, path=self.name)
        target = self._writes.setdefault(sheet, {})
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                cell = cell_name(r0 + i, c0 + j)
                try:
                    target[cell] = _plain(value)
                except ValueError as exc:
                    raise WorkbookError(str(exc), sheet=sheet, cell=cell, path=self.name) from None

    def write_name(self, sheet: str, name: str, values: Sequence[Sequence[Any]] | Any) -> None:
        """Buffer a write of a whole named block; the shape must match."""
        self.write(sheet, self.ref_of(sheet, name), values)

    def pending(self) -> dict[str, dict[str, Any]]:
        """The writes buffered so far, {sheet: {cell: value}}."""
        return self._writes

    def discard(self) -> None:
        """Drop every buffered write."""
        self._writes = {}

    def commit(self) -> None:
        """Make every buffered write visible at once."""
        writes, self._writes = self._writes, {}
        if writes:
            self._commit(writes)


def _is_grid(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in values) and len(values) > 0


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers; NaN/inf refused (a sheet must never show them as data)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"cannot write {value!r} into a cell") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"refusing to write {number} into a cell")
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return int(value)
    return number
