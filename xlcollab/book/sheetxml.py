"""One worksheet part's XML: write cell values and formulas' cached results in place, read the sheet's structure.

`patch_sheet_xml` edits only the cells it is given and keeps every style; formula cells keep a cached
result only where the caller gives one (`cached`), every other formula's stale result is dropped (the
workbook asks for a full recalculation on load anyway). `read_sheet_facts` streams a sheet once for what
openpyxl's read-only mode does not give: array formulas, merged areas, the used range, protection.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string

from xlcollab.book.base import ERROR_VALUES, bounds, range_name, union
from xlcollab.book.ooxml import NS, XML_NS, cell_text, iterparse_xml, parse_xml, q, xml_bytes
from xlcollab.errors import WorkbookError

_C, _ROW, _F, _V, _IS = q("c"), q("row"), q("f"), q("v"), q("is")
_CELL_RE = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")
#: the cells of a row whose (first) formula is an array formula
_ARRAY_CELLS = etree.XPath("m:c[@r!=''][m:f[1][@t='array']]", namespaces={"m": NS})


@functools.lru_cache(maxsize=1 << 16)
def col_row(cell: str) -> tuple[int, int]:
    """(column, row) of "B3": cached, since a trace write touches tens of thousands of cells."""
    m = _CELL_RE.match(cell)
    if m is None:
        letters, row = coordinate_from_string(cell)
        return column_index_from_string(letters), row
    return column_index_from_string(m[1]), int(m[2])


def patch_sheet_xml(xml: bytes, cells: dict[str, Any], *, cached: dict[str, Any] | None = None,
                    sheet: str, path: str, part: str = "the sheet's part") -> bytes:
    """Set literal values into cells (formula cells refused) and cached results into formula cells.

    `cached` holds results for formula cells, or for any cell of an array formula's extent; a value for
    a cell without a formula is refused. Formulas without one lose their stale cached result.
    """
    cached = cached or {}
    root = parse_xml(xml, part=part, path=path, sheet=sheet)
    data = root.find(q("sheetData"))
    if data is None:
        raise WorkbookError("worksheet has no sheetData", sheet=sheet, path=path)
    find = _CellFinder(data, _column_styles(root))
    order = sorted(((row, col), cell) for cell in cells for col, row in [col_row(cell)])
    for (row_num, col), cell in order:
        c = find(cell, row_num, col)
        if c.find(_F) is not None:
            raise WorkbookError("holds a formula; xlcollab only writes into input and parameter cells", sheet=sheet, cell=cell, path=path)
        _set_value(c, cells[cell])
    arrays, formulas = [], set()
    for f in data.iter(_F):
        c = f.getparent()
        formulas.add(c.get("r"))
        if f.get("t") == "array":
            arrays.append(bounds(f.get("ref") or c.get("r")))
        _set_value(c, cached.get(c.get("r")), cached=True)
    for cell in sorted(set(cached) - formulas, key=col_row):
        col, row = col_row(cell)
        if not any(r0 <= row <= r1 and c0 <= col <= c1 for r0, c0, r1, c1 in arrays):
            raise WorkbookError("holds no formula: a cached result belongs to formula cells only", sheet=sheet, cell=cell, path=path)
        _set_value(find(cell, row, col), cached[cell], cached=True)
    _widen_dimension(root, [rc for rc, _ in order])
    return xml_bytes(root)


def _column_styles(root: etree._Element) -> dict[int, str]:
    """Column number -> the style of <cols><col style=...>: what a cell typed into that column takes."""
    out: dict[int, str] = {}
    for col in root.iterfind(f"{q('cols')}/{q('col')}"):
        if col.get("style"):
            out.update(dict.fromkeys(range(int(col.get("min")), int(col.get("max")) + 1), col.get("style")))
    return out


class _CellFinder:
    """Find or create the <c> of a cell in <sheetData>, keeping rows and cells in order. A new cell takes its row's
    style (a row with customFormat) or else its column's, as Excel gives a value typed into an empty cell."""

    def __init__(self, data: etree._Element, column_styles: dict[int, str] | None = None) -> None:
        self.data, self.column_styles = data, column_styles or {}
        self.rows = {int(r.get("r")): r for r in data.iter(_ROW)}
        self.known: dict[int, dict[str, etree._Element]] = {}  # row number -> {cell name: <c>}, built once per row

    def __call__(self, cell: str, row_num: int, col: int) -> etree._Element:
        row = self.rows.get(row_num)
        if row is None:
            row = etree.Element(_ROW, r=str(row_num))
            _insert_sorted(self.data, row, row_num, key=lambda e: int(e.get("r")))
            self.rows[row_num] = row
        row.attrib.pop("spans", None)  # an optional hint that new cells may contradict
        in_row = self.known.get(row_num)
        if in_row is None:
            in_row = self.known[row_num] = {e.get("r"): e for e in row.iter(_C)}
        c = in_row.get(cell)
        if c is None:
            c = in_row[cell] = etree.Element(_C, r=cell)
            style = row.get("s") if row.get("customFormat") in ("1", "true") else self.column_styles.get(col)
            if style:
                c.set("s", style)
            _insert_sorted(row, c, col, key=lambda e: col_row(e.get("r"))[0])
        return c


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


def _clear_value(c: etree._Element) -> None:
    for child in c:
        if child.tag == _V or child.tag == _IS:
            c.remove(child)
            break  # a cell holds one value
    c.attrib.pop("t", None)


def _set_value(c: etree._Element, value: Any, *, cached: bool = False) -> None:
    """A literal value (text inline, so the shared strings stay untouched), or with `cached` a formula's
    result: <v> after the <f>, typed t="b" / "e" (an error) / "str" (text). None leaves the cell empty."""
    _clear_value(c)
    if value is None:
        return
    if isinstance(value, str) and not cached:
        c.set("t", "inlineStr")
        t = etree.SubElement(etree.SubElement(c, _IS), q("t"))
        t.text = cell_text(value)
        if value != value.strip():
            t.set(f"{{{XML_NS}}}space", "preserve")
        return
    if isinstance(value, bool):
        kind, text = "b", "1" if value else "0"
    elif isinstance(value, (int, float)):
        kind, text = None, repr(value) if isinstance(value, float) else str(value)
    else:
        kind, text = "e" if value in ERROR_VALUES else "str", cell_text(str(value))
    if kind:
        c.set("t", kind)
    etree.SubElement(c, _V).text = text


def _widen_dimension(root: etree._Element, written: list[tuple[int, int]]) -> None:
    """Grow <dimension ref> to cover the written (row, col) cells."""
    dim = root.find(q("dimension"))
    if dim is None or not written:
        return
    try:
        r0, c0, r1, c1 = bounds(dim.get("ref", "A1"))
    except Exception:
        r0, c0, r1, c1 = written[0][0], written[0][1], written[0][0], written[0][1]
    rows, cols = [r for r, _ in written], [c for _, c in written]
    dim.set("ref", range_name(min(r0, min(rows)), min(c0, min(cols)), max(r1, max(rows)), max(c1, max(cols))))


@dataclass
class SheetFacts:
    """What a worksheet's XML says about its structure."""

    dimension: str | None                                 # <dimension ref>, as written
    cells: str | None                                     # the range its <c> elements cover
    arrays: dict[str, str] = field(default_factory=dict)  # anchor -> extent of each array formula
    merged: list[str] = field(default_factory=list)
    protected: bool = False

    def used_range(self) -> str:
        """<dimension> (or the cells' range without one), widened to every array extent and merged area."""
        return union([self.dimension or self.cells or "A1", *self.arrays.values(), *self.merged]) or "A1"


def read_sheet_facts(stream: IO[bytes], *, part: str = "a worksheet", path: str = "the workbook",
                     sheet: str | None = None) -> SheetFacts:
    """Stream a worksheet part once (rows freed as it goes) for its arrays, merges, range, protection.

    The whole part is parsed, so a malformed, truncated or hostile sheet is refused here (one WorkbookError
    line), before anything reads its cells. Per row, lxml finds the array formulas (a row's cells are visited
    in Python only for the cells' range of a sheet without <dimension>, which comes before the rows)."""
    facts = SheetFacts(None, None)
    box: list[int] = []
    tags = (_ROW, q("dimension"), q("mergeCell"), q("sheetProtection"))
    for el in iterparse_xml(stream, tag=tags, part=part, path=path, sheet=sheet):
        if el.tag == _ROW:
            if facts.dimension is None:
                for c in el.iterchildren(_C):
                    ref = c.get("r")
                    if ref:
                        col, row = col_row(ref)
                        box = [min(box[0], row), min(box[1], col), max(box[2], row), max(box[3], col)] if box \
                            else [row, col, row, col]
            for c in _ARRAY_CELLS(el):
                ref = c.get("r")
                facts.arrays[ref] = range_name(*bounds(c.find(_F).get("ref") or ref))
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
        elif el.tag == q("dimension"):
            facts.dimension = el.get("ref")
        elif el.tag == q("mergeCell"):
            facts.merged.append(el.get("ref"))
        else:
            facts.protected = el.get("sheet") in ("1", "true")
    facts.cells = range_name(*box) if box else None
    return facts
