"""The one package layer: workbook.xml's map, sheet XML patching, the atomic writer, grafting a sheet."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from openpyxl import Workbook, load_workbook
from openpyxl.chart import Reference
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula

from xlcollab.book import ooxml
from xlcollab.book.graft import graft_sheet
from xlcollab.book.ooxml import FIXED_TIME, Package, ask_full_recalc
from xlcollab.book.sheetxml import patch_sheet_xml, read_sheet_facts
from xlcollab.book.spec import Chart, SheetSpec
from xlcollab.errors import WorkbookError
from xlcollab.sheets.common import xy_chart


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def build(path: Path, *, chartsheet: bool = False) -> Path:
    """Two worksheets (an array formula, a merged area, a chart, a protected sheet), optionally a chart sheet."""
    wb = Workbook()
    ws = wb.active
    ws.title = "data"
    for i in range(1, 6):
        ws.cell(i, 1, float(i))
        ws.cell(i, 2, f"=A{i}*2")
    ws["E1"] = ArrayFormula("E1:E5", "=A1:A5*10")
    ws.merge_cells("G1:H2")
    ws.defined_names["xs"] = DefinedName("xs", attr_text="data!$A$1:$A$5")
    xy_chart(ws, "J2", title="doubled", x_title="i", y_title="2x",
             series=[("2x", Reference(ws, min_col=1, min_row=1, max_row=5), Reference(ws, min_col=2, min_row=1, max_row=5))])
    if chartsheet:  # openpyxl writes it but cannot read it back: only the package layer reads this one
        wb.create_chartsheet("plot")
    other = wb.create_sheet("other sheet")
    other["A1"] = "text"
    other.protection.sheet = True
    wb.defined_names["rate"] = DefinedName("rate", attr_text="0.05")
    wb.save(path)
    return path


@pytest.fixture
def book_path(tmp_path: Path) -> Path:
    return build(tmp_path / "book.xlsx")


def test_workbook_map_names_every_sheet_part_and_name(tmp_path: Path) -> None:
    with Package(build(tmp_path / "charts.xlsx", chartsheet=True)) as pkg:
        book = pkg.workbook()
    assert book.order == ["data", "plot", "other sheet"]
    assert book.worksheets() == ["data", "other sheet"]  # the chart sheet holds no cells
    assert book.parts["data"] == "xl/worksheets/sheet1.xml" and book.parts["plot"].startswith("xl/chartsheets/")
    assert book.local_names == {"data": {"xs": "data!$A$1:$A$5"}, "plot": {}, "other sheet": {}}
    assert book.global_names == {"rate": "0.05"}
    assert ooxml.resolve("xl/workbook.xml", "/xl/worksheets/sheet9.xml") == "xl/worksheets/sheet9.xml"
    assert ooxml.resolve("xl/drawings/drawing1.xml", "../charts/chart2.xml") == "xl/charts/chart2.xml"


def test_save_streams_untouched_parts_and_keeps_their_entries(book_path: Path, tmp_path: Path, monkeypatch) -> None:
    stored = tmp_path / "stored.xlsx"  # one STORED entry with its own date: both must survive a save
    with zipfile.ZipFile(book_path) as src, zipfile.ZipFile(stored, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        dst.writestr(zipfile.ZipInfo("custom/blob.bin", date_time=(2001, 2, 3, 4, 5, 6)), os.urandom(5000))
    before = parts(stored)
    with zipfile.ZipFile(stored) as zf:
        entries = {i.filename: (i.date_time, i.compress_type, i.external_attr) for i in zf.infolist()}
    monkeypatch.setattr(zipfile.ZipFile, "read", _refuse_whole_reads(zipfile.ZipFile.read, allow={"xl/workbook.xml"}))
    with Package(stored) as pkg:
        pkg.set("xl/workbook.xml", pkg.read("xl/workbook.xml").replace(b"<workbookPr/>", b"<workbookPr codeName='x'/>"))
        pkg.set("new/part.txt", b"hello")
        pkg.drop("docProps/app.xml")
        pkg.save(stored)
    monkeypatch.undo()
    after = parts(stored)
    assert set(after) == set(before) - {"docProps/app.xml"} | {"new/part.txt"}
    assert {n for n in before if n in after and before[n] != after[n]} == {"xl/workbook.xml"}
    assert after["new/part.txt"] == b"hello"
    with zipfile.ZipFile(stored) as zf:
        kept = {i.filename: (i.date_time, i.compress_type, i.external_attr) for i in zf.infolist()}
        assert [i.filename for i in zf.infolist()][-1] == "new/part.txt"
    assert all(kept[n] == entries[n] for n in kept if n != "new/part.txt")
    assert kept["custom/blob.bin"][:2] == ((2001, 2, 3, 4, 5, 6), zipfile.ZIP_STORED)


def _refuse_whole_reads(read, allow):
    def guarded(self, name, pwd=None):
        if getattr(name, "filename", name) not in allow:
            raise AssertionError(f"{name} was read whole instead of streamed")
        return read(self, name, pwd)
    return guarded


def test_save_is_atomic_and_leaves_nothing_behind_on_failure(book_path: Path, monkeypatch) -> None:
    before = book_path.read_bytes()
    with Package(book_path) as pkg:
        pkg.set("xl/workbook.xml", b"changed")
        monkeypatch.setattr(Package, "read", lambda self, part: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(WorkbookError, match=r"cannot write it \(disk full\); the file is unchanged"):
            pkg.save(book_path)
    assert book_path.read_bytes() == before
    assert sorted(p.name for p in book_path.parent.iterdir()) == ["book.xlsx"]


def test_reproducible_save_gives_the_same_bytes(book_path: Path, tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        with Package(book_path) as pkg:
            pkg.set("extra.txt", b"same")
            outs.append(pkg.save(tmp_path / f"r{i}.xlsx", reproducible=True))
        os.utime(book_path, (i * 1000, i * 1000))
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with zipfile.ZipFile(outs[0]) as zf:
        assert {(i.date_time, i.compress_type, i.external_attr >> 16) for i in zf.infolist()} == {
            (FIXED_TIME, zipfile.ZIP_DEFLATED, 0o644)}
    assert outs[0].stat().st_mode & 0o777 == 0o644


def test_corrupt_part_names_the_file(book_path: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbookError, match="absent.xlsx: cannot read the workbook: no such file"):
        Package(tmp_path / "absent.xlsx")
    with Package(book_path) as pkg:
        pkg.set("xl/workbook.xml", b"<not xml")
        with pytest.raises(WorkbookError, match=r"book.xlsx: corrupt workbook: xl/workbook.xml is not well-formed XML"):
            pkg.workbook()
        with pytest.raises(WorkbookError, match="the part xl/nothing.xml is missing"):
            pkg.read("xl/nothing.xml")


def _sheet(book_path: Path) -> bytes:
    with zipfile.ZipFile(book_path) as zf:
        return zf.read("xl/worksheets/sheet1.xml")


def _cells(xml: bytes) -> dict[str, etree._Element]:
    return {c.get("r"): c for c in etree.fromstring(xml).iter(ooxml.q("c"))}


def test_patch_sets_values_and_typed_cached_results(book_path: Path) -> None:
    xml = patch_sheet_xml(_sheet(book_path), {"A1": 7, "C9": "note", "D9": True},
                          cached={"B1": 14.5, "B2": "text", "B3": True, "B4": "#DIV/0!", "E3": 30.0},
                          sheet="data", path="book.xlsx")
    c = _cells(xml)
    v = lambda ref: c[ref].findtext(ooxml.q("v"))  # noqa: E731
    assert (v("A1"), c["A1"].get("t")) == ("7", None)
    assert c["C9"].get("t") == "inlineStr" and c["D9"].get("t") == "b"
    assert [(v(r), c[r].get("t")) for r in ("B1", "B2", "B3", "B4")] == [("14.5", None), ("text", "str"), ("1", "b"),
                                                                         ("#DIV/0!", "e")]
    assert all(c[r].find(ooxml.q("f")) is not None for r in ("B1", "B2", "B3", "B4"))  # formulas kept
    assert c["B5"].find(ooxml.q("v")) is None and c["B5"].findtext(ooxml.q("f")) == "A5*2"  # no result given: stale one dropped
    assert v("E3") == "30.0" and c["E3"].find(ooxml.q("f")) is None  # inside the array's extent
    assert etree.fromstring(xml).find(ooxml.q("dimension")).get("ref") == "A1:H9"


@pytest.mark.parametrize("writes, cached, message", [
    ({"B1": 1.0}, {}, "cell B1: holds a formula"),
    ({}, {"A1": 1.0}, "cell A1: holds no formula"),
    ({}, {"F1": 1.0}, "cell F1: holds no formula"),
])
def test_patch_refuses_the_wrong_cells(book_path: Path, writes, cached, message) -> None:
    with pytest.raises(WorkbookError, match=message):
        patch_sheet_xml(_sheet(book_path), writes, cached=cached, sheet="data", path="book.xlsx")


def test_sheet_facts(book_path: Path) -> None:
    facts = read_sheet_facts(io.BytesIO(_sheet(book_path)))
    assert facts.arrays == {"E1": "E1:E5"} and facts.merged == ["G1:H2"] and not facts.protected
    assert facts.used_range() == "A1:H5"
    with zipfile.ZipFile(book_path) as zf:
        other = read_sheet_facts(io.BytesIO(zf.read("xl/worksheets/sheet2.xml")))
    assert other.protected and other.used_range() == "A1"
    bare = read_sheet_facts(io.BytesIO(b'<worksheet xmlns="%s"><sheetData><row r="3"><c r="C3"><v>1</v></c>'
                                       b'<c r="F4"/></row></sheetData></worksheet>' % ooxml.NS.encode()))
    assert bare.dimension is None and bare.used_range() == "C3:F4"


def test_full_recalc_flag_is_added_once(book_path: Path) -> None:
    xml = parts(book_path)["xl/workbook.xml"]
    flagged = ask_full_recalc(xml)
    assert etree.fromstring(flagged).find(ooxml.q("calcPr")).get("fullCalcOnLoad") == "1"
    assert ask_full_recalc(flagged) is flagged


SPEC = SheetSpec("results", [["epoch", "loss"], [1, 0.5], [2, 0.25], [3, 0.125]],
                 [Chart("line", "loss by epoch", "epoch", "loss", "A2:A4", [("loss", "B2:B4")], "D2")], {"A": 12})


def test_graft_adds_a_sheet_with_its_chart_and_replaces_it_cleanly(book_path: Path) -> None:
    before = parts(book_path)
    for _ in range(2):  # the second graft replaces the first: no duplicate, no orphan parts
        with Package(book_path) as pkg:
            graft_sheet(pkg, SPEC)
            pkg.save(book_path)
    after = parts(book_path)
    wb = load_workbook(book_path)
    assert wb.sheetnames == ["data", "other sheet", "results"]
    assert [[c.value for c in row] for row in wb["results"].iter_rows()] == SPEC.cells
    assert len(wb["results"]._charts) == 1 and wb["results"].column_dimensions["A"].width == 12
    changed = {n for n in before if before[n] != after.get(n)}
    assert changed == {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml"}
    added = set(after) - set(before)
    assert len([p for p in added if p.startswith("xl/charts/chart")]) == 1
    assert len([p for p in added if p.startswith("xl/worksheets/sheet")]) == 1
    with Package(book_path) as pkg:
        pkg.workbook()  # still a consistent package
        types = pkg.read("[Content_Types].xml").decode()
    assert all(f'PartName="/{p}"' in types for p in added if p.endswith(".xml") and "_rels" not in p)


def test_graft_refuses_to_replace_a_sheet_that_is_not_last(book_path: Path) -> None:
    before = book_path.read_bytes()
    with Package(book_path) as pkg, pytest.raises(WorkbookError, match="has a sheet 'data' that is not the last one"):
        graft_sheet(pkg, SheetSpec("data", [[1]]))
    assert book_path.read_bytes() == before
