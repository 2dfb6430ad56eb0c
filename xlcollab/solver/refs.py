"""Cell and range references: (sheet, row, col) cells, A1 text with `$` flags, sheet names that need quotes.

Everything in the compiler names cells as `Cell = (sheet, row, col)`, 1-based; this module turns A1 text
("'Odd (1)+2'!$B$3:C4", "A:A", "3:3") into coordinates and back, for formulas and for error messages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from openpyxl.utils.cell import column_index_from_string, get_column_letter

from xlcollab.errors import WorkbookError

Cell = tuple[str, int, int]

MAX_ROW, MAX_COL = 1_048_576, 16_384

_CORNER = re.compile(r"^(\$?)([A-Za-z]{1,3})?(\$?)(\d+)?$")
# a letter, _ or any character from U+00A1 to U+FFFF, then those, digits or dots. Spelled as "not below U+00A1 and
# not above U+FFFF": the same set, but \u00a1-\uffff beside \w costs re 5 ms to compile, in every process
_BMP_FROM_A1 = r"[^\x00-\xa0\U00010000-\U0010ffff]"
_PLAIN_SHEET = re.compile(rf"^(?:[A-Za-z_]|{_BMP_FROM_A1})(?:[\w.]|{_BMP_FROM_A1})*$")
_CELLISH = re.compile(r"^[A-Za-z]{1,3}\d+$|^[RrCc]$")


@dataclass(frozen=True)
class Corner:
    """One end of an A1 reference: row/col (None for a whole column/row) and whether each is `$`-absolute."""
    row: int | None
    col: int | None
    row_abs: bool
    col_abs: bool


def quote_sheet(sheet: str) -> str:
    """The sheet name as a formula writes it: "dotprod", "'Odd (1)+2'", "'it''s'"."""
    if _PLAIN_SHEET.match(sheet) and not _CELLISH.match(sheet):
        return sheet
    return "'" + sheet.replace("'", "''") + "'"


def cell_label(cell: Cell) -> str:
    """"'my sheet'!B3" for ("my sheet", 3, 2): how messages name a cell."""
    sheet, row, col = cell
    return f"{quote_sheet(sheet)}!{get_column_letter(col)}{row}"


def a1(row: int, col: int) -> str:
    return f"{get_column_letter(col)}{row}"


def split_sheet(text: str) -> tuple[str | None, str]:
    """("Odd (1)+2", "A1:B3") for "'Odd (1)+2'!A1:B3"; the sheet is None when the text names none."""
    if text.startswith("'"):
        i = 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1:i + 2] != "'":
                    break
                i += 1
            i += 1
        if text[i + 1:i + 2] != "!":
            raise ValueError(f"unterminated sheet name in {text!r}")
        return text[1:i].replace("''", "'"), text[i + 2:]
    if "!" in text:
        sheet, _, rest = text.rpartition("!")
        return sheet, rest
    return None, text


def parse_corner(text: str) -> Corner | None:
    """"$B3" -> Corner(3, 2, False, True); "B" (a column) and "3" (a row) leave the other part None."""
    m = _CORNER.match(text)
    if not m or (m[2] is None and m[4] is None):
        return None
    col = column_index_from_string(m[2].upper()) if m[2] else None
    row = int(m[4]) if m[4] else None
    if (col is not None and col > MAX_COL) or (row is not None and not 1 <= row <= MAX_ROW):
        return None
    return Corner(row, col, bool(m[3]) if m[2] else bool(m[1]), bool(m[1]) if m[2] else False)


def parse_area(text: str) -> tuple[str | None, Corner, Corner] | None:
    """Sheet and both corners of "Sheet!$A$1:B3", "A:A" (whole column) or "3:3" (whole row); None if not a range."""
    sheet, body = split_sheet(text)
    first, sep, last = body.partition(":")
    a = parse_corner(first)
    b = parse_corner(last) if sep else a
    if a is None or b is None or (a.row is None) != (b.row is None) or (a.col is None) != (b.col is None):
        return None
    if not sep and (a.row is None or a.col is None):
        return None  # "A" or "3" alone is a name, not a reference
    return sheet, a, b


def parse_cells(text: str, default_sheet: str) -> list[Cell]:
    """Every cell of "'s'!$A$1:$B$2,'s'!$D$1" (comma-separated areas), row by row, in the order written."""
    cells: list[Cell] = []
    for part in split_areas(text.strip().lstrip("=")):
        area = parse_area(part.strip())
        if area is None or area[1].row is None or area[1].col is None:
            raise WorkbookError(f"not a cell range: {part!r}", sheet=default_sheet)
        sheet, a, b = area
        rows = range(min(a.row, b.row), max(a.row, b.row) + 1)
        cols = range(min(a.col, b.col), max(a.col, b.col) + 1)
        cells += [(sheet or default_sheet, r, c) for r in rows for c in cols]
    return cells


def split_areas(text: str) -> list[str]:
    """"'a,b'!A1,B2:C3" -> ["'a,b'!A1", "B2:C3"]: commas outside quoted sheet names separate areas."""
    parts, depth, start = [], False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            depth = not depth
        elif ch == "," and not depth:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]
