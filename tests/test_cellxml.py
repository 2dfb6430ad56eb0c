"""FileBook's cell values (one lxml pass, book/cellxml.py) are exactly what openpyxl's read-only mode reads.

The oracle is openpyxl itself, reading the same file: the bundled workbooks, a LibreOffice-saved copy (its own
writer's XML) and a sheet written by hand with what other writers produce (dates and
time spans by style, inline and rich strings, rows and cells without `r`, rows out of order, a repeated cell,
errors, booleans, a data table, a shared formula whose first cell lies outside the range read).
"""
from __future__ import annotations

import datetime
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from xlcollab.book import libreoffice
from xlcollab.book.base import bounds
from xlcollab.book.filebook import FileBook

ROOT = Path(__file__).resolve().parent.parent
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def openpyxl_values(path: Path, sheet: str, ref: str) -> list[list]:
    """The grid as FileBook read it through openpyxl's read-only mode before cellxml (formulas as "=..." text)."""
    wb = load_workbook(path, read_only=True, data_only=False, keep_links=False)
    r0, c0, r1, c1 = bounds(ref)
    width = c1 - c0 + 1

    def text(v):
        if isinstance(v, ArrayFormula):
            return v.text if v.text.startswith("=") else "=" + v.text
        return "=TABLE()" if isinstance(v, DataTableFormula) else v
    grid = [[text(v) for v in row] + [None] * (width - len(row))
            for row in wb[sheet].iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1, values_only=True)]
    wb.close()
    return grid + [[None] * width for _ in range(r1 - r0 + 1 - len(grid))]


def assert_same(path: Path, refs: dict[str, list[str]] | None = None) -> int:
    book = FileBook(path)
    cells = 0
    for sheet in book.sheet_names():
        used = book.used_range(sheet)
        _, _, r1, c1 = bounds(used)
        for ref in (refs or {}).get(sheet, []) + [used, f"A1:{_name(r1 + 3, c1 + 2)}"]:
            got, want = book.read(sheet, ref), openpyxl_values(path, sheet, ref)
            assert got == want, (path.name, sheet, ref, _first_difference(got, want))
            assert [[type(v) for v in row] for row in got] == [[type(v) for v in row] for row in want]
            cells += sum(v is not None for row in got for v in row)
    return cells


def _name(r: int, c: int) -> str:
    from openpyxl.utils import get_column_letter
    return f"{get_column_letter(c)}{r}"


def _first_difference(a: list[list], b: list[list]):
    for i, (x, y) in enumerate(zip(a, b)):
        for j, (u, v) in enumerate(zip(x, y)):
            if u != v or type(u) is not type(v):
                return i, j, u, v
    return len(a), len(b)


@pytest.mark.parametrize("name", ["collab_filter.xlsx", "graddesc.xlsm"])
def test_bundled_workbooks_read_as_openpyxl_reads_them(name: str) -> None:
    assert assert_same(ROOT / "workbooks" / name) > 1000


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice (soffice) is not installed")
def test_a_file_libreoffice_saved_reads_as_openpyxl_reads_it(tmp_path: Path) -> None:
    """LibreOffice's own writer: cached results of every formula, its styles and shared strings."""
    saved = libreoffice.recalc([ROOT / "workbooks" / "collab_filter.xlsx"], tmp_path)[0]
    assert assert_same(saved, {"dotprod": ["J31:P40", "C40:K50"], "movielens_emb": ["E100:N120"]}) > 1000


SHEET = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet {NS}><sheetData>
<row r="1"><c r="A1" s="1"><v>45000.25</v></c><c r="B1" s="2"><v>1.5</v></c><c r="C1" t="b"><v>1</v></c>
  <c r="D1" t="e"><v>#DIV/0!</v></c><c r="E1" t="s"><v>0</v></c><c r="F1" t="s"><v>1</v></c>
  <c r="G1" t="inlineStr"><is><t xml:space="preserve"> inline </t></is></c><c r="H1"><v>7</v></c>
  <c r="I1"><v>1E-3</v></c><c r="J1" t="str"><f>"a"&amp;"b"</f><v>ab</v></c><c r="K1" t="n"><v></v></c></row>
<row r="3"><c r="A3"><v>1</v></c><c r="B3"><f t="shared" ref="B3:D5" si="0">A3*2</f><v>2</v></c>
  <c r="C3"><f t="shared" si="0"/><v>4</v></c><c r="D3"><f t="shared" si="0"/></c></row>
<row><c><v>2</v></c><c><f t="shared" si="0"/></c><c r="D4"><f t="shared" si="0"/></c></row>
<row r="2"><c r="A2"><v>99</v></c></row>
<row r="6"><c r="A6"><v>3</v></c><c r="A6"><v>4</v></c><c r="B6"><f t="dataTable" ref="B6" dt2D="0" dtr="0" r1="A1"/></c>
  <c r="C6" t="d"><v>2024-02-29T12:00:00</v></c><c r="E6"><f t="array" ref="E6:F6">A1:B1*2</f><v>3</v></c></row>
</sheetData></worksheet>"""


def rewrite(base: Path, path: Path, edits: dict[str, Callable[[str], str]], added: dict[str, str]) -> Path:
    """A copy of the workbook `base` at `path`, with parts edited (part -> its text -> the new text) and added."""
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename).decode()
            dst.writestr(item, edits.get(item.filename, lambda d: d)(data).encode())
        for part, text in added.items():
            dst.writestr(part, text)
    return path


def _override(part: str) -> str:
    """A content-types entry that makes `part` the shared strings, closing the <Types> list."""
    sst = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
    return f'<Override PartName="{part}" ContentType="{sst}"/></Types>'


def test_what_other_writers_write_reads_as_openpyxl_reads_it(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "w"
    ws["A1"], ws["B1"] = datetime.datetime(2023, 3, 15, 6), datetime.timedelta(hours=36)
    ws["A1"].number_format, ws["B1"].number_format = "yyyy-mm-dd hh:mm", "[h]:mm"
    ws["E1"], ws["F1"] = "shared", "two"
    base = tmp_path / "base.xlsx"
    wb.save(base)
    path = tmp_path / "hand.xlsx"
    strings = (f'<sst {NS} count="2" uniqueCount="2"><si><t>shared</t></si>'
               '<si><r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r><rPh sb="0" eb="1"><t>x</t></rPh></si></sst>')
    rel = ('<Relationship Id="rIdS" Target="sharedStrings.xml" '
           'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>')
    rewrite(base, path, {"xl/worksheets/sheet1.xml": lambda _: SHEET,
                         "[Content_Types].xml": lambda d: d.replace("</Types>", _override("/xl/sharedStrings.xml")),
                         "xl/_rels/workbook.xml.rels": lambda d: d.replace("</Relationships>", rel + "</Relationships>")},
            {"xl/sharedStrings.xml": strings})
    book = FileBook(path)
    assert book.read("w", "A1:K1")[0][:7] == [datetime.datetime(2023, 3, 15, 6), datetime.timedelta(hours=36), True,
                                              "#DIV/0!", "shared", "rich text", " inline "]
    assert book.read("w", "B3:D3") == [["=A3*2", "=B3*2", "=C3*2"]] and book.read("w", "D4") == [["=C4*2"]]
    assert assert_same(path, {"w": ["C4:D6", "A3:A6", "B6:F6", "D1:K2"]}) > 20


def openpyxl_styles(path: Path) -> tuple[list[str], set[int], set[int], object]:
    """What FileBook took from openpyxl's read-only load before `read_styles`: strings, date and time-span styles,
    epoch."""
    wb = load_workbook(path, read_only=True, data_only=False, keep_links=False)
    try:
        return list(wb[wb.sheetnames[0]]._shared_strings), set(wb._date_formats), set(wb._timedelta_formats), wb.epoch
    finally:
        wb.close()


def ours(path: Path) -> tuple[list[str], set[int], set[int], object]:
    from xlcollab.book.cellxml import read_styles
    from xlcollab.book.ooxml import Package

    with Package(path) as pkg:
        s, _ = read_styles(pkg, path=str(path))
    return s.strings, s.dates, s.durations, s.epoch


STRINGS = (f'<sst {NS}><si><t>plain</t></si><si><t/></si><si><t xml:space="preserve">  spaced  </t></si>'
           '<si><t>a_x005F_x000D_b</t></si><si><r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r>'
           '<rPh sb="0" eb="1"><t>phonetic</t></rPh></si><si><t>lead</t><r><t> run</t></r></si><si></si>'
           '<si><r><t/></r><r><t>x</t></r></si></sst>')
STYLES = (f'<styleSheet {NS}><numFmts><numFmt numFmtId="14" formatCode="0.00"/>'  # a builtin date id redefined
          '<numFmt numFmtId="164" formatCode="&quot;day&quot; 0"/><numFmt numFmtId="165" formatCode="[Red]0.0"/>'
          '<numFmt numFmtId="166" formatCode="[h]:mm:ss"/><numFmt numFmtId="167" formatCode="yyyy\\-mm"/>'
          '<numFmt numFmtId="168" formatCode="0;[Red]dd"/></numFmts><fonts count="1"><font/></fonts>'
          '<fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders>'
          '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
          '<cellXfs>' + "".join(f'<xf numFmtId="{n}" fontId="0" fillId="0" borderId="0" xfId="0"/>'
                                for n in (0, 14, 164, 165, 166, 167, 168, 22, 46, 49, 200)) +
          '<xf fontId="0"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
          '</cellStyles></styleSheet>')


@pytest.mark.parametrize("date1904", [None, "1", "false", "true"])
def test_strings_dates_and_epoch_read_as_openpyxl_reads_them(tmp_path: Path, date1904: str | None) -> None:
    """`read_styles` (an lxml pass over the strings, styles.xml and workbookPr) equals openpyxl's loader: rich
    and phonetic runs, empty strings, the _x005F escape, custom formats over builtin ids, quoted and bracketed
    parts of formats, time spans, the 1904 epoch; and the bundled workbooks."""
    base = tmp_path / "base.xlsx"
    Workbook().save(base)
    path = tmp_path / "styled.xlsx"
    edits = {"xl/styles.xml": lambda _: STYLES,
             "[Content_Types].xml": lambda d: d.replace("</Types>", _override("/xl/strings.xml"))}
    if date1904 is not None:
        edits["xl/workbook.xml"] = lambda d: d.replace("<workbookPr/>", f'<workbookPr date1904="{date1904}"/>')
    rewrite(base, path, edits, {"xl/strings.xml": STRINGS})
    want = openpyxl_styles(path)
    assert ours(path) == want
    assert len(want[0]) == 8 and want[1] and want[2]
    if date1904 is None:
        for name in ("collab_filter.xlsx", "graddesc.xlsm"):
            assert ours(ROOT / "workbooks" / name) == openpyxl_styles(ROOT / "workbooks" / name)
