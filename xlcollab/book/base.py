"""One Book interface over a workbook, live or on disk, with every capability declared here.

A macro, a solve or the Solver compiler reads cells, defined names and the sheet's structure through a
Book, buffers its writes and commits them at once. Backends: `filebook.FileBook` (a .xlsx/.xlsm on disk),
`unobook.UnoBook` (a live LibreOffice over UNO) and `xlbook.XlwingsBook` (a live Excel). Values are
plain Python: float/int/str/bool or None for an empty cell; a formula cell reads as its formula text
("=SUM(A1:A3)"); an array formula reads so at its anchor only, and the other cells of its extent read
as their values (computed by a live application, cached in a file, None where a file has none).

The public methods check the sheet once and cache what live backends answer slowly (sheet names,
defined names); a backend implements the `_`-prefixed hooks, and one it cannot do raises `Unsupported`
(a NotImplementedError) naming the backend and the capability, so callers never probe with `hasattr`.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

from xlcollab.book.spec import SheetSpec
from xlcollab.errors import WorkbookError

Grid = list[list[Any]]
Cells = dict[str, dict[str, Any]]   # {sheet: {cell: value}}

_REF = re.compile(r"^(?:(?P<sheet>'(?:[^']|'')+'|[^!]+)!)?(?P<range>\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?)$")
_CELL = re.compile(r"[A-Z]{1,3}[1-9][0-9]*")  # a cell's name as cell_name writes it ("B3")
#: the error values a cell can hold; `write_cached` stores them as errors, not as text
ERROR_VALUES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
                          "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"})


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


def union(refs: Sequence[str]) -> str | None:
    """The smallest range covering every range of `refs` ("A1:C3", "E5" -> "A1:E5"); None for none."""
    boxes = [bounds(r) for r in refs]
    if not boxes:
        return None
    return range_name(min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def column_index(letters: str) -> int:
    return column_index_from_string(letters)


class Unsupported(WorkbookError, NotImplementedError):
    """A capability this backend does not have (as xlwings' base classes do): names the backend and it."""


class Book(ABC):
    """A workbook: read cells, defined names and structure, buffer writes, commit them together.

    Writes never touch a formula cell (they raise WorkbookError naming it), and nothing is visible
    in the workbook until `commit()`; `discard()` drops buffered writes.
    """

    #: what the workbook is called in messages (file name or book name)
    name: str = "workbook"
    #: whether values given to `write_cached` reach the workbook (a file keeps formulas' cached results;
    #: a live application recalculates them itself, so it ignores them)
    keeps_cached_values: bool = False

    def __init__(self) -> None:
        self._writes: Cells = {}
        self._cached: Cells = {}
        self._forget()

    # -- what a backend provides ---------------------------------------------------------------
    @abstractmethod
    def _sheet_names(self) -> list[str]:
        """The worksheet names, in workbook order."""

    @abstractmethod
    def _names(self, sheet: str) -> dict[str, str]:
        """Sheet-scoped defined names of an existing `sheet`: name -> the text it refers to."""

    @abstractmethod
    def _read(self, sheet: str, ref: str) -> Grid:
        """The values of range `ref` on an existing `sheet` (formulas as "=..." text)."""

    @abstractmethod
    def _commit(self, writes: Cells, cached: Cells) -> None:
        """Apply {sheet: {cell: value}} all at once (atomically for files), with formulas' cached values."""

    def _global_names(self) -> dict[str, str]:
        raise self._unsupported("read workbook-scoped defined names")

    def _read_cached(self, sheet: str, ref: str) -> Grid:
        raise self._unsupported("read the results a file caches beside its formulas")

    def _array_formulas(self, sheet: str) -> dict[str, str]:
        raise self._unsupported("list array formulas")

    def _merged_cells(self, sheet: str) -> list[str]:
        raise self._unsupported("list merged cells")

    def _used_range(self, sheet: str) -> str:
        raise self._unsupported("tell the used range")

    def _is_protected(self, sheet: str) -> bool:
        raise self._unsupported("tell whether a sheet is protected")

    def _put_sheet(self, spec: SheetSpec) -> None:
        raise self._unsupported("add a whole sheet")

    def active_sheet(self) -> str:
        """The sheet the user is looking at (the one whose button was clicked)."""
        raise self._unsupported("tell the active sheet: name the sheet")

    def location(self) -> Path | None:
        """Where the workbook lives (to save a model beside it); None when it has not been saved anywhere."""
        raise self._unsupported("tell where the workbook lives")

    def status(self, message: str) -> None:
        """Show progress (Excel's status bar); silent where there is nowhere to show it."""

    def alert(self, message: str) -> None:
        """Tell the user something went wrong (a message box in a live application); silent by default."""

    def inform(self, message: str) -> None:
        """Tell the user how a long action went (an information box in a live application); silent by default."""

    def _unsupported(self, what: str) -> Unsupported:
        return Unsupported(f"{type(self).__name__} cannot {what}", path=self.name)

    # -- reading (each public call checks the sheet once) ----------------------------------------
    def sheet_names(self) -> list[str]:
        """The worksheet names, in workbook order (cached until the next commit or put_sheet)."""
        if self._sheets is None:
            self._sheets = list(self._sheet_names())
        return list(self._sheets)

    def require_sheet(self, sheet: str) -> None:
        """Raise WorkbookError listing the sheets when `sheet` is not one of them."""
        if self._sheets is None:
            self._sheets = list(self._sheet_names())
        if sheet not in self._sheets:
            raise WorkbookError(f"no sheet named '{sheet}' (sheets: {', '.join(self._sheets)})", path=self.name)

    def names(self, sheet: str) -> dict[str, str]:
        """Sheet-scoped defined names of `sheet`: name -> the text it refers to ("'s'!$B$3:$P$17" or "2")."""
        self.require_sheet(sheet)
        return dict(self._local(sheet))

    def global_names(self) -> dict[str, str]:
        """Workbook-scoped defined names: name -> the text it refers to, as `names(sheet)` gives them."""
        if self._globals is None:
            self._globals = self._global_names()
        return dict(self._globals)

    def read(self, sheet: str, ref: str) -> Grid:
        """The values of range `ref` ("B3:P17") on `sheet` as a 2-D list (formulas as "=..." text)."""
        self.require_sheet(sheet)
        return self._read(sheet, ref.replace("$", ""))

    def read_cached(self, sheet: str, ref: str) -> Grid:
        """Range `ref` on `sheet` as the file last saved it, formula cells as their cached results (None where the
        file has none): what a reader that does not calculate sees. Files only (`keeps_cached_values`)."""
        self.require_sheet(sheet)
        return self._read_cached(sheet, ref.replace("$", ""))

    def ref_of(self, sheet: str, name: str) -> str:
        """The range ("B3:P17") a sheet-scoped defined name points at, on that same sheet."""
        self.require_sheet(sheet)
        return self._ref(sheet, name)

    def read_name(self, sheet: str, name: str) -> Grid:
        """The values of a named block."""
        self.require_sheet(sheet)
        return self._read(sheet, self._ref(sheet, name))

    def array_formulas(self, sheet: str) -> dict[str, str]:
        """Each array formula (CSE or dynamic) of `sheet`: anchor cell "B3" -> its extent "B3:D5" ("B3" for one cell)."""
        self.require_sheet(sheet)
        return dict(self._array_formulas(sheet))

    def merged_cells(self, sheet: str) -> list[str]:
        """The merged areas of `sheet` ("A8:C9"), in no particular order."""
        self.require_sheet(sheet)
        return list(self._merged_cells(sheet))

    def used_range(self, sheet: str) -> str:
        """The range that holds everything on `sheet` ("A1:AC240"), array extents and merged areas included."""
        self.require_sheet(sheet)
        return self._used_range(sheet)

    def is_protected(self, sheet: str) -> bool:
        """Whether `sheet` is protected (its locked cells refuse edits in Excel and LibreOffice)."""
        self.require_sheet(sheet)
        return self._is_protected(sheet)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, sheet: str, ref: str, values: Sequence[Sequence[Any]] | Any) -> None:
        """Buffer a write of a 2-D block (or one value) starting at the top-left cell of `ref`."""
        self.require_sheet(sheet)
        self._buffer(self._writes, sheet, ref, values)

    def write_name(self, sheet: str, name: str, values: Sequence[Sequence[Any]] | Any) -> None:
        """Buffer a write of a whole named block; the shape must match."""
        self.require_sheet(sheet)
        self._buffer(self._writes, sheet, self._ref(sheet, name), values)

    def write_cached(self, sheet: str, values: dict[str, Any]) -> None:
        """Buffer the cached results of formula cells, {cell: value} (an error as its text, "#DIV/0!").

        A file stores them beside the formulas at commit (and still asks for a full recalculation on
        load); a live application computes its own, so there they are checked for the sheet and dropped.
        """
        self.require_sheet(sheet)
        if not self.keeps_cached_values:
            return
        for cell, value in values.items():
            target = self._cached.get(sheet)  # after the first cell: a backend's checks of the sheet are done
            if target is None or not _CELL.fullmatch(cell) or isinstance(value, (list, tuple)):
                self._buffer(self._cached, sheet, cell, value)
                continue
            try:  # "B3" needs no parsing: what _buffer does, for the thousands of cells a solve caches
                target[cell] = _plain(value)
            except ValueError as exc:
                raise WorkbookError(str(exc), sheet=sheet, cell=cell, path=self.name) from None

    def pending(self) -> Cells:
        """The writes buffered so far, {sheet: {cell: value}}."""
        return self._writes

    def discard(self) -> None:
        """Drop every buffered write (cell values and cached results)."""
        self._writes, self._cached = {}, {}

    def commit(self) -> None:
        """Make every buffered write visible at once."""
        writes, cached = self._writes, self._cached
        self.discard()
        if writes or cached:
            self._commit(writes, cached)
            self._forget()

    def put_sheet(self, spec: SheetSpec) -> None:
        """Create or replace the whole sheet `spec.name` with its values and native charts.

        A file backend commits the buffered writes in the same atomic replace; a live one leaves them
        buffered for the next `commit()`.
        """
        self._put_sheet(spec)
        self._forget()

    # -- shared machinery --------------------------------------------------------------------------
    def _forget(self) -> None:
        """Drop cached names and sheets: the workbook changed."""
        self._sheets: list[str] | None = None
        self._local_names: dict[str, dict[str, str]] = {}
        self._globals: dict[str, str] | None = None

    def _local(self, sheet: str) -> dict[str, str]:
        if sheet not in self._local_names:
            self._local_names[sheet] = self._names(sheet)
        return self._local_names[sheet]

    def _ref(self, sheet: str, name: str) -> str:
        text = self._local(sheet).get(name)
        if text is None:
            raise WorkbookError(f"the defined name '{name}' is missing", sheet=sheet, path=self.name)
        target_sheet, ref = split_ref(text)
        if target_sheet is not None and target_sheet != sheet:
            raise WorkbookError(f"the defined name '{name}' points at another sheet ({text})", sheet=sheet, path=self.name)
        return ref

    def _buffer(self, into: Cells, sheet: str, ref: str, values: Sequence[Sequence[Any]] | Any) -> None:
        grid = values if _is_grid(values) else [[values]]
        r0, c0, r1, c1 = bounds(ref)
        if ":" in ref and (len(grid), max((len(row) for row in grid), default=0)) != (r1 - r0 + 1, c1 - c0 + 1):
            raise WorkbookError(f"{len(grid)}x{len(grid[0]) if grid else 0} values do not fit {ref}", sheet=sheet, path=self.name)
        target = into.setdefault(sheet, {})
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                cell = cell_name(r0 + i, c0 + j)
                try:
                    target[cell] = _plain(value)
                except ValueError as exc:
                    raise WorkbookError(str(exc), sheet=sheet, cell=cell, path=self.name) from None


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
