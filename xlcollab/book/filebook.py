"""The file backend of Book: a .xlsx/.xlsm on disk, read through openpyxl, written by patching cells.

openpyxl's own save would drop what it does not model (charts it did not make, form controls, VBA
signatures, extensions), so `commit` never re-saves the workbook through openpyxl: it edits only the
written cells inside the sheets' XML and copies every other part of the zip unchanged, into a temporary
file that replaces the original in one `os.replace` (or goes to `out`). Formula cells of the sheets it
writes lose their cached values and the workbook asks for a full recalculation on load, so Excel and
LibreOffice show values computed from the new inputs, never stale ones.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from lxml import etree
from openpyxl import load_workbook
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from xlcollab.book.base import Book, Grid, bounds, range_name
from xlcollab.errors import WorkbookError

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_C = f"{{{NS}}}c"
_ROW = f"{{{NS}}}row"
_F = f"{{{NS}}}f"
_V = f"{{{NS}}}v"
_IS = f"{{{NS}}}is"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def lock_files(path: Path) -> list[Path]:
    """Lock files that say another application holds `path` open (Excel's ~$name, LibreOffice's .~lock.name#)."""
    candidates = [path.with_name("~$" + path.name), path.with_name(f".~lock.{path.name}#")]
    if len(path.name) > 2:  # Excel shortens long names: ~$ replaces the first two characters
        candidates.append(path.with_name("~$" + path.name[2:]))
    return [p for p in candidates if p.exists()]


class FileBook(Book):
    """A workbook file. Reads are lazy and cached; `commit()` writes atomically to `out` or over `path`."""

    def __init__(self, path: str | Path, out: str | Path | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.out = Path(out) if out is not None else None
        self.name = str(self.path)
        self._check_readable()
        self._wb = None
        self._sheet_parts, self._names = self._read_workbook_xml()

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
        if "xl/workbook.xml" not in names:
            raise self._fail("not an Excel workbook (a zip file without xl/workbook.xml)")

    def _read_workbook_xml(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """Sheet name -> zip part, and sheet name -> {defined name: text}, straight from workbook.xml."""
        with zipfile.ZipFile(self.path) as zf:
            try:
                book = etree.fromstring(zf.read("xl/workbook.xml"))
                rels = etree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
            except (KeyError, etree.XMLSyntaxError) as exc:
                raise self._fail(f"corrupt workbook ({exc})") from None
        targets = {r.get("Id"): r.get("Target") for r in rels.iter(f"{{{PKG_REL_NS}}}Relationship")}
        parts: dict[str, str] = {}
        order: list[str] = []
        for sheet in book.iter(_q("sheet")):
            target = targets.get(sheet.get(f"{{{REL_NS}}}id"), "")
            part = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
            name = sheet.get("name")
            order.append(name)
            if "worksheets/" in part:  # chartsheets and dialog sheets have no cells
                parts[name] = os.path.normpath(part).replace(os.sep, "/")
        names: dict[str, dict[str, str]] = {name: {} for name in order}
        for dn in book.iter(_q("definedName")):
            local = dn.get("localSheetId")
            if local is not None and int(local) < len(order):
                names[order[int(local)]][dn.get("name")] = dn.text or ""
        self._order = order
        return parts, names

    def _workbook(self):
        if self._wb is None:
            try:
                # read-only: sheets are parsed lazily, only those a solve reads (a tenth of a full load)
                self._wb = load_workbook(self.path, read_only=True, data_only=False, keep_links=False)
            except Exception as exc:  # openpyxl raises many types on damaged files
                raise self._fail(f"cannot read the workbook: {exc}") from None
        return self._wb

    # -- Book ---------------------------------------------------------------------------
    def sheet_names(self) -> list[str]:
        return [name for name in self._order if name in self._sheet_parts]

    def names(self, sheet: str) -> dict[str, str]:
        self.require_sheet(sheet)
        return dict(self._names.get(sheet, {}))

    def read(self, sheet: str, ref: str) -> Grid:
        self.require_sheet(sheet)
        ws = self._workbook()[sheet]
        r0, c0, r1, c1 = bounds(ref)
        grid = []
        for row in ws.iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1, values_only=True):
            grid.append([_formula_text(v) for v in row])
        return grid

    def _commit(self, writes: dict[str, dict[str, Any]]) -> None:
        target = self.out or self.path
        self._check_writable(target)
        patched: dict[str, bytes] = {}
        with zipfile.ZipFile(self.path) as zf:
            for sheet, cells in writes.items():
                part = self._sheet_parts[sheet]
                patched[part] = patch_sheet_xml(zf.read(part), cells, sheet=sheet, path=self.name)
            patched["xl/workbook.xml"] = _ask_full_recalc(zf.read("xl/workbook.xml"))
            _write_zip_atomically(zf, patched, target)
        if self.out is None:
            self.close()  # the file changed: the next read loads it again

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


_CELL_RE = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")


@functools.lru_cache(maxsize=1 << 16)
def _col_row(cell: str) -> tuple[int, int]:
    """(column, row) of "B3": cached, since a trace write touches tens of thousands of cells."""
    m = _CELL_RE.match(cell)
    if m is None:
        letters, row = coordinate_from_string(cell)
        return column_index_from_string(letters), row
    return column_index_from_string(m[1]), int(m[2])


def patch_sheet_xml(xml: bytes, cells: dict[str, Any], *, sheet: str, path: str) -> bytes:
    """Set literal values into cells of one worksheet's XML; refuse formula cells; keep every style."""
    root = etree.fromstring(xml)
    data = root.find(_q("sheetData"))
    if data is None:
        raise WorkbookError("worksheet has no sheetData", sheet=sheet, path=path)
    rows = {int(r.get("r")): r for r in data.iter(_ROW)}
    known: dict[int, dict[str, etree._Element]] = {}  # row number -> {cell name: <c>}, built once per row
    order = sorted(((row, col), cell) for cell in cells for col, row in [_col_row(cell)])
    for (row_num, col), cell in order:
        row = rows.get(row_num)
        if row is None:
            row = etree.Element(_ROW, r=str(row_num))
            _insert_sorted(data, row, row_num, key=lambda e: int(e.get("r")))
            rows[row_num] = row
        row.attrib.pop("spans", None)  # an optional hint that new cells may contradict
        in_row = known.get(row_num)
        if in_row is None:
            in_row = known[row_num] = {e.get("r"): e for e in row.iter(_C)}
        c = in_row.get(cell)
        if c is None:
            c = in_row[cell] = etree.Element(_C, r=cell)
            _insert_sorted(row, c, col, key=lambda e: _col_row(e.get("r"))[0])
        elif c.find(_F) is not None:
            raise WorkbookError("holds a formula; xlcollab only writes into input and parameter cells", sheet=sheet, cell=cell, path=path)
        _set_value(c, cells[cell])
    for f in data.iter(_F):  # cached results of formulas are stale now
        c = f.getparent()
        for v in c.findall(_V):
            c.remove(v)
        c.attrib.pop("t", None)
    _widen_dimension(root, [rc for rc, _ in order])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _insert_sorted(parent: etree._Element, child: etree._Element, key_value: int, *, key) -> None:
    tag = child.tag
    if len(parent) and parent[-1].tag == tag and key(parent[-1]) < key_value:
        parent.append(child)  # after the last one: the common case (appending rows or cells), O(1)
        return
    for i, sibling in enumerate(parent):
        if sibling.tag == tag and key(sibling) > key_value:
            parent.insert(i, child)
            return
    last = [i for i, s in enumerate(parent) if s.tag == tag]
    parent.insert(last[-1] + 1 if last else len(parent), child)


def _set_value(c: etree._Element, value: Any) -> None:
    for child in c:
        if child.tag == _V or child.tag == _IS:
            c.remove(child)
            break  # a cell holds one value
    c.attrib.pop("t", None)
    if value is None:
        return
    if isinstance(value, bool):
        c.set("t", "b")
        etree.SubElement(c, _V).text = "1" if value else "0"
    elif isinstance(value, (int, float)):
        etree.SubElement(c, _V).text = repr(value) if isinstance(value, float) else str(value)
    else:
        c.set("t", "inlineStr")
        t = etree.SubElement(etree.SubElement(c, _IS), _q("t"))
        t.text = str(value)
        if t.text != t.text.strip():
            t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")


def _widen_dimension(root: etree._Element, written: list[tuple[int, int]]) -> None:
    """Grow <dimension ref> to cover the written (row, col) cells."""
    dim = root.find(_q("dimension"))
    if dim is None or not written:
        return
    try:
        r0, c0, r1, c1 = bounds(dim.get("ref", "A1"))
    except Exception:
        r0, c0, r1, c1 = written[0][0], written[0][1], written[0][0], written[0][1]
    rows, cols = [r for r, _ in written], [c for _, c in written]
    dim.set("ref", range_name(min(r0, min(rows)), min(c0, min(cols)), max(r1, max(rows)), max(c1, max(cols))))


def _ask_full_recalc(xml: bytes) -> bytes:
    """workbook.xml with <calcPr fullCalcOnLoad="1"/>; returned unchanged when it already says so."""
    root = etree.fromstring(xml)
    calc = root.find(_q("calcPr"))
    if calc is not None and calc.get("fullCalcOnLoad") in ("1", "true"):
        return xml
    if calc is None:
        calc = etree.Element(_q("calcPr"), calcId="191029")
        anchor = next((e for e in root if e.tag in {_q(t) for t in ("oleSize", "customWorkbookViews", "pivotCaches",
                      "smartTagPr", "smartTagTypes", "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst")}), None)
        if anchor is None:
            root.append(calc)
        else:
            anchor.addprevious(calc)
    calc.set("fullCalcOnLoad", "1")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _write_zip_atomically(src: zipfile.ZipFile, replaced: dict[str, bytes], target: Path) -> None:
    """Copy every part of `src` (replacing some) into a temp file beside `target`, then rename it over."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as out:
            for info in src.infolist():
                data = replaced.get(info.filename)
                if data is None:
                    data = src.read(info.filename)
                out.writestr(info, data, compress_type=info.compress_type)
            out.close()
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            shutil.copymode(target, tmp)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
