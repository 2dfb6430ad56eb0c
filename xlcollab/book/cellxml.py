"""A worksheet's cell values by one streaming lxml pass: what openpyxl's read-only mode gives, without its
per-cell objects (a 10,000-row sheet read in a fraction of the time).

The values are openpyxl's, rule for rule (`openpyxl.worksheet._reader.WorkSheetParser.parse_cell` and
`ReadOnlyWorksheet._cells_by_row`, openpyxl 3.1): numbers as int or float, dates where the cell's style is a
date format, shared and inline strings, TRUE/FALSE as bools, errors as their text, a formula as its text
"=..." (a shared formula translated from its first cell, an array formula's text at its anchor, a data table
as "=TABLE()"); rows without an `r` count on from the last, rows out of order are skipped, a cell repeated in
its row takes the last value. The sheet has been checked whole before (`sheetxml.read_sheet_facts`), so the
pass stops after the last row asked for. `read_styles` reads what the values need of the rest of the package (the
shared strings, which styles are dates, the 1900/1904 epoch) as openpyxl's loader does, without loading the workbook.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree
from openpyxl.cell.text import Text
from openpyxl.formula.translate import Translator
from openpyxl.utils.cell import column_index_from_string, coordinate_to_tuple
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601

from xlcollab.book.ooxml import CONTENT_TYPES, CT_NS, NS, WORKBOOK, Package, iterparse_xml, q
from xlcollab.errors import WorkbookError

_ROW, _F, _V, _IS, _SI, _T = q("row"), q("f"), q("v"), q("is"), q("si"), q("t")
_SHARED_STRINGS = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
STYLES = "xl/styles.xml"  # where openpyxl looks for the styles, whatever the relationships say
_LETTERS = re.compile(r"([A-Z]{1,3})\d+$")
_SHARED_MASTERS = etree.XPath("m:c/m:f[@t='shared'][text()]", namespaces={"m": NS})


@dataclass
class Styles:
    """What reading values needs of the workbook: its shared strings, the styles that are dates, the epoch."""
    strings: list[str]
    dates: set[int] = field(default_factory=set)
    durations: set[int] = field(default_factory=set)  # date styles that are time spans ([h]:mm)
    epoch: Any = None


def read_styles(pkg: Package, *, path: str) -> tuple[Styles, list[str]]:
    """The shared strings, date styles and epoch of the package (openpyxl 3.1's reading of them: the strings part
    found by its content type, styles.xml's cell formats, workbookPr's date1904), and the parts read."""
    parts = [STYLES] if STYLES in pkg else []
    strings_part = _strings_part(pkg, path)
    if strings_part is not None:
        parts.append(strings_part)
    strings = [] if strings_part is None else _shared_strings(pkg, strings_part, path)
    dates, durations = _date_styles(pkg, path) if STYLES in pkg else (set(), set())
    return Styles(strings, dates, durations, _epoch(pkg, path)), parts


def _strings_part(pkg: Package, path: str) -> str | None:
    types = pkg.tree(CONTENT_TYPES) if CONTENT_TYPES in pkg else None
    for override in () if types is None else types.iterchildren(q("Override", CT_NS)):
        if override.get("ContentType") == _SHARED_STRINGS:
            part = (override.get("PartName") or "")[1:]
            if part not in pkg:
                raise WorkbookError(f"corrupt workbook: the part {part} is missing", path=path)
            return part
    return None


def _shared_strings(pkg: Package, part: str, path: str) -> list[str]:
    """Each <si>'s text: its <t>, then its runs' <t>s (phonetic runs left out), "_x005F" unescaped as openpyxl does."""
    strings = []
    with pkg.open(part) as stream:
        for si in iterparse_xml(stream, tag=_SI, part=part, path=path):
            children = list(si)
            if len(children) == 1 and children[0].tag == _T and not len(children[0]):  # the common <si><t>..</t></si>
                text = children[0].text or ""
            else:
                text = Text.from_tree(si).content
            strings.append(text.replace("x005F_", ""))
            si.clear()
    return strings


def _date_styles(pkg: Package, path: str) -> tuple[set[int], set[int]]:
    """The cell formats (cellXfs indices) whose number format is a date, and those that are time spans."""
    root = pkg.tree(STYLES)
    custom: dict[int, str] = {}
    for fmt in _children(root, "numFmts", "numFmt"):
        custom[_integer(fmt, "numFmtId", path)] = fmt.get("formatCode")
    dates, durations = set(), set()
    for i, xf in enumerate(_children(root, "cellXfs", "xf")):
        number = _integer(xf, "numFmtId", path)
        code = custom[number] if number in custom else BUILTIN_FORMATS.get(number)
        if is_date_format(code):
            dates.add(i)
        if is_timedelta_format(code):
            durations.add(i)
    return dates, durations


def _children(root: etree._Element, outer: str, inner: str) -> list[etree._Element]:
    """root's <outer> (the last one, as openpyxl keeps it) and its <inner> children, matched by local name."""
    found = [el for el in root if etree.QName(el).localname == outer]
    return [el for el in found[-1] if etree.QName(el).localname == inner] if found else []


def _integer(el: etree._Element, attribute: str, path: str) -> int:
    value = el.get(attribute, "0")
    try:
        return int(value)
    except ValueError:
        raise WorkbookError(f"cannot read the workbook: {attribute} {value!r} in xl/styles.xml is not a whole "
                            "number", path=path) from None


def _epoch(pkg: Package, path: str):
    """1904 when workbookPr's date1904 says so (any value but false, f, 0 or empty, as openpyxl reads it)."""
    for props in _children_of(pkg.tree(WORKBOOK), "workbookPr"):
        flag = props.get("date1904")
        if flag is not None and flag not in ("false", "f", "0", ""):
            return CALENDAR_MAC_1904
    return CALENDAR_WINDOWS_1900


def _children_of(root: etree._Element, name: str) -> list[etree._Element]:
    return [el for el in root if etree.QName(el).localname == name][-1:]


def read_sheet_values(stream: IO[bytes], box: tuple[int, int, int, int], styles: Styles, *, part: str,
                      path: str, sheet: str, cached: bool = False) -> list[list[Any]]:
    """The values of rows r0..r1, columns c0..c1 (box, 1-based) as a full grid, None where a cell is empty; formula
    cells as their text, or (`cached`) as the result the file caches beside them (None where it has none)."""
    r0, c0, r1, c1 = box
    grid = [[None] * (c1 - c0 + 1) for _ in range(r1 - r0 + 1)]
    shared: dict[str, Translator] = {}
    columns: dict[str, int] = {}
    number, following = 0, r0  # openpyxl's row counter; the first row number it still takes
    for row in iterparse_xml(stream, tag=_ROW, part=part, path=path, sheet=sheet):
        r = row.get("r")
        number = _row_number(r) if r else number + 1
        if number > r1:
            break
        if number < following:  # before the range, or out of order: skipped, but its shared formulas count
            for f in _SHARED_MASTERS(row):
                _formula(f.getparent().get("r"), f, shared)
        else:
            following = number + 1
            _read_row(row, grid[number - r0], c0, c1, styles, shared, columns, cached)
        row.clear()
        while row.getprevious() is not None:
            del row.getparent()[0]
    return grid


def _row_number(r: str) -> int:
    try:
        return int(r)
    except ValueError:
        value = float(r)
        if not value.is_integer():
            raise ValueError(f"{r} is not a valid row number") from None
        return int(value)


def _read_row(row: etree._Element, out: list[Any], c0: int, c1: int, styles: Styles,
              shared: dict[str, Translator], columns: dict[str, int], cached: bool = False) -> None:
    """One row's cells into `out` (columns c0..c1); shared formulas outside the columns still register."""
    col = 0
    for c in row.iterchildren(etree.Element):
        ref = c.get("r")
        if ref:
            m = _LETTERS.match(ref)
            if m is None:
                col = coordinate_to_tuple(ref)[1]
            else:
                letters = m[1]
                col = columns.get(letters) or columns.setdefault(letters, column_index_from_string(letters))
        else:
            col += 1
        f = v = inline = None  # the first <f>, <v> and <is> child (children, not find(): a third of the time)
        for child in c:
            tag = child.tag
            if tag == _F:
                f = child if f is None else f
            elif tag == _V:
                v = (child.text or "") if v is None else v
            elif tag == _IS and inline is None:
                inline = child
        if c0 <= col <= c1:
            out[col - c0] = _formula(ref, f, shared) if f is not None and not cached else _value(c, v, inline, styles)
        elif f is not None and f.get("t") == "shared":
            _formula(ref, f, shared)


def _formula(ref: str | None, f: etree._Element, shared: dict[str, Translator]) -> str:
    """A formula cell's text, as openpyxl reads it (data_only=False) and FileBook reports it."""
    text = "=" + (f.text or "")
    kind = f.get("t")
    if kind == "shared":
        si = f.get("si")
        if si in shared:
            return shared[si].translate_formula(ref)
        if text != "=":
            shared[si] = Translator(text, ref)
    elif kind == "dataTable":
        return "=TABLE()"
    return text


def _value(c: etree._Element, value: str | None, inline: etree._Element | None, styles: Styles) -> Any:
    """A constant cell's value from its attributes, its <v> text and its <is> (inline string) element."""
    kind = c.get("t", "n")
    if kind == "inlineStr":
        return None if inline is None else Text.from_tree(inline).content
    if not value:
        return None
    if kind == "n":
        number = float(value) if "." in value or "E" in value or "e" in value else int(value)
        style = c.get("s", 0)
        if style:
            style = int(style)
        if style in styles.dates:
            try:
                return from_excel(number, styles.epoch, timedelta=style in styles.durations)
            except (OverflowError, ValueError):
                warnings.warn(f"Cell {c.get('r')} is marked as a date but the serial value {number} is outside the "
                              "limits for dates. The cell will be treated as an error.")
                return "#VALUE!"
        return number
    if kind == "s":
        return styles.strings[int(value)]
    if kind == "b":
        return bool(int(value))
    if kind == "d":
        return from_ISO8601(value)
    return value  # "str" (a formula's text result), "e" (an error), or a type openpyxl keeps as text
