"""xlcollab.xlam: the Excel add-in that gives any open workbook an "xlcollab" ribbon tab and the XC_* functions.

Built by code, the same bytes for the same xlwings release, after xlwings' custom add-in conventions (its
`quickstart_addin_ribbon.xlam` template and docs/customaddin.md):
- the add-in carries xlwings' own VBA module (`xlwings_custom_addin.bas`, PROJECT_NAME "xlcollab") and its Dictionary
  class, so RunPython and the UDF calls run through the add-in itself: no workbook needs VBA or a reference;
- its settings are its own `xlcollab.conf` sheet (UDF Modules, Use UDF Server, the interpreter); an `xlcollab.conf`
  sheet in a workbook overrides them there;
- the ribbon is customUI/customUI.xml (Office 2007 schema, `_rels/.rels` type ui/extensibility), whose callbacks have
  the IRibbonControl signatures (see `ribbon`); the project references what the template references (MS Forms, Office).
"Use UDF Server" is on: on Windows the buttons and the functions run in one persistent Python (xlwings' COM server),
so only the first click pays for importing torch; modules stay loaded until Restart Python (or Excel) after an upgrade.
"""
from __future__ import annotations

import io
import struct
import uuid
import zipfile
from pathlib import Path

import xlwings

from xlcollab.book.ooxml import NS, R_NS, Package
from xlcollab.errors import XlcollabError
import xlcollab.excel.ribbon as ribbon
from xlcollab.excel.conf import conf_sheet_xml
from xlcollab.excel.functions_vba import functions_vba
from xlcollab.excel.vba import WORKBOOK_BASE, Module, build_project, class_module, document, standard

ADDIN = "xlcollab.xlam"
CONF_SHEET = "xlcollab.conf"   # xlwings' custom add-ins read "<PROJECT_NAME>.conf"
ADDIN_CONTENT_TYPE = "application/vnd.ms-excel.addin.macroEnabled.main+xml"
UI_REL = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
XLWINGS_DIR = Path(xlwings.__file__).parent
_PROJECT_LINE = 'Public Const PROJECT_NAME As String = "myaddin"'

# The references of xlwings' add-in template, as its vbaProject.bin holds them (paths from its author's machine; VBA
# finds a library by its GUID and version): MS Forms as a control reference, the Office object library (IRibbonControl).
MSFORMS_ORIGINAL = r"*\G{0D452EE1-E08F-101A-852E-02608C4D0BB4}#2.0#0#C:\WINDOWS\SysWOW64\FM20.DLL#Microsoft Forms 2.0 Object Library"
MSFORMS_TWIDDLED = r"*\G{00000000-0000-0000-0000-000000000000}#0.0#0##"
MSFORMS_EXTENDED = (r"*\G{0A322D97-3EB1-4A1B-B6B9-11AD3C432547}#2.0#0#C:\Users\felix\AppData\Local\Temp\VBE\MSForms.exd"
                    "#Microsoft Forms 2.0 Object Library")
OFFICE = (r"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0#C:\Program Files (x86)\Common Files\Microsoft Shared"
          r"\OFFICE16\MSO.DLL#Microsoft Office 16.0 Object Library")


def settings(interpreters: dict[str, str] | None = None) -> list[tuple[str, str | bool]]:
    """The add-in's xlcollab.conf rows: the UDF module, the UDF server on, and the Python to run where known."""
    return [("UDF Modules", "xlcollab.excel"), ("Use UDF Server", True), *sorted((interpreters or {}).items())]


def build_addin(path: str | Path, *, interpreters: dict[str, str] | None = None) -> Path:
    """Write xlcollab.xlam to `path`; `interpreters` e.g. {"Interpreter_Win": r"C:\\...\\pythonw.exe"}."""
    path = Path(path)
    note = ("xlwings reads the settings above (key in A, value in B, from A1 down to the first empty row); an "
            f"'{CONF_SHEET}' sheet in a workbook overrides them there.")
    parts = {
        "[Content_Types].xml": _content_types(),
        "_rels/.rels": _rels([("rId1", "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
                                       "officeDocument", "xl/workbook.xml"), ("rId2", UI_REL, "customUI/customUI.xml")]),
        "customUI/customUI.xml": ribbon.custom_ui(),
        "xl/workbook.xml": _workbook(),
        "xl/_rels/workbook.xml.rels": _rels([
            ("rId1", f"{R_NS}/worksheet", "worksheets/sheet1.xml"), ("rId2", f"{R_NS}/styles", "styles.xml"),
            ("rId3", "http://schemas.microsoft.com/office/2006/relationships/vbaProject", "vbaProject.bin")]),
        "xl/worksheets/sheet1.xml": conf_sheet_xml(settings(interpreters), note),
        "xl/styles.xml": _STYLES,
        "xl/vbaProject.bin": vba_project(),
    }
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    with Package(empty, name=ADDIN) as pkg:  # the one package writer: atomic, reproducible entries
        for part, data in parts.items():
            pkg.set(part, data)
        return pkg.save(path, reproducible=True)


def vba_project() -> bytes:
    """The add-in's project: ThisWorkbook, the conf sheet, xlwings' module and Dictionary class, and ours."""
    source = (XLWINGS_DIR / "xlwings_custom_addin.bas").read_text(encoding="cp1252")
    if _PROJECT_LINE not in source:
        raise XlcollabError(f"xlwings {xlwings.__version__}'s add-in module has no line {_PROJECT_LINE!r}; "
                            "xlcollab builds its add-in with xlwings 0.30 to 0.37")
    modules = [document("ThisWorkbook", WORKBOOK_BASE), document("Sheet1"),
               class_module((XLWINGS_DIR / "addin" / "Dictionary.cls").read_text(encoding="cp1252")),
               standard(source.replace(_PROJECT_LINE, _PROJECT_LINE.replace("myaddin", "xlcollab"))),
               our_module()]
    return build_project(modules, references())


def our_module() -> Module:
    """The `xlcollab` module: the ribbon's callbacks and the worksheet functions."""
    lines = [f'Attribute VB_Name = "{ribbon.MODULE}"',
             "' xlcollab's ribbon tab and worksheet functions; generated by xlcollab (the Python is xlcollab.excel).",
             "Option Explicit", ""]
    return standard("\r\n".join(lines + ribbon.callbacks_vba() + [""] + functions_vba()) + "\r\n")


def references() -> bytes:
    """REFERENCE records (MS-OVBA 2.3.4.2.2) for the template's two references, in dir-stream form."""
    control = (_record(0x2F, _sized(MSFORMS_TWIDDLED) + b"\0" * 6) + _name("MSForms")
               + _record(0x30, _sized(MSFORMS_EXTENDED) + b"\0" * 6
                         + uuid.UUID("0D452EE1-E08F-101A-852E-02608C4D0BB4").bytes_le + struct.pack("<I", 1)))
    return (_name("MSForms") + _record(0x33, MSFORMS_ORIGINAL.encode("cp1252")) + control
            + _name("Office") + _record(0x0D, _sized(OFFICE) + b"\0" * 6))


def _record(rid: int, payload: bytes) -> bytes:
    return struct.pack("<HI", rid, len(payload)) + payload


def _sized(text: str) -> bytes:
    data = text.encode("cp1252")
    return struct.pack("<I", len(data)) + data


def _name(name: str) -> bytes:
    """REFERENCENAME: the name in the code page, then (after the reserved 0x003E) in UTF-16."""
    return _record(0x16, name.encode("cp1252")) + struct.pack("<H", 0x3E) + _sized_utf16(name)


def _sized_utf16(text: str) -> bytes:
    data = text.encode("utf-16-le")
    return struct.pack("<I", len(data)) + data


def _content_types() -> bytes:
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ADDIN_CONTENT_TYPE}"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/></Types>').encode("utf-8")


def _rels(rels: list[tuple[str, str, str]]) -> bytes:
    items = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{target}"/>' for i, t, target in rels)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
            f'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{items}</Relationships>').encode("utf-8")


def _workbook() -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{NS}" xmlns:r="{R_NS}">'
            '<workbookPr codeName="ThisWorkbook"/><bookViews><workbookView/></bookViews>'
            f'<sheets><sheet name="{CONF_SHEET}" sheetId="1" r:id="rId1"/></sheets></workbook>').encode("utf-8")


_STYLES = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{NS}">'
           '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
           '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
           '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
           '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
           '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
           '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
           ).encode("utf-8")
