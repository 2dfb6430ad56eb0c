"""The LibreOffice-over-UNO Book: reads, defined names, buffered writes, recalculation, refusals."""
from __future__ import annotations

import math
import sys

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName

from xlcollab.book import libreoffice, unobook
from xlcollab.errors import WorkbookError, XlcollabError


@pytest.fixture
def small(tmp_path):
    """A two-sheet workbook with sheet-scoped names, a masked SUMXMY2-style RMSE and a text cell."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "my sheet"
    for i, (a, p) in enumerate([(3, 2.5), (None, 4), (5, 4.5), (1, 2)], start=1):
        ws.cell(i, 1, a)
        ws.cell(i, 2, p)
    ws["C1"] = "=SQRT(SUMPRODUCT((A1:A4<>\"\")*(A1:A4-B1:B4)^2)/COUNT(A1:A4))"
    ws["C2"] = "label"
    ws["C3"] = '=IF(A1="",0,A1*2)'
    ws.defined_names["actual"] = DefinedName("actual", attr_text="'my sheet'!$A$1:$A$4")
    ws.defined_names["rmse"] = DefinedName("rmse", attr_text="'my sheet'!$C$1")
    ws.defined_names["solver_typ"] = DefinedName("solver_typ", attr_text="2", hidden=True)
    other = wb.create_sheet("other")
    other["A1"] = 7
    other.defined_names["actual"] = DefinedName("actual", attr_text="other!$A$1")
    path = tmp_path / "small.xlsx"
    wb.save(path)
    return path


def _rmse(actual, predicted):
    pairs = [(a, p) for a, p in zip(actual, predicted) if a is not None]
    return math.sqrt(sum((a - p) ** 2 for a, p in pairs) / len(pairs))


@pytest.mark.libreoffice
def test_reads_values_formulas_and_sheet_scoped_names(office, small):
    book = office.open(small)
    try:
        assert book.sheet_names() == ["my sheet", "other"]
        names = book.names("my sheet")
        assert names["actual"] == "'my sheet'!$A$1:$A$4"
        assert names["rmse"] == "'my sheet'!$C$1"
        assert names["solver_typ"] == "2"
        assert book.names("other") == {"actual": "'other'!$A$1"}
        assert book.read_name("my sheet", "actual") == [[3.0], [None], [5.0], [1.0]]
        assert book.read("my sheet", "C2:C3") == [["label"], ['=IF(A1="",0,A1*2)']]
        assert book.value("my sheet", "C1") == pytest.approx(_rmse([3, None, 5, 1], [2.5, 4, 4.5, 2]), rel=1e-12)
    finally:
        book.close()


@pytest.mark.libreoffice
def test_commit_writes_then_recalculates(office, small):
    book = office.open(small)
    try:
        book.write("my sheet", "B1:B4", [[3.0], [0.0], [5.5], [1.25]])
        before = book.value("my sheet", "C1")
        assert book.read("my sheet", "B1") == [[2.5]]  # nothing visible before commit
        book.commit()
        assert book.read("my sheet", "B1:B4") == [[3.0], [0.0], [5.5], [1.25]]
        assert book.value("my sheet", "C1") == pytest.approx(_rmse([3, None, 5, 1], [3, 0, 5.5, 1.25]), rel=1e-12)
        assert book.value("my sheet", "C1") != before
        book.write("other", "A2", "text")
        book.write("other", "A1", None)
        book.commit()
        assert book.read("other", "A1:A2") == [[None], ["text"]]
    finally:
        book.close()


@pytest.mark.libreoffice
def test_refuses_formula_cells_and_writes_nothing(office, small):
    book = office.open(small)
    try:
        book.write("my sheet", "B1", 9.0)
        book.write("my sheet", "C3", 1.0)
        with pytest.raises(WorkbookError, match=r"sheet 'my sheet', cell C3: refusing to overwrite the formula =IF"):
            book.commit()
        assert book.read("my sheet", "B1") == [[2.5]]  # the good write was not applied either
        with pytest.raises(WorkbookError, match="no sheet named 'nope'"):
            book.read("nope", "A1")
        with pytest.raises(WorkbookError, match="defined name 'missing' is missing"):
            book.read_name("my sheet", "missing")
    finally:
        book.close()


@pytest.mark.libreoffice
def test_open_missing_or_garbage_file(office, tmp_path):
    with pytest.raises(WorkbookError, match="no such file"):
        office.open(tmp_path / "absent.xlsx")
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"\x00not a workbook" * 10)
    with pytest.raises(WorkbookError):
        office.open(junk)


def test_excel_formula_translation():
    assert unobook.excel_formula('=IF(A1="";0;$\'my s\'.B2)') == "=IF(A1=\"\",0,'my s'!B2)"
    assert unobook.excel_formula('=CONCAT("a;b";$Sheet1.$A$1)') == '=CONCAT("a;b",\'Sheet1\'!$A$1)'


@pytest.mark.libreoffice
def test_multi_range_names_read_as_excel_writes_them(office, tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "bias"
    adj = "'bias'!$I$24:$W$28,'bias'!$B$31:$F$45"
    ws.defined_names["solver_adj"] = DefinedName("solver_adj", attr_text=adj, hidden=True)
    path = tmp_path / "names.xlsx"
    wb.save(path)
    book = office.open(path)
    try:
        assert book.names("bias")["solver_adj"] == adj
    finally:
        book.close()


def test_missing_python_uno_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uno", None)  # `import uno` fails
    monkeypatch.setattr(unobook, "SYSTEM_DIST_PACKAGES", "/nonexistent")
    with pytest.raises(XlcollabError, match="python3-uno"):
        unobook.import_uno()
    assert not unobook.available()


def test_missing_libreoffice_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(libreoffice.shutil, "which", lambda name: None)
    monkeypatch.setattr(libreoffice, "_PLACES", ())
    monkeypatch.delenv("XLCOLLAB_SOFFICE", raising=False)
    hint = "apt-get install --no-install-recommends libreoffice-calc-nogui python3-uno"
    with pytest.raises(XlcollabError, match=hint):
        libreoffice.recalc([tmp_path / "a.xlsx"], tmp_path)
    monkeypatch.setenv("XLCOLLAB_SOFFICE", str(tmp_path / "no-soffice"))
    with pytest.raises(XlcollabError, match=r"XLCOLLAB_SOFFICE=.*no-soffice is not an executable file"):
        libreoffice.recalc([tmp_path / "a.xlsx"], tmp_path)
    try:
        unobook.import_uno()
    except XlcollabError:
        return  # the UNO half needs python3-uno
    with pytest.raises(XlcollabError, match="XLCOLLAB_SOFFICE=.*no-soffice is not an executable file"):
        unobook.Office()


@pytest.mark.libreoffice
@pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")
def test_every_start_goes_through_xlcollab_soffice(small, tmp_path, monkeypatch):
    """XLCOLLAB_SOFFICE picks the executable for the --convert-to oracle and for UNO alike."""
    log = tmp_path / "started.log"
    wrapper = tmp_path / "my-soffice"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {libreoffice.soffice_path()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("XLCOLLAB_SOFFICE", str(wrapper))
    (out,) = libreoffice.recalc([small], tmp_path / "lo")
    assert openpyxl.load_workbook(out, data_only=True)["my sheet"]["C3"].value == 6
    with unobook.Office() as mine:
        book = mine.open(small)
        assert book.value("my sheet", "C3") == 6
        book.close()
    starts = log.read_text().splitlines()
    assert len(starts) == 2 and "--convert-to" in starts[0] and "--accept=pipe" in starts[1]
    assert all("-env:UserInstallation=" in line for line in starts)

