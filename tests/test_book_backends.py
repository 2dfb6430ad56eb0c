"""One Book suite for every backend: the same generated workbook read as a file and in a live LibreOffice.

What the Solver compiler needs of a workbook (workbook-scoped names, array formulas and their extents,
merged areas, the used range, protection) must come out the same whichever backend reads it. The
xlwings backend has no Excel here: its share is checked against a stand-in for xlwings' objects.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula

from xlcollab.book import libreoffice
from xlcollab.book.base import Unsupported, bounds, cell_name, split_ref
from xlcollab.book.filebook import FileBook
from xlcollab.book.xlbook import XlwingsBook
from xlcollab.errors import WorkbookError

BACKENDS = ["file", pytest.param("libreoffice", marks=pytest.mark.libreoffice)]


@pytest.fixture
def structured(tmp_path: Path) -> Path:
    """Array formulas (a block and one cell), a merged area, a protected sheet, workbook- and sheet-scoped names."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "s"
    for r in range(1, 4):
        for c in range(1, 4):
            ws.cell(r, c, r * 10 + c)
    ws["E1"] = ArrayFormula("E1:G3", "=A1:C3*2")
    ws["E5"] = ArrayFormula("E5", "=SUM(A1:C1*A2:C2)")
    ws["A5"] = "=A1+A2"
    ws.merge_cells("A8:C9")
    ws["A8"] = "merged"
    ws.protection.sheet = True
    ws.defined_names["block"] = DefinedName("block", attr_text="'s'!$A$1:$C$3")
    wb.defined_names["rate"] = DefinedName("rate", attr_text="0.05")
    wb.defined_names["everything"] = DefinedName("everything", attr_text="s!$A$1:$C$3")
    wb.create_sheet("t")["B2"] = 1
    path = tmp_path / "structured.xlsx"
    wb.save(path)
    return path


@pytest.fixture(params=BACKENDS)
def open_book(request, structured: Path):
    """The structured workbook as a Book of each backend (LibreOffice started once per module)."""
    if request.param == "file":
        yield FileBook(structured)
        return
    office = request.getfixturevalue("office")
    book = office.open(structured)
    try:
        yield book
    finally:
        book.close()


def test_names_of_both_scopes(open_book) -> None:
    globals_ = open_book.global_names()
    assert set(globals_) == {"rate", "everything"} and globals_["rate"] == "0.05"
    assert split_ref(globals_["everything"]) == ("s", "A1:C3")
    assert split_ref(open_book.names("s")["block"]) == ("s", "A1:C3") and open_book.names("t") == {}


def test_structure(open_book) -> None:
    assert open_book.array_formulas("s") == {"E1": "E1:G3", "E5": "E5"} and open_book.array_formulas("t") == {}
    assert open_book.merged_cells("s") == ["A8:C9"] and open_book.merged_cells("t") == []
    assert open_book.used_range("s") == "A1:G9"  # the array's extent and the merged area count as used
    assert open_book.used_range("t") == "B2"
    assert (open_book.is_protected("s"), open_book.is_protected("t")) == (True, False)
    with pytest.raises(WorkbookError, match="no sheet named 'gone'"):
        open_book.merged_cells("gone")


def test_an_array_formula_reads_as_its_formula_at_the_anchor_only(open_book) -> None:
    anchor, *rest = open_book.read("s", "E1:G1")[0]
    assert anchor == "=A1:C3*2" and open_book.read("s", "E5") == [["=SUM(A1:C1*A2:C2)"]]
    # the other cells of the extent read as values: LibreOffice's computed ones, none in a file openpyxl wrote
    assert rest == ([None, None] if isinstance(open_book, FileBook) else [24, 26])
    assert open_book.read("s", "A5") == [["=A1+A2"]]


def test_cached_results_reach_a_file_and_a_live_application_computes_its_own(open_book, structured: Path) -> None:
    open_book.write("s", "A1", 100)
    open_book.write_cached("s", {"A5": -1.0})
    open_book.commit()
    if isinstance(open_book, FileBook):
        assert openpyxl.load_workbook(structured, data_only=True)["s"]["A5"].value == -1.0
    else:
        assert open_book.value("s", "A5") == 121 and open_book.value("s", "E1") == 200
    assert open_book.location().resolve() == structured.resolve()


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice (soffice) is not installed")
def test_a_file_libreoffice_saved_caches_every_cell_of_an_array(structured: Path, tmp_path: Path) -> None:
    book = FileBook(libreoffice.recalc([structured], tmp_path / "lo")[0])
    assert book.array_formulas("s") == {"E1": "E1:G3", "E5": "E5"}
    assert book.read("s", "E1:G2") == [["=A1:C3*2", 24, 26], [42, 44, 46]]
    assert book.merged_cells("s") == ["A8:C9"] and book.is_protected("s")


def test_a_file_has_no_active_sheet(structured: Path) -> None:
    with pytest.raises(NotImplementedError, match="FileBook cannot tell the active sheet") as err:
        FileBook(structured).active_sheet()
    assert isinstance(err.value, Unsupported) and isinstance(err.value, WorkbookError)


# -- the xlwings backend, against a stand-in for xlwings' objects ----------------------------------------
class FakeRange:
    """xlwings' Range as far as merges go: `merge_cells` is True when any of its cells is merged."""

    def __init__(self, address: str, merged: dict[str, str]) -> None:
        self.address, self.merged = address, merged  # merged: cell -> "$B$2:$C$3", its merged area
        r0, c0, r1, c1 = bounds(address)
        self.cells = [cell_name(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    merge_cells = property(lambda self: any(c in self.merged for c in self.cells))
    merge_area = property(lambda self: FakeRange(self.merged.get(self.cells[0], self.address), self.merged))

    def __iter__(self):
        return (FakeRange(c, self.merged) for c in self.cells)


class FakeSheets(list):
    def __getitem__(self, key):
        return next(s for s in self if s.name == key) if isinstance(key, str) else list.__getitem__(self, key)


def test_xlwings_backend_names_used_range_and_merges() -> None:
    merged = {c: "$B$2:$C$3" for c in ("B2", "B3", "C2", "C3")}
    sheets = FakeSheets([SimpleNamespace(name="s", names=[], used_range=FakeRange("$A$1:$D$4", merged)),
                         SimpleNamespace(name="t", names=[], used_range=FakeRange("$A$1", {}))])
    names = [SimpleNamespace(name="rate", refers_to="=0.05"), SimpleNamespace(name="s!local", refers_to="=s!$A$1")]
    book = XlwingsBook(SimpleNamespace(name="b.xlsx", fullname="/tmp/b.xlsx", sheets=sheets, names=names))
    assert book.global_names() == {"rate": "0.05"}  # a sheet-scoped name ("s!local") is not workbook-scoped
    assert book.used_range("s") == "A1:D4" and book.merged_cells("s") == ["B2:C3"] and book.merged_cells("t") == []
    assert book.location() == Path("/tmp/b.xlsx")
    for capability, call in (("list array formulas", book.array_formulas),
                             ("tell whether a sheet is protected", book.is_protected)):
        with pytest.raises(Unsupported, match=f"XlwingsBook cannot {capability}"):
            call("s")
