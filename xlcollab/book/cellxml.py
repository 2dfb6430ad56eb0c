"""A worksheet's cell values by one streaming lxml pass: what openpyxl's read-only mode gives, without its
per-cell objects (a 10,000-row sheet read in a fraction of the time).

The values are openpyxl's, rule for rule (`openpyxl.worksheet._reader.WorkSheetParser.parse_cell` and
`ReadOnlyWorksheet._cells_by_row`, openpyxl 3.1): numbers as int or float, dates where the cell's style is a
date format, shared and inline strings, TRUE/FALSE as bools, errors as their text, a formula as its text
"=..." (a shared formula translated from its first cell, an array formula's text at its anchor, a data table
as "=TABLE()"); rows without an `r` count on from the last, rows out of order are skipped, a cell repeated in
its row takes the last value. The sheet has been checked whole before (`sheetxml.read_sheet_facts`), so the
pass stops after the last row asked for.
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
from openpyxl.utils.datetime import from_excel, from_ISO8601

from xlcollab.book.ooxml import NS, iterparse_xml, q

_ROW, _F, _V, _IS = q("row"), q("f"), q("v"), q("is")
_LETTERS = re.compile(r"([A-Z]{1,3})\d+$")
_SHARED_MASTERS = etree.XPath("m:c/m:f[@t='shared'][text()]", namespaces={"m": NS})


@dataclass
class Styles:
    """What reading values needs of the workbook: its shared strings, the styles that are dates, the epoch."""
    strings: list[str]
    dates: set[int] = field(default_factory=set)
    durations: set[int] = field(default_factory=set)  # date styles that are time spans ([h]:mm)
    epoch: Any = None


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
