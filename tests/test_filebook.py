"""FileBook: reads named blocks, commits only the written cells, atomically, and refuses bad files."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.chart import Reference

from helpers import sha
from xlcollab.book import libreoffice
from xlcollab.book.filebook import FileBook
from xlcollab.book.ooxml import Package
from xlcollab.book.spec import Chart, SheetSpec
from xlcollab.errors import WorkbookError
from xlcollab.sheets.common import define_block, force_full_recalc, store_solver_model, target, xy_chart


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture
def book_path(tmp_path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "my sheet"
    for i in range(1, 6):
        ws.cell(i, 1, float(i))
        ws.cell(i, 2, f"=A{i}*2")
    ws["C1"] = "=SUM(B1:B5)"
    define_block(ws, "xs", 1, 1, 5, 1, style="param")
    define_block(ws, "total", 1, 3)
    store_solver_model(ws, target(ws, 1, 3), [target(ws, 1, 1, 5, 1)])
    xy_chart(ws, "E2", title="doubled", x_title="i", y_title="2x",
             series=[("2x", Reference(ws, min_col=1, min_row=1, max_row=5), Reference(ws, min_col=2, min_row=1, max_row=5))])
    other = wb.create_sheet("other")
    other["A1"] = "keep me"
    other["B1"] = "='my sheet'!C1"
    force_full_recalc(wb)
    path = tmp_path / "book.xlsx"
    wb.save(path)
    return path


def test_reads_names_blocks_and_formulas(book_path: Path) -> None:
    book = FileBook(book_path)
    assert book.sheet_names() == ["my sheet", "other"]
    names = book.names("my sheet")
    assert names["xs"] == "'my sheet'!$A$1:$A$5"
    assert names["solver_opt"] == "'my sheet'!$C$1" and names["solver_typ"] == "2"
    assert book.read_name("my sheet", "xs") == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    assert book.read("my sheet", "B1:C1") == [["=A1*2", "=SUM(B1:B5)"]]


def test_commit_changes_only_written_cells_and_keeps_other_parts(book_path: Path, tmp_path: Path) -> None:
    before = parts(book_path)
    book = FileBook(book_path)
    book.write_name("my sheet", "xs", [[10], [20], [30], [40], [50]])
    book.write("my sheet", "H20", [["note", 1.5]])
    assert load_workbook(book_path)["my sheet"]["A1"].value == 1  # nothing visible before commit
    book.commit()
    after = parts(book_path)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed <= {"xl/worksheets/sheet1.xml", "xl/workbook.xml"}
    assert set(after) == set(before)
    old, new = load_workbook(shutil.copy(book_path, tmp_path / "x.xlsx")), None
    new = load_workbook(book_path)
    ws = new["my sheet"]
    assert [ws.cell(i, 1).value for i in range(1, 6)] == [10, 20, 30, 40, 50]
    assert [ws.cell(i, 2).value for i in range(1, 6)] == [f"=A{i}*2" for i in range(1, 6)]
    assert ws["H20"].value == "note" and ws["I20"].value == 1.5
    assert ws["A1"].fill.fgColor.rgb.endswith("DDEBF7")  # the parameter style survives the write
    assert new["other"]["A1"].value == "keep me"
    assert {n: d.attr_text for n, d in ws.defined_names.items()} == {n: d.attr_text for n, d in old["my sheet"].defined_names.items()}


def test_out_leaves_the_original_untouched(book_path: Path, tmp_path: Path) -> None:
    digest = sha(book_path)
    out = tmp_path / "solved.xlsx"
    book = FileBook(book_path, out=out)
    book.write("my sheet", "A1", 7)
    book.commit()
    assert sha(book_path) == digest
    assert load_workbook(out)["my sheet"]["A1"].value == 7


def test_floats_round_trip_exactly(book_path: Path) -> None:
    values = [[0.1 + 0.2], [1 / 3], [-1e-300], [123456789.123456789], [2.0**-52]]
    book = FileBook(book_path)
    book.write_name("my sheet", "xs", values)
    book.commit()
    assert FileBook(book_path).read_name("my sheet", "xs") == values


@pytest.mark.parametrize("case", ["formula", "nan", "shape", "missing name", "missing sheet"])
def test_bad_writes_raise_and_write_nothing(book_path: Path, case: str) -> None:
    digest = sha(book_path)
    book = FileBook(book_path)
    with pytest.raises(WorkbookError) as err:
        if case == "formula":
            book.write("my sheet", "B2", 3.0)
        elif case == "nan":
            book.write("my sheet", "A1", float("nan"))
        elif case == "shape":
            book.write_name("my sheet", "xs", [[1, 2]])
        elif case == "missing name":
            book.read_name("my sheet", "factors")
        else:
            book.read("gone", "A1")
        book.commit()
    message = str(err.value)
    assert "book.xlsx" in message or "'my sheet'" in message
    expected = {"formula": "cell B2", "nan": "nan", "shape": "A1:A5", "missing name": "'factors'", "missing sheet": "'gone'"}[case]
    assert expected in message
    assert sha(book_path) == digest


def test_refuses_read_only_and_locked_files(book_path: Path) -> None:
    digest = sha(book_path)
    os.chmod(book_path, 0o444)
    book = FileBook(book_path)
    book.write("my sheet", "A1", 2.0)
    with pytest.raises(WorkbookError, match="read-only"):
        book.commit()
    os.chmod(book_path, 0o644)
    lock = book_path.with_name("~$" + book_path.name)
    lock.write_bytes(b"owner")
    book.write("my sheet", "A1", 2.0)
    with pytest.raises(WorkbookError, match=r"open in another application \(lock file ~\$book.xlsx\)"):
        book.commit()
    assert sha(book_path) == digest


@pytest.mark.parametrize("damage", ["missing", "text", "truncated", "zip without workbook"])
def test_refuses_files_that_are_not_workbooks(book_path: Path, tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.xlsx"
    if damage == "text":
        bad.write_text("userId,movieId,rating\n1,2,3\n")
    elif damage == "truncated":
        bad.write_bytes(book_path.read_bytes()[: book_path.stat().st_size // 2])
    elif damage == "zip without workbook":
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("hello.txt", "hi")
    with pytest.raises(WorkbookError, match="bad.xlsx") as err:
        FileBook(bad)
    assert {"missing": "no such file", "text": "not an Excel workbook", "truncated": "not an Excel workbook",
            "zip without workbook": "without xl/workbook.xml"}[damage] in str(err.value)


def test_unknown_parts_such_as_vba_survive_byte_for_byte(book_path: Path, tmp_path: Path) -> None:
    xlsm = tmp_path / "book.xlsm"
    with zipfile.ZipFile(book_path) as src, zipfile.ZipFile(xlsm, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        dst.writestr("xl/vbaProject.bin", bytes(range(256)) * 8)
    book = FileBook(xlsm)
    book.write("my sheet", "A2", 9.0)
    book.commit()
    assert parts(xlsm)["xl/vbaProject.bin"] == bytes(range(256)) * 8


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_recalculates_from_the_written_cells(book_path: Path, tmp_path: Path) -> None:
    first = libreoffice.recalc([book_path], tmp_path / "first")[0]
    assert load_workbook(first, data_only=True)["my sheet"]["C1"].value == 30
    book = FileBook(first)  # a file LibreOffice saved, with cached values and shared formulas
    book.write_name("my sheet", "xs", [[1.5], [2.5], [3.5], [4.5], [5.5]])
    book.commit()
    again = libreoffice.recalc([first], tmp_path / "again")[0]
    wb = load_workbook(again, data_only=True)
    assert wb["my sheet"]["C1"].value == pytest.approx(35.0, rel=1e-12)
    assert wb["other"]["B1"].value == pytest.approx(35.0, rel=1e-12)


# -- writing cached results, whole sheets, and what is read from the file ---------------------------------
def test_cached_results_are_written_beside_their_formulas(book_path: Path) -> None:
    book = FileBook(book_path)
    book.write_name("my sheet", "xs", [[2], [4], [6], [8], [10]])
    book.write_cached("my sheet", {"B1": 4, "B2": 8.5, "C1": "#DIV/0!"})
    book.write_cached("other", {"B1": "total"})
    book.commit()
    cached = load_workbook(book_path, data_only=True)
    assert [cached["my sheet"].cell(i, 2).value for i in range(1, 6)] == [4, 8.5, None, None, None]
    assert cached["my sheet"]["C1"].value == "#DIV/0!" and cached["other"]["B1"].value == "total"
    formulas = load_workbook(book_path)
    assert formulas["my sheet"]["B1"].value == "=A1*2" and formulas["other"]["B1"].value == "='my sheet'!C1"
    assert formulas.calculation.fullCalcOnLoad  # Excel and LibreOffice still recompute on open


def test_a_cached_result_for_a_cell_without_formula_writes_nothing(book_path: Path) -> None:
    digest = sha(book_path)
    book = FileBook(book_path)
    book.write("my sheet", "A1", 3.0)
    book.write_cached("my sheet", {"A2": 1.0})
    with pytest.raises(WorkbookError, match="sheet 'my sheet', cell A2: holds no formula"):
        book.commit()
    assert sha(book_path) == digest and book.pending() == {}


SPEC = SheetSpec("results", [["epoch", "loss"], [1, 0.5], [2, 0.25]],
                 [Chart("line", "loss by epoch", "epoch", "loss", "A2:A3", [("loss", "B2:B3")], "D2")])


def test_put_sheet_commits_the_writes_and_grafts_in_one_replace(book_path: Path, monkeypatch) -> None:
    before = parts(book_path)
    saves = []
    save = Package.save
    monkeypatch.setattr(Package, "save", lambda self, target, **kw: saves.append(target) or save(self, target, **kw))
    book = FileBook(book_path)
    book.write("my sheet", "A1", 100.0)
    book.put_sheet(SPEC)
    assert saves == [book_path] and book.pending() == {}
    assert book.sheet_names() == ["my sheet", "other", "results"]  # the cached sheet list was dropped
    assert book.read("results", "A1:B3") == SPEC.cells and book.read("my sheet", "A1") == [[100]]
    after = parts(book_path)
    assert {n for n in before if before[n] != after.get(n)} == {
        "xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml"}
    book.put_sheet(SheetSpec("results", [["again"]]))  # replaced, not duplicated
    assert FileBook(book_path).sheet_names() == ["my sheet", "other", "results"]
    assert FileBook(book_path).read("results", "A1:A2") == [["again"], [None]]


def test_after_a_commit_to_out_the_book_is_out(book_path: Path, tmp_path: Path) -> None:
    digest, out = sha(book_path), tmp_path / "out.xlsx"
    book = FileBook(book_path, out=out)
    book.write("my sheet", "A1", 7)
    book.commit()
    book.write("my sheet", "A2", 8)
    book.put_sheet(SPEC)
    assert sha(book_path) == digest
    again = FileBook(out)
    assert again.read("my sheet", "A1:A2") == [[7], [8]] and again.sheet_names()[-1] == "results"


def test_names_and_sheets_are_read_once_per_change(book_path: Path, monkeypatch) -> None:
    book = FileBook(book_path)
    calls = {"_sheet_names": 0, "_names": 0}
    for hook in calls:
        original = getattr(book, hook)
        monkeypatch.setattr(book, hook, lambda *a, _o=original, _h=hook: calls.__setitem__(_h, calls[_h] + 1) or _o(*a))
    for _ in range(3):
        book.read_name("my sheet", "xs")
        book.ref_of("my sheet", "total")
    assert calls == {"_sheet_names": 1, "_names": 1}
    book.write("my sheet", "A1", 1.0)
    book.commit()
    book.read_name("my sheet", "xs")
    assert calls == {"_sheet_names": 2, "_names": 2}


def test_one_sheet_check_per_book_operation_in_a_solve(tmp_path: Path, monkeypatch) -> None:
    """`solve --sheet dotprod` made 26 sheet checks for 7 data operations: now each Book call checks once."""
    from xlcollab.book.base import Book
    from xlcollab.cli import main
    from xlcollab.sheets import collab

    path = collab.build_workbook(tmp_path / "collab_filter.xlsx")
    counts = {"checks": 0, "operations": 0, "data": 0, "backend": 0}
    depth = [0]

    def counted(name, method):
        def wrapper(self, *args, **kwargs):
            if depth[0] == 0:
                counts["operations"] += 1
                counts["data"] += name in ("read", "read_name", "write", "write_name")
            counts["checks"] += name == "require_sheet"
            depth[0] += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        return wrapper

    public = ["require_sheet", "names", "read", "ref_of", "read_name", "write", "write_name", "write_cached",
              "array_formulas", "merged_cells", "used_range", "is_protected"]
    for name in public:
        monkeypatch.setattr(Book, name, counted(name, getattr(Book, name)))
    for hook in ("_sheet_names", "_names"):
        original = getattr(FileBook, hook)
        monkeypatch.setattr(FileBook, hook, lambda self, *a, _o=original: counts.__setitem__("backend", counts["backend"] + 1) or _o(self, *a))
    assert main(["solve", str(path), "--sheet", "dotprod", "--epochs", "2", "--out", str(tmp_path / "o.xlsx")]) == 0
    assert counts["data"] >= 7
    assert counts["checks"] == counts["operations"]  # no Book call checks the sheet twice
    assert counts["backend"] == 2  # the sheet list and dotprod's names, each asked of the file once
