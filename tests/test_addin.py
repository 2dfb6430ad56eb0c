"""The xlcollab.xlam add-in, checked without Excel: its package, ribbon, VBA project (read back by oletools, compared
with xlwings' own add-in template and its own wrapper generator), LibreOffice opening it, and the `xlcollab addin`
command. What only Excel can check is marked `excel` (README: "not verified without Excel")."""
from __future__ import annotations

import io
import os
import re
import struct
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from lxml import etree

from xlcollab.book import unobook
from xlcollab.excel import addin, functions_vba, ribbon, udfs

olevba = pytest.importorskip("oletools.olevba")
olefile = pytest.importorskip("olefile")
DATA = Path(__file__).parent / "data"
TEMPLATE = addin.XLWINGS_DIR / "quickstart_addin_ribbon.xlam"


@pytest.fixture(scope="module")
def xlam(tmp_path_factory) -> Path:
    return addin.build_addin(tmp_path_factory.mktemp("addin") / addin.ADDIN,
                             interpreters={"Interpreter_Win": r"C:\Py\pythonw.exe"})


@pytest.fixture(scope="module")
def modules(xlam) -> dict[str, str]:
    parser = olevba.VBA_Parser(str(xlam))
    try:
        return {name: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def _dir_records(project: bytes) -> list[tuple[int, bytes]]:
    """(id, payload) of every record of a project's decompressed `dir` stream (MS-OVBA 2.3.4.2)."""
    ole = olefile.OleFileIO(project)
    data = bytes(olevba.decompress_stream(bytearray(ole.openstream("VBA/dir").read())))
    out, pos = [], 0
    while pos < len(data):
        rid, size = struct.unpack_from("<HI", data, pos)
        if rid == 0x0009:  # PROJECTVERSION: its size field is a reserved 4, then 6 bytes
            size = 6
        out.append((rid, data[pos + 6:pos + 6 + size]))
        pos += 6 + size
    return out


def _references(project: bytes) -> list[tuple[int, bytes]]:
    records = _dir_records(project)
    start = next(i for i, (rid, _) in enumerate(records) if rid == 0x16)
    end = next(i for i, (rid, _) in enumerate(records) if rid == 0x0F)
    return records[start:end]


# -- the package ---------------------------------------------------------------------------------------------
def test_package_parts_and_content_types(xlam):
    with zipfile.ZipFile(xlam) as zf:
        names = set(zf.namelist())
        types = etree.fromstring(zf.read("[Content_Types].xml"))
        rels = etree.fromstring(zf.read("_rels/.rels"))
        wb_rels = etree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        workbook = etree.fromstring(zf.read("xl/workbook.xml"))
    assert names == {"[Content_Types].xml", "_rels/.rels", "customUI/customUI.xml", "xl/workbook.xml",
                     "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml", "xl/styles.xml", "xl/vbaProject.bin"}
    overrides = {e.get("PartName"): e.get("ContentType") for e in types if e.get("PartName")}
    defaults = {e.get("Extension"): e.get("ContentType") for e in types if e.get("Extension")}
    assert overrides["/xl/workbook.xml"] == "application/vnd.ms-excel.addin.macroEnabled.main+xml"
    assert defaults["bin"] == "application/vnd.ms-office.vbaProject"
    assert "/customUI/customUI.xml" not in overrides  # xlwings' template: the ribbon part has no override
    ui = [r for r in rels if r.get("Type") == "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"]
    assert [r.get("Target") for r in ui] == ["customUI/customUI.xml"]
    assert {r.get("Target") for r in wb_rels} == {"worksheets/sheet1.xml", "styles.xml", "vbaProject.bin"}
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    assert workbook.find("m:workbookPr", ns).get("codeName") == "ThisWorkbook"
    assert [s.get("name") for s in workbook.find("m:sheets", ns)] == ["xlcollab.conf"]


def test_same_input_same_bytes(xlam, tmp_path):
    again = addin.build_addin(tmp_path / "again.xlam", interpreters={"Interpreter_Win": r"C:\Py\pythonw.exe"})
    assert again.read_bytes() == xlam.read_bytes()


def test_ribbon_validates_against_the_customui_schema():
    doc = etree.fromstring(ribbon.custom_ui())
    schemas = [DATA / "customui_subset.xsd"] + ([Path(os.environ["XLCOLLAB_CUSTOMUI_XSD"])]
                                                if os.environ.get("XLCOLLAB_CUSTOMUI_XSD") else [])
    for path in schemas:
        schema = etree.XMLSchema(etree.parse(str(path)))
        assert schema.validate(doc), (path.name, schema.error_log)
    bad = etree.fromstring(ribbon.custom_ui().replace(b'id="xcGraddesc"', b'id="xcSolver"'))  # a duplicate id
    assert not etree.XMLSchema(etree.parse(str(DATA / "customui_subset.xsd"))).validate(bad)


def test_every_callback_is_a_sub_of_the_project_with_the_ribbon_signature(modules):
    code = modules["xlcollab.bas"]
    signature = {"onAction@button": r"\(control As IRibbonControl\)",
                 "onAction@dropDown": r"\(control As IRibbonControl, id As String, index As Integer\)",
                 "getSelectedItemID@dropDown": r"\(control As IRibbonControl, ByRef returnedVal\)"}
    found = 0
    for el in etree.fromstring(ribbon.custom_ui()).iter():
        for attr in ("onAction", "getSelectedItemID"):
            if el.get(attr):
                module, sub = el.get(attr).split(".")
                assert module == "xlcollab"
                kind = f"{attr}@{etree.QName(el).localname}"
                assert re.search(rf"^Sub {sub}{signature[kind]}\r$", code, re.M), (sub, kind)
                found += 1
    assert found == 5 + 2 * len(ribbon.CHOICES)
    for macro in ribbon.PASSES:  # each button runs its Python macro
        assert f'RunPython "import xlcollab.excel as x; x.{macro}(" & Joined(' in code
    assert re.search(r"^Sub XcRestartClick\(control As IRibbonControl\)\r\n    KillPy\r$", code, re.M)


def test_vba_project_is_xlwings_custom_addin_with_our_module(modules):
    xlwings_bas = (addin.XLWINGS_DIR / "xlwings_custom_addin.bas").read_text(encoding="cp1252")
    ours = modules["xlwings.bas"].replace("\r\n", "\n")
    assert ours == xlwings_bas.replace('PROJECT_NAME As String = "myaddin"', 'PROJECT_NAME As String = "xlcollab"')
    assert sorted(modules) == ["Dictionary.cls", "Sheet1.cls", "ThisWorkbook.cls", "xlcollab.bas", "xlwings.bas"]
    template = olevba.VBA_Parser(str(TEMPLATE))
    theirs = {name: code for _, _, name, code in template.extract_macros()}
    template.close()
    head = lambda code: code.replace("\r\n", "\n").split("\n")[:8]  # noqa: E731  the attribute header
    assert head(modules["Dictionary.cls"]) == head(theirs["Dictionary.cls"])
    assert modules["ThisWorkbook.cls"] == theirs["ThisWorkbook.cls"]


def test_references_are_those_of_xlwings_addin_template(xlam):
    with zipfile.ZipFile(xlam) as ours, zipfile.ZipFile(TEMPLATE) as theirs:
        mine, template = _references(ours.read("xl/vbaProject.bin")), _references(theirs.read("xl/vbaProject.bin"))
    assert mine == template
    names = [payload.decode("cp1252") for rid, payload in mine if rid == 0x16]
    assert names == ["MSForms", "MSForms", "Office"]


def test_conf_sheet_turns_the_udf_server_on(xlam):
    with zipfile.ZipFile(xlam) as zf:  # openpyxl refuses add-ins; the sheet's cells are read as XML
        sheet = etree.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    cells = {c.get("r"): (c.findtext("m:is/m:t", namespaces=ns) if c.get("t") == "inlineStr" else
                          bool(int(c.findtext("m:v", namespaces=ns)))) for c in sheet.iter(f"{{{ns['m']}}}c")}
    rows = [(cells.get(f"A{i}"), cells.get(f"B{i}")) for i in range(1, 5)]
    assert rows == [("UDF Modules", "xlcollab.excel"), ("Use UDF Server", True),
                    ("Interpreter_Win", r"C:\Py\pythonw.exe"), (None, None)]  # xlwings reads keys down to the first empty cell


# -- the worksheet functions --------------------------------------------------------------------------------
def test_function_wrappers_are_xlwings_own_for_an_addin(modules):
    """Each `Function XC_…(…)` and its CallUDF argument list are what xlwings' generator writes for an .xlam."""
    from xlwings_udfs import import_with_metadata, vba_wrappers, windows_udfs
    with windows_udfs() as udfs_win:
        (module,) = import_with_metadata(udfs_win, ["xlcollab.excel.udfs", "xlcollab.excel"])[-1:]
        theirs = vba_wrappers(udfs_win, module, workbook="xlcollab.xlam")
    code = modules["xlcollab.bas"]
    declared = re.findall(r"^Function (XC_\w+\(.*\))\r?$", theirs, re.M)
    calls = dict(re.findall(r'^\s+(XC_\w+) = XLPy\.CallUDF\("xlcollab\.excel", "XC_\w+", (Array\(.*\), ActiveWorkbook, '
                            r'Application\.Caller)\)', theirs, re.M))
    for line in declared:
        name = line.split("(")[0]
        if name in udfs.SPILLING.values():
            assert f"Function {name}(" not in code  # reached through its twin, below
            continue
        assert re.search(rf"^Function {re.escape(line)}\r$", code, re.M), line
        target = f'Spilling\\("{name}", "{udfs.SPILLING[name]}"\\)' if name in udfs.SPILLING else f'"{name}"'
        assert re.search(rf'{name} = InCell\(XLPy\.CallUDF\("xlcollab\.excel", {target}, {re.escape(calls[name])}\)\)',
                         code), name
    assert set(calls) == {f.__name__ for f in udfs.UDFS}
    assert "Function XC_ERROR(cell As Range) As String" in code and "CVErr(xlErrValue)" in code


def test_spilling_functions_spill_and_their_twins_resize(recorded_meta):
    for name, legacy in udfs.SPILLING.items():
        assert "expand" not in recorded_meta[name]["ret"]["options"]         # Excel 365 spills the array itself
        assert recorded_meta[legacy]["ret"]["options"] == {"expand": "table"}  # older Excel: xlwings resizes
    assert functions_vba.signature_of(udfs.XC_FIT) == ("ratings, Optional factors, Optional epochs, Optional device",
                                                       "ratings, factors, epochs, device")


@pytest.fixture(scope="module")
def recorded_meta():
    from xlwings_udfs import import_with_metadata, metadata, windows_udfs
    with windows_udfs() as udfs_win:
        (module,) = import_with_metadata(udfs_win, ["xlcollab.excel.udfs", "xlcollab.excel"])[-1:]
        return metadata(module)


# -- LibreOffice --------------------------------------------------------------------------------------------
@pytest.mark.libreoffice
@pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")
def test_libreoffice_opens_the_addin_with_its_vba(xlam):
    uno = unobook.import_uno()
    with unobook.Office() as office:  # LibreOffice does not detect .xlam by itself: name the OOXML VBA filter
        doc = office.desktop.loadComponentFromURL(uno.systemPathToFileUrl(str(xlam)), "_blank", 0, unobook._props(
            Hidden=True, FilterName="Calc MS Excel 2007 VBA XML", MacroExecutionMode=0))
        try:
            assert list(doc.Sheets.ElementNames) == ["xlcollab.conf"]
            sheet = doc.Sheets.getByName("xlcollab.conf")
            assert sheet.getCellRangeByName("B1").String == "xlcollab.excel"
            library = doc.BasicLibraries.getByName("VBAProject")
            assert sorted(library.ElementNames) == ["Dictionary", "Sheet1", "ThisWorkbook", "xlcollab", "xlwings"]
            assert "Function XC_ERROR(cell As Range) As String" in library.getByName("xlcollab")
        finally:
            doc.close(True)


# -- `xlcollab addin` ---------------------------------------------------------------------------------------
def test_addin_builds_prints_the_steps_and_installs_nothing_without_excel(capsys, monkeypatch, tmp_path):
    from xlcollab.cli import addin as cli_addin
    from xlcollab.cli import main
    monkeypatch.setattr(cli_addin, "find_excel", lambda platform=None: None)
    monkeypatch.setattr(cli_addin.subprocess, "run", lambda *a, **k: pytest.fail("must not install without Excel"))
    assert main(["addin", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "xlcollab.xlam").is_file() and f"built {tmp_path / 'xlcollab.xlam'}" in out
    assert "-m pip install" in out and "pip install xlcollab" not in out  # not on PyPI: from its folder or wheel
    assert r"%APPDATA%\Microsoft\Excel\XLSTART" in out and "Startup.localized/Excel" in out
    assert "Excel is not installed here, so nothing was installed" in out
    assert "xlwings runpython install" in "\n".join(cli_addin.steps("darwin"))


def test_install_hint_names_a_folder_that_pip_can_install(tmp_path):
    from xlcollab.cli import addin as cli_addin
    hint = cli_addin.install_hint().strip('"')
    assert (Path(hint) / "pyproject.toml").is_file()  # a source checkout: `pip install "<this folder>"` works


def test_installed_from_reads_what_pip_recorded(monkeypatch, tmp_path):
    import importlib.metadata
    from xlcollab.cli import addin as cli_addin
    wheel = tmp_path / "dist dir" / "xlcollab-0.1.0-py3-none-any.whl"
    record = SimpleNamespace(read_text=lambda name: '{"url": "file://' + str(wheel).replace(" ", "%20") + '", '
                                                    '"archive_info": {}}' if name == "direct_url.json" else None)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: record)
    assert cli_addin.installed_from() == wheel
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: SimpleNamespace(read_text=lambda n: None))
    assert cli_addin.installed_from() is None


def test_addin_installs_through_xlwings_where_excel_is(capsys, monkeypatch, tmp_path):
    from xlcollab.cli import addin as cli_addin
    from xlcollab.cli import main
    ran = []
    monkeypatch.setattr(cli_addin, "find_excel", lambda platform=None: tmp_path / "EXCEL.EXE")
    monkeypatch.setattr(cli_addin.subprocess, "run", lambda cmd, check: ran.append(cmd) or SimpleNamespace(returncode=0))
    assert main(["addin", "--out", str(tmp_path)]) == 0
    assert ran[0][1:] == ["-m", "xlwings.cli", "addin", "install", "--file", str((tmp_path / "xlcollab.xlam").resolve())]
    ran.clear()
    assert main(["addin", "--out", str(tmp_path), "--dry-run"]) == 0 and ran == []


@pytest.mark.excel
@pytest.mark.skipif(not sys.platform.startswith("win"), reason="needs Microsoft Excel on Windows")
def test_excel_loads_the_addin_and_its_functions_answer(xlam):  # pragma: no cover - Excel only
    import xlwings as xw
    app = xw.App(visible=False)
    try:
        app.books.open(str(xlam))
        book = app.books.add()
        sheet = book.sheets[0]
        sheet["A1"].formula, sheet["A2"].formula = "=XC_DOT({1,2},{3,4})", "=XC_DOT({1,2},{3})"
        sheet["A3"].formula, sheet["A4"].formula = "=ISERROR(A2)", "=XC_ERROR(A2)"
        app.calculate()
        assert sheet["A1"].value == 11 and sheet["A3"].value is True and sheet["A4"].value == "a has 2 cells but b has 1"
    finally:
        app.quit()


def test_click_benchmark_prints_its_table():
    """benchmarks/bench_clicks.py (the README's second-click floor) still runs: tiny, nothing asserted about time."""
    import subprocess
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_clicks.py"),
                           "--clicks", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["step", "import xlcollab.excel", "Run (adam, 5 epochs)", "Reset (adam)", "Solve (dotprod)"]


@pytest.mark.excel
@pytest.mark.skipif(not sys.platform.startswith("win"), reason="needs Microsoft Excel 365 on Windows")
def test_excel_365_spills_recommendations_natively(xlam, tmp_path):  # pragma: no cover - Excel only
    import xlwings as xw
    from xlcollab.core.fit import CollabFit
    model = tmp_path / "m.xlcollab.pt"
    CollabFit(epochs=1, progress=False).fit(None).save(model)
    app = xw.App(visible=False)
    try:
        app.books.open(str(xlam))
        sheet = app.books.add().sheets[0]
        sheet["A1"].formula2 = f'=XC_SIMILAR(1, 3, "{model}")'
        app.calculate()
        assert sheet["A1"].formula2.startswith("=XC_SIMILAR") and sheet["A2"].formula2 == ""  # one formula, spilled
        assert sheet["A1:B4"].value[0] == ["title", "similarity"] and sheet["A4"].value is not None
    finally:
        app.quit()
