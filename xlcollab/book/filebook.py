"""The file backend of Book: a .xlsx/.xlsm on disk, read through openpyxl, written by patching its XML.

openpyxl's own save would drop what it does not model (charts it did not make, form controls, VBA
signatures, extensions), so `commit` never re-saves the workbook through openpyxl: it edits only the
written cells inside the sheets' XML (`sheetxml.patch_sheet_xml`) and copies every other part of the
package unchanged, into a temporary file that replaces the target in one `os.replace` (`ooxml.Package`).
Formula cells of the sheets it writes keep a cached result only where `write_cached` gave one, and the
workbook asks for a full recalculation on load, so Excel and LibreOffice never show stale values.

Reads: values and formulas come from openpyxl's read-only mode (sheets parsed lazily, only those read);
an array formula reads as "=..." at its anchor, and the other cells of its extent as their cached values
(None where the file has none, e.g. after xlcollab wrote the sheet). After a commit to `out`, the book
reads and writes `out`.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from xlcollab.book.base import Book, Cells, Grid, bounds
from xlcollab.book.graft import graft_sheet
from xlcollab.book.ooxml import WORKBOOK, Package, WorkbookMap, ask_full_recalc
from xlcollab.book.sheetxml import SheetFacts, patch_sheet_xml, read_sheet_facts
from xlcollab.book.spec import SheetSpec
from xlcollab.errors import WorkbookError


def lock_files(path: Path) -> list[Path]:
    """Lock files that say another application holds `path` open (Excel's ~$name, LibreOffice's .~lock.name#)."""
    candidates = [path.with_name("~$" + path.name), path.with_name(f".~lock.{path.name}#")]
    if len(path.name) > 2:  # Excel shortens long names: ~$ replaces the first two characters
        candidates.append(path.with_name("~$" + path.name[2:]))
    return [p for p in candidates if p.exists()]


class FileBook(Book):
    """A workbook file. Reads are lazy and cached; `commit()` writes atomically to `out` or over `path`."""

    keeps_cached_values = True

    def __init__(self, path: str | Path, out: str | Path | None = None) -> None:
        self.path = Path(path)
        self.out = Path(out) if out is not None else None
        self.name = str(self.path)
        self._source = self.path  # the file reads come from: `out` once a commit wrote it
        self._wb = None
        super().__init__()
        self._check_readable()
        self._map: WorkbookMap | None = None
        self._book_map()

    # -- opening ------------------------------------------------------------------------
    def _fail(self, message: str, **where: Any) -> WorkbookError:
        return WorkbookError(message, path=self.name, **where)

    def _check_readable(self) -> None:
        if not self.path.exists():
            raise self._fail("no such file")
        if self.path.is_dir():
            raise self._fail("is a folder, not a workbook")
        if not zipfile.is_zipfile(self.path):
            raise self._fail("not an Excel workbook (.xlsx/.xlsm are zip files; this one is not, or it is truncated)")
        try:
            with zipfile.ZipFile(self.path) as zf:
                bad = zf.testzip()
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise self._fail(f"corrupt workbook ({exc})") from None
        if bad is not None:
            raise self._fail(f"corrupt workbook: part {bad} fails its checksum")
        if WORKBOOK not in names:
            raise self._fail("not an Excel workbook (a zip file without xl/workbook.xml)")

    def _package(self) -> Package:
        return Package(self._source, name=self.name)

    def _book_map(self) -> WorkbookMap:
        if self._map is None:
            with self._package() as pkg:
                self._map = pkg.workbook()
        return self._map

    def _workbook(self):
        if self._wb is None:
            try:
                # read-only: sheets are parsed lazily, only those a solve reads (a tenth of a full load)
                self._wb = load_workbook(self._source, read_only=True, data_only=False, keep_links=False)
            except Exception as exc:  # openpyxl raises many types on damaged files
                raise self._fail(f"cannot read the workbook: {exc}") from None
        return self._wb

    def _facts(self, sheet: str) -> SheetFacts:
        if sheet not in self._sheet_facts:
            with self._package() as pkg, pkg.open(self._book_map().parts[sheet]) as stream:
                self._sheet_facts[sheet] = read_sheet_facts(stream)
        return self._sheet_facts[sheet]

    # -- Book ---------------------------------------------------------------------------
    def _sheet_names(self) -> list[str]:
        return self._book_map().worksheets()

    def _names(self, sheet: str) -> dict[str, str]:
        return self._book_map().local_names.get(sheet, {})

    def _global_names(self) -> dict[str, str]:
        return self._book_map().global_names

    def _read(self, sheet: str, ref: str) -> Grid:
        ws = self._workbook()[sheet]
        r0, c0, r1, c1 = bounds(ref)
        width = c1 - c0 + 1
        grid = [[_formula_text(v) for v in row] + [None] * (width - len(row))
                for row in ws.iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1, values_only=True)]
        return grid + [[None] * width for _ in range(r1 - r0 + 1 - len(grid))]  # rows past the sheet's last

    def _array_formulas(self, sheet: str) -> dict[str, str]:
        return self._facts(sheet).arrays

    def _merged_cells(self, sheet: str) -> list[str]:
        return self._facts(sheet).merged

    def _used_range(self, sheet: str) -> str:
        return self._facts(sheet).used_range()

    def _is_protected(self, sheet: str) -> bool:
        return self._facts(sheet).protected

    def location(self) -> Path:
        """The file that commits write to: `out` when given, else the workbook itself."""
        return self.out or self.path

    def _commit(self, writes: Cells, cached: Cells) -> None:
        self._write(writes, cached)

    def _put_sheet(self, spec: SheetSpec) -> None:
        """Commit the buffered writes and add the sheet in one atomic replace."""
        writes, cached = self._writes, self._cached
        self._write(writes, cached, spec)
        self.discard()

    def _write(self, writes: Cells, cached: Cells, spec: SheetSpec | None = None) -> None:
        target = self.location()
        self._check_writable(target)
        book = self._book_map()
        with self._package() as pkg:
            for sheet in {**writes, **cached}:
                part = book.parts[sheet]
                pkg.set(part, patch_sheet_xml(pkg.read(part), writes.get(sheet, {}), cached=cached.get(sheet),
                                              sheet=sheet, path=self.name))
            pkg.set(WORKBOOK, ask_full_recalc(pkg.read(WORKBOOK)))
            if spec is not None:
                graft_sheet(pkg, spec)
            self.close()  # the file is about to change: the next read loads it again
            pkg.save(target)
        self._source = target

    def _forget(self) -> None:
        super()._forget()
        self._map = None
        self._sheet_facts: dict[str, SheetFacts] = {}

    def close(self) -> None:
        """Release the file handle a read keeps open."""
        if self._wb is not None:
            self._wb.close()
            self._wb = None

    def _check_writable(self, target: Path) -> None:
        for p in {self.path, target}:
            held = lock_files(p)
            if held:
                raise self._fail(f"the workbook is open in another application (lock file {held[0].name}); close it first")
        if target.exists() and not (target.stat().st_mode & stat.S_IWUSR):
            raise WorkbookError("the file is read-only", path=str(target))
        if not os.access(target.parent, os.W_OK):
            raise WorkbookError("cannot write into its folder", path=str(target))


def _formula_text(value: Any) -> Any:
    if isinstance(value, ArrayFormula):
        return value.text if value.text.startswith("=") else "=" + value.text
    if isinstance(value, DataTableFormula):
        return "=TABLE()"
    return value
