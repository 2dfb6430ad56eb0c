"""The file backend of Book: a .xlsx/.xlsm on disk, read by streaming its XML, written by patching it.

openpyxl's own save would drop what it does not model (charts it did not make, form controls, VBA
signatures, extensions), so `commit` never re-saves the workbook through openpyxl: it edits only the
written cells inside the sheets' XML (`sheetxml.patch_sheet_xml`) and copies every other part of the
package unchanged, into a temporary file that replaces the target in one `os.replace` (`ooxml.Package`).
Formula cells of the sheets it writes keep a cached result only where `write_cached` gave one, and the
workbook asks for a full recalculation on load, so Excel and LibreOffice never show stale values.

Reads: the file is opened once (a regular file only: `core.safeio`), and every read comes from that open
file; each sheet's XML is checked whole (`read_sheet_facts`) before its cells are read (`cellxml`: one lxml pass,
values as openpyxl's read-only mode gives them; `read_styles`: the shared strings and date styles), so a malformed or
hostile sheet is refused before any work starts. An array formula reads as "=..." at its anchor, and the other
cells of its extent as their cached values (None where the file has none). After a commit to `out`, the book
reads and writes `out`.

No lost updates: a commit holds the target's write lock; when the file changed on disk since it was opened
(another process saved it), the commit goes onto the new file only if none of the parts this book read or
writes changed there (zip directory checksums), and otherwise refuses with one line, writing nothing.
"""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

from xlcollab.book.base import Book, Cells, Grid, bounds
from xlcollab.book.cellxml import Styles, read_sheet_values, read_styles
from xlcollab.book.graft import graft_sheet
from xlcollab.book.ooxml import (CONTENT_TYPES, WORKBOOK, WORKBOOK_RELS, Package, WorkbookMap, ask_full_recalc,
                                 workbook_error)
from xlcollab.book.sheetxml import SheetFacts, patch_sheet_xml, read_sheet_facts
from xlcollab.book.spec import SheetSpec
from xlcollab.core import atomic, budget, safeio
from xlcollab.errors import WorkbookError

#: memory lxml needs to patch a sheet, per byte of its XML (measured: ~20; a tree and its serialized copy)
_PATCH_BYTES_PER_BYTE = 22


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
        self._fh: IO[bytes] | None = None
        self._reader: Package | None = None
        super().__init__()
        if self.out is not None:
            atomic.write_target(self.out, kind=workbook_error(self.out), what="workbook file")
        self._open()
        self._map: WorkbookMap | None = None
        self._book_map()

    # -- opening ------------------------------------------------------------------------
    def _fail(self, message: str, **where: Any) -> WorkbookError:
        return WorkbookError(message.removeprefix(f"{self.name}: "), path=self.name, **where)

    def _open(self) -> None:
        """Open the source once (a regular file), check its zip directory and every part's checksum."""
        fh = safeio.open_regular(self._source, kind=self._fail, what="workbook file")
        pkg = None
        try:
            pkg = Package(fh, name=self.name)
            pkg.check_parts()
            if WORKBOOK not in pkg:
                raise self._fail("not an Excel workbook (a zip file without xl/workbook.xml)")
            self._directory = pkg.directory()
        except WorkbookError as exc:
            if pkg is not None:
                pkg.close()
            fh.close()
            if "not a readable zip file" in str(exc):
                raise self._fail("not an Excel workbook (.xlsx/.xlsm are zip files; this one is not, or it is "
                                 "truncated)") from None
            raise
        self._fh, self._reader = fh, pkg
        self._used: set[str] = {WORKBOOK, WORKBOOK_RELS}

    def _package(self) -> contextlib.AbstractContextManager[Package]:
        """The open package every read goes through (its zip directory parsed once, at _open)."""
        return contextlib.nullcontext(self._reader)

    def _book_map(self) -> WorkbookMap:
        if self._map is None:
            with self._package() as pkg:
                self._map = pkg.workbook()
        return self._map

    def _facts(self, sheet: str) -> SheetFacts:
        """The sheet's structure, from one streaming pass over its whole XML (which refuses a bad sheet)."""
        if sheet not in self._sheet_facts:
            part = self._book_map().parts[sheet]
            self._used.add(part)
            with self._package() as pkg, pkg.open(part) as stream:
                self._sheet_facts[sheet] = read_sheet_facts(stream, part=part, path=self.name, sheet=sheet)
        return self._sheet_facts[sheet]

    # -- Book ---------------------------------------------------------------------------
    def _sheet_names(self) -> list[str]:
        return self._book_map().worksheets()

    def _names(self, sheet: str) -> dict[str, str]:
        return self._book_map().local_names.get(sheet, {})

    def _global_names(self) -> dict[str, str]:
        return self._book_map().global_names

    def _styles(self) -> Styles:
        """The shared strings, date styles and epoch the sheets' values need (read once, as openpyxl reads them)."""
        if self._values_styles is None:
            with self._package() as pkg:
                self._values_styles, parts = read_styles(pkg, path=self.name)
            self._used.update(parts)
        return self._values_styles

    def _values(self, sheet: str, box: tuple[int, int, int, int], *, cached: bool = False) -> Grid:
        self._facts(sheet)  # the whole sheet checked before its values are read
        part = self._book_map().parts[sheet]
        with self._package() as pkg, pkg.open(part) as stream:
            return read_sheet_values(stream, box, self._styles(), part=part, path=self.name, sheet=sheet,
                                     cached=cached)

    def _read(self, sheet: str, ref: str) -> Grid:
        box = bounds(ref)
        if self._last_read is None or self._last_read[:2] != (sheet, box):
            # a solve reads a sheet's used range twice (blocks, compiler)
            self._last_read = (sheet, box, self._values(sheet, box))
        return [list(row) for row in self._last_read[2]]

    def _read_cached(self, sheet: str, ref: str) -> Grid:
        return self._values(sheet, bounds(ref), cached=True)

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

    def _buffer(self, into, sheet: str, ref: str, values: Any) -> None:
        """Buffer as Book does, first checking that patching the sheet will fit in memory."""
        if sheet not in self._writes and sheet not in self._cached:
            part = self._book_map().parts[sheet]
            size = self._directory.get(part, (0, 0))[1]
            budget.check_memory(size * _PATCH_BYTES_PER_BYTE, f"writing into sheet '{sheet}' ({budget.size(size)} "
                                f"of XML)", kind=lambda m: self._fail(m, sheet=sheet))
        super()._buffer(into, sheet, ref, values)

    def _write(self, writes: Cells, cached: Cells, spec: SheetSpec | None = None) -> None:
        target = self.location()
        self._check_writable(target)
        book = self._book_map()
        touched = {book.parts[s] for s in {**writes, **cached}} | {WORKBOOK}
        if spec is not None:
            touched |= {WORKBOOK_RELS, CONTENT_TYPES}
        with atomic.locked(target, kind=workbook_error(target)):
            base = self._current_base(target, touched)
            try:
                with Package(base, name=self.name) as pkg:
                    for sheet in {**writes, **cached}:
                        part = book.parts[sheet]
                        pkg.set(part, patch_sheet_xml(pkg.read(part), writes.get(sheet, {}), cached=cached.get(sheet),
                                                      sheet=sheet, path=self.name, part=part))
                    pkg.set(WORKBOOK, ask_full_recalc(pkg.read(WORKBOOK)))
                    if spec is not None:
                        graft_sheet(pkg, spec)
                    pkg.save(target)
            finally:
                if base is not self._fh:
                    base.close()
        self.close()  # the file changed: the next read opens it again
        self._source = target
        self._open()

    def _current_base(self, target: Path, touched: set[str]) -> IO[bytes]:
        """The file to patch: the one read, or, if another process replaced it since, the new one provided no
        part this book read or writes differs there; otherwise nothing is written (WorkbookError)."""
        if not _same_file(target, self._source) or _unchanged(self._fh, self._source):
            return self._fh
        fresh = safeio.open_regular(self._source, kind=self._fail, what="workbook file")
        try:
            with Package(fresh, name=self.name) as now:
                # workbook.xml by what it says (its recalc flag is every writer's to set), the rest by checksum
                changed = sorted(p for p in (self._used | touched) - {WORKBOOK}
                                 if now.directory().get(p) != self._directory.get(p))
                if not changed and now.workbook() != self._book_map():
                    changed = [WORKBOOK]
        except BaseException:
            fresh.close()
            raise
        if changed:
            fresh.close()
            sheets = [s for s, p in self._book_map().parts.items() if p in changed]
            what = (f"sheet '{sheets[0]}'" if sheets else "its sheets or defined names" if changed[0] == WORKBOOK
                    else changed[0])
            raise self._fail(f"another program saved this workbook after xlcollab read it and changed {what}; "
                             "nothing was written, so its changes are kept: run again to work on the new file")
        return fresh

    def _forget(self) -> None:
        super()._forget()
        self._map = None
        self._sheet_facts: dict[str, SheetFacts] = {}
        self._last_read: tuple[str, tuple[int, int, int, int], Grid] | None = None
        self._values_styles: Styles | None = None

    def close(self) -> None:
        """Release the file handles reads keep open."""
        if self._fh is not None:
            self._reader.close()
            self._fh.close()
            self._fh = self._reader = None

    def _check_writable(self, target: Path) -> None:
        for p in {self.path, target}:
            held = lock_files(p)
            if held:
                raise self._fail(f"the workbook is open in another application (lock file {held[0].name}); close it first")
        real = atomic.write_target(target, kind=workbook_error(target), what="workbook file")
        if real.exists() and not (real.stat().st_mode & stat.S_IWUSR):
            raise WorkbookError("the file is read-only", path=str(target))
        if real.parent.exists() and not os.access(real.parent, os.W_OK):
            raise WorkbookError("cannot write into its folder", path=str(target))


def _same_file(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _unchanged(fh: IO[bytes], path: Path) -> bool:
    """Whether `path` still is the file `fh` was opened on, unmodified (same inode, size and mtime)."""
    try:
        now = os.stat(path)
    except OSError:
        return False
    then = os.fstat(fh.fileno())
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (then.st_dev, then.st_ino, then.st_size,
                                                                       then.st_mtime_ns)
