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
from xlcollab.excel import ovba, vba, xlsm
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
        out[kind] = (xlsx, xlsm.make_xlsm(xlsx, root / f"{stem}.xlsm", module.BUTTONS))
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
    source = vba.module_source()
    assert source.endswith("\r\n") and "\n" not in source.replace("\r\n", "")
    for sub, macro in vba.MACROS.items():
        assert re.search(rf'Public Sub {sub}\(\)\r\n    RunXlcollab "import xlcollab.excel as x; x.{macro}\(\)"\r\nEnd Sub', source)
    assert 'Application.Run "xlwings.xlam!RunPython", command' in source


@pytest.mark.parametrize("kind", ["collab", "graddesc"])
def test_vba_source_extracted_by_oletools_is_ours(built, kind):
    xlsx, path = built[kind]
    macros = _macros(path)
    n_sheets = len(openpyxl.load_workbook(xlsx, read_only=True).sheetnames) + 1  # + xlwings.conf
    assert macros.pop("xlcollab.bas") == vba.module_source()
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


def test_buttons_per_tab_come_from_what_the_tabs_declare():
    assert xlsm.button_subs(graddesc.BUTTONS, ["data", "basic SGD", "adam", "compare", "xlwings.conf"]) == {
        "basic SGD": ["XcRun", "XcReset"], "adam": ["XcRun", "XcReset"]}
    got = xlsm.button_subs(collab.BUTTONS, list(collab.SHEETS) + ["xlwings.conf"])
    assert got == {s: ["XcSolve"] + (["XcFitMovielens"] if s == collab.SHEETS[0] else []) for s in collab.SHEETS}
    with pytest.raises(XlcollabError, match="tab 'adam' asks for a button for 'fly', which is no macro"):
        xlsm.button_subs({"adam": ("run", "fly")}, ["adam"])


def test_bad_input(built, tmp_path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a zip")
    with pytest.raises(WorkbookError, match="cannot read the workbook"):
        xlsm.make_xlsm(junk, tmp_path / "out.xlsm", collab.BUTTONS)
    with pytest.raises(WorkbookError, match="already holds a VBA project"):
        xlsm.make_xlsm(built["collab"][1], tmp_path / "again.xlsm", collab.BUTTONS)
    with pytest.raises(XlcollabError, match="no macro of xlcollab.excel"):
        xlsm.make_xlsm(built["collab"][0], tmp_path / "k.xlsm", {"dotprod": ("solver",)})
    assert not (tmp_path / "out.xlsm").exists() and not (tmp_path / "k.xlsm").exists()


@pytest.mark.libreoffice
@pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")
def test_libreoffice_binds_every_button_to_its_macro(built):
    with unobook.Office() as office:
        for kind, (_, path) in built.items():
            book = office.open(path)
            try:
                doc = book.doc
                want = xlsm.button_subs((collab if kind == "collab" else graddesc).BUTTONS, book.sheet_names())
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
                for sub, macro in vba.MACROS.items():
                    assert f"Public Sub {sub}()" in code and f"x.{macro}()" in code
            finally:
                book.close()


# -- xlcollab addin ----------------------------------------------------------------------------------------
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
    assert _macros(path)["xlcollab.bas"] == vba.module_source()  # the VBA project is untouched
    if not sys.platform.startswith("win") and sys.platform != "darwin":
        assert main(["addin", "--workbook", str(path)]) == 1
        assert "on the Windows or macOS machine that runs Excel" in capsys.readouterr().err


def test_same_input_same_bytes(built, tmp_path):
    xlsx, first = built["graddesc"]
    again = xlsm.make_xlsm(xlsx, tmp_path / "again.xlsm", graddesc.BUTTONS)
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
    out = xlsm.make_xlsm(tmp_path / "g.xlsx", tmp_path / "g.xlsm", {"adam": ("run", "reset"), "momentum": ("run", "reset")})
    with zipfile.ZipFile(out) as zf:
        vml = sorted(n for n in zf.namelist() if n.endswith(".vml"))
        anchors = [re.findall(r"<x:Anchor>([^<]*)</x:Anchor>", zf.read(n).decode()) for n in vml]
    assert anchors == [["2, 0, 1, 0, 4, 0, 3, 0", "2, 0, 4, 0, 4, 0, 6, 0"],   # adam: from its `buttons` cell C2
                       ["5, 0, 2, 0, 7, 0, 4, 0", "5, 0, 5, 0, 7, 0, 7, 0"]]   # momentum: right of D9, row 3
