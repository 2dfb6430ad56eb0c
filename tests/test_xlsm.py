"""The macro-enabled workbooks: VBA source read back by oletools, buttons bound in LibreOffice, parts preserved."""
from __future__ import annotations

import random
import re
import sys
import zipfile
from types import SimpleNamespace

import openpyxl
import pytest

from xlcollab.book import unobook
from xlcollab.excel import xlsm
from xlcollab.errors import WorkbookError, XlcollabError
from xlcollab.sheets import collab, graddesc

olevba = pytest.importorskip("oletools.olevba")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{kind: (xlsx, xlsm)} for both bundled workbooks."""
    root = tmp_path_factory.mktemp("xlsm")
    out = {}
    for kind, module, stem in (("collab", collab, "collab_filter"), ("graddesc", graddesc, "graddesc")):
        xlsx = module.build_workbook(root / f"{stem}.xlsx")
        out[kind] = (xlsx, xlsm.make_xlsm(xlsx, root / f"{stem}.xlsm", kind))
    return out


def _macros(path):
    parser = olevba.VBA_Parser(str(path))
    try:
        return {name: code for _, stream, name, code in parser.extract_macros()}
    finally:
        parser.close()


def _cells(ws):
    """Every cell's value, array formulas as (ref, text)."""
    return [[(c.value.ref, c.value.text) if hasattr(c.value, "text") else c.value for c in row] for row in ws.iter_rows()]


def test_vba_module_runs_each_python_macro():
    source = xlsm.vba_source()
    assert source.endswith("\r\n") and "\n" not in source.replace("\r\n", "")
    for sub, macro in xlsm.MACROS.items():
        assert re.search(rf'Public Sub {sub}\(\)\r\n    RunXlcollab "import xlcollab.excel as x; x.{macro}\(\)"\r\nEnd Sub', source)
    assert 'Application.Run "xlwings.xlam!RunPython", command' in source


@pytest.mark.parametrize("size", [0, 1, 100, 2047, 4096, 4097, 9000, 20000])
def test_ovba_compression_round_trips_through_oletools(size):
    rng = random.Random(size)
    words = [b"Sheet", b"Attribute VB_", b"\x00\x01", b"xlcollab", bytes([rng.randrange(256)])]
    data = b"".join(rng.choice(words) for _ in range(size))[:size]
    assert bytes(olevba.decompress_stream(bytearray(xlsm.ovba_compress(data)))) == data
    noise = bytes(rng.randrange(256) for _ in range(size))
    assert bytes(olevba.decompress_stream(bytearray(xlsm.ovba_compress(noise)))) == noise


@pytest.mark.parametrize("kind", ["collab", "graddesc"])
def test_vba_source_extracted_by_oletools_is_ours(built, kind):
    xlsx, path = built[kind]
    macros = _macros(path)
    n_sheets = len(openpyxl.load_workbook(xlsx, read_only=True).sheetnames) + 1  # + xlwings.conf
    assert macros.pop("xlcollab.bas") == xlsm.vba_source()
    assert sorted(macros) == sorted(["ThisWorkbook.cls"] + [f"Sheet{i}.cls" for i in range(1, n_sheets + 1)])
    assert all('Attribute VB_Base = "0{00020820-0000-0000-C000-000000000046}"' in code
               for name, code in macros.items() if name.startswith("Sheet"))


@pytest.mark.parametrize("kind", ["collab", "graddesc"])
def test_sheets_names_and_charts_survive(built, kind):
    xlsx, path = built[kind]
    before, after = zipfile.ZipFile(xlsx), zipfile.ZipFile(path)
    ctypes = after.read("[Content_Types].xml").decode()
    assert 'PartName="/xl/workbook.xml" ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"' in ctypes
    assert 'Extension="bin" ContentType="application/vnd.ms-office.vbaProject"' in ctypes
    for name in before.namelist():  # charts, drawings, styles: byte for byte; a tab's comments drawing also
        if name.startswith(("xl/charts/", "xl/drawings/", "xl/styles", "xl/theme/")):  # takes its buttons
            if name.endswith(".vml") and b"FmlaMacro" in after.read(name):
                assert after.read(name).count(b'ObjectType="Note"') == before.read(name).count(b'ObjectType="Note"') > 0
            else:
                assert after.read(name) == before.read(name), name
    wb0 = openpyxl.load_workbook(xlsx)
    wb1 = openpyxl.load_workbook(path, keep_vba=True)
    assert wb1.sheetnames == wb0.sheetnames + ["xlwings.conf"]
    for ws0 in wb0:
        ws1 = wb1[ws0.title]
        assert {k: v.attr_text for k, v in ws1.defined_names.items()} == {k: v.attr_text for k, v in ws0.defined_names.items()}
        assert _cells(ws1) == _cells(ws0)
    assert [wb1[s].sheet_properties.codeName for s in wb1.sheetnames] == [f"Sheet{i}" for i in range(1, len(wb1.sheetnames) + 1)]
    conf = wb1["xlwings.conf"]
    assert (conf["A1"].value, conf["B1"].value) == ("UDF Modules", "xlcollab.excel")
    assert conf["A2"].value is None  # xlwings reads keys from A1 down to the first empty cell


def test_buttons_per_tab():
    assert xlsm.buttons_for("graddesc", ["data", "basic SGD", "adam", "compare", "xlwings.conf"]) == {
        "basic SGD": ["XcRun", "XcReset"], "adam": ["XcRun", "XcReset"]}
    got = xlsm.buttons_for("collab", list(collab.SHEETS) + ["xlwings.conf"])
    assert got == {s: ["XcSolve"] + (["XcFitMovielens"] if s == collab.SHEETS[0] else []) for s in collab.SHEETS}


def test_bad_input(built, tmp_path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a zip")
    with pytest.raises(WorkbookError, match="cannot read the workbook"):
        xlsm.make_xlsm(junk, tmp_path / "out.xlsm", "collab")
    with pytest.raises(WorkbookError, match="already holds a VBA project"):
        xlsm.make_xlsm(built["collab"][1], tmp_path / "again.xlsm", "collab")
    with pytest.raises(XlcollabError, match="unknown workbook kind"):
        xlsm.make_xlsm(built["collab"][0], tmp_path / "k.xlsm", "solver")
    assert not (tmp_path / "out.xlsm").exists() and not (tmp_path / "k.xlsm").exists()


@pytest.mark.libreoffice
@pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")
def test_libreoffice_binds_every_button_to_its_macro(built):
    with unobook.Office() as office:
        for kind, (_, path) in built.items():
            book = office.open(path)
            try:
                doc = book.doc
                want = xlsm.buttons_for(kind, book.sheet_names())
                assert want  # every kind has buttons somewhere
                for sheet in book.sheet_names():
                    forms = doc.Sheets.getByName(sheet).DrawPage.Forms
                    found = []
                    for f in range(forms.Count):
                        form = forms.getByIndex(f)
                        for i in range(form.Count):
                            events = form.getScriptEvents(i)
                            found.append((form.getByIndex(i).Label,
                                          [(e.EventMethod, e.ScriptCode) for e in events]))
                    expected = [(xlsm.CAPTIONS[sub], [("actionPerformed",
                                 f"vnd.sun.star.script:VBAProject.xlcollab.{sub}?language=Basic&location=document")])
                                for sub in want.get(sheet, [])]
                    assert found == expected, sheet
                library = doc.BasicLibraries.getByName("VBAProject")
                code = library.getByName("xlcollab")
                for sub, macro in xlsm.MACROS.items():
                    assert f"Public Sub {sub}()" in code and f"x.{macro}()" in code
            finally:
                book.close()


# -- xlcollab addin ----------------------------------------------------------------------------------------
def test_addin_prints_the_steps_and_installs_nothing_without_excel(capsys, monkeypatch):
    from xlcollab.cli import addin, main
    monkeypatch.setattr(addin, "find_excel", lambda platform=None: None)
    monkeypatch.setattr(addin.subprocess, "run", lambda *a, **k: pytest.fail("must not install without Excel"))
    assert main(["addin"]) == 0
    out = capsys.readouterr().out
    assert "xlwings addin install" in out and "Enable Content" in out and "Import Functions" in out
    assert "Excel is not installed here, so nothing was installed" in out
    assert "xlwings runpython install" in "\n".join(addin.steps("darwin"))  # macOS also needs RunPython's helper


def test_addin_runs_the_xlwings_installer_where_excel_is(capsys, monkeypatch, tmp_path):
    from xlcollab.cli import addin, main
    ran = []
    monkeypatch.setattr(addin, "find_excel", lambda platform=None: tmp_path / "EXCEL.EXE")
    monkeypatch.setattr(addin.subprocess, "run", lambda cmd, check: ran.append(cmd) or SimpleNamespace(returncode=0))
    assert main(["addin"]) == 0
    assert ran and ran[0][1:] == ["-m", "xlwings.cli", "addin", "install"]
    ran.clear()
    assert main(["addin", "--dry-run"]) == 0 and ran == []


def test_addin_writes_the_interpreter_into_xlwings_conf(built, tmp_path, capsys):
    from xlcollab.cli import addin, main
    path = tmp_path / "g.xlsm"
    path.write_bytes(built["graddesc"][1].read_bytes())
    assert addin.set_interpreter(path, r"C:\Python311\pythonw.exe", "win32") == "Interpreter_Win"
    assert addin.set_interpreter(path, r"C:\Py312\pythonw.exe", "win32") == "Interpreter_Win"  # replaced, not added
    ws = openpyxl.load_workbook(path, keep_vba=True)["xlwings.conf"]
    keys = []
    for row in ws.iter_rows(values_only=True):  # what xlwings reads: A1 down to the first empty cell
        if row[0] is None:
            break
        keys.append(row[:2])
    assert keys == [("UDF Modules", "xlcollab.excel"), ("Interpreter_Win", r"C:\Py312\pythonw.exe")]
    assert _macros(path)["xlcollab.bas"] == xlsm.vba_source()  # the VBA project is untouched
    if not sys.platform.startswith("win") and sys.platform != "darwin":
        assert main(["addin", "--workbook", str(path)]) == 1
        assert "on the Windows or macOS machine that runs Excel" in capsys.readouterr().err


def test_same_input_same_bytes(built, tmp_path):
    xlsx, first = built["graddesc"]
    again = xlsm.make_xlsm(xlsx, tmp_path / "again.xlsm", "graddesc")
    assert again.read_bytes() == first.read_bytes()


def test_buttons_sit_where_a_sheet_names_them(tmp_path):
    from openpyxl.workbook.defined_name import DefinedName
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "adam"
    ws["A1"], ws["H30"] = "a", 1
    ws.defined_names["buttons"] = DefinedName("buttons", attr_text="'adam'!$C$2")
    other = wb.create_sheet("momentum")
    other["A1"], other["D9"] = "b", 2
    wb.save(tmp_path / "g.xlsx")
    out = xlsm.make_xlsm(tmp_path / "g.xlsx", tmp_path / "g.xlsm", "graddesc")
    with zipfile.ZipFile(out) as zf:
        vml = sorted(n for n in zf.namelist() if n.endswith(".vml"))
        anchors = [re.findall(r"<x:Anchor>([^<]*)</x:Anchor>", zf.read(n).decode()) for n in vml]
    assert anchors == [["2, 0, 1, 0, 4, 0, 3, 0", "2, 0, 4, 0, 4, 0, 6, 0"],   # adam: from its `buttons` cell C2
                       ["5, 0, 2, 0, 7, 0, 4, 0", "5, 0, 5, 0, 7, 0, 7, 0"]]   # momentum: right of D9, row 3
