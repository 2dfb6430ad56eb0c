"""xlwings' settings sheet (`xlwings.conf` in a workbook, `xlcollab.conf` in our add-in): key in A, value in B.

xlwings reads the keys from A1 down to the first empty cell, so the rows below the settings stay empty (`xlcollab
addin --workbook` writes the interpreter there) and a note sits after a gap.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

from xlcollab.book.ooxml import NS, R_NS


def conf_sheet_xml(settings: list[tuple[str, str | bool]], note: str, *, gap: int = 5) -> bytes:
    """The worksheet part: each (key, value) in a row from A1 (a bool as a logical cell), then `note` `gap` rows on."""
    def cell(ref: str, value: str | bool) -> str:
        if isinstance(value, bool):
            return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    rows = [f'<row r="{i}">{cell(f"A{i}", k)}{cell(f"B{i}", v)}</row>' for i, (k, v) in enumerate(settings, start=1)]
    last = len(settings) + gap
    rows.append(f'<row r="{last}">{cell(f"A{last}", note)}</row>')
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS}" xmlns:r="{R_NS}">'
            f'<sheetPr/><dimension ref="A1:B{last}"/><sheetViews><sheetView workbookViewId="0"/></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/><cols><col min="1" max="1" width="22" customWidth="1"/>'
            '<col min="2" max="2" width="22" customWidth="1"/></cols>'
            f'<sheetData>{"".join(rows)}</sheetData>'
            '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>'
            ).encode("utf-8")
