"""Turn a built .xlsx into a macro-enabled .xlsm: a VBA project, one button per macro on each tab, xlwings.conf.

Nothing here needs Excel. The VBA project (xl/vbaProject.bin) comes from `xlcollab.excel.vba`: a document
module per sheet and the `xlcollab` module whose Subs run the Python macros. The buttons are Excel form
controls in each sheet's legacy VML drawing,
bound to those Subs (`<x:FmlaMacro>[0]!XcSolve`), the way XlsxWriter's `insert_button` writes them. The
.xlsx is post-processed part by part (the workbook, content types, the sheets that get buttons); every
other part is copied byte for byte, so charts and defined names survive.
"""
from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from lxml import etree

from xlcollab.errors import WorkbookError, XlcollabError
from xlcollab.excel.vba import workbook_project

CONF_SHEET = "xlwings.conf"
CONF = (("UDF Modules", "xlcollab.excel"),)
MACRO_ENABLED = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
VBA_CONTENT_TYPE = "application/vnd.ms-office.vbaProject"
VML_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.vmlDrawing"
WORKSHEET_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
VBA_REL = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
WORKSHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
VML_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/vmlDrawing"

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"

CAPTIONS = {"XcSolve": "Solve", "XcRun": "Run", "XcReset": "Reset", "XcFitMovielens": "Fit MovieLens"}

# Worksheet children that must come after <legacyDrawing> (ECMA-376 CT_Worksheet order).
_AFTER_LEGACY = {"legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems",
                 "tableParts", "extLst"}


def buttons_for(kind: str, sheets: list[str]) -> dict[str, list[str]]:
    """Which Subs get a button on which tab: Solve on collab tabs (+ Fit MovieLens on the first), Run/Reset on optimizer tabs."""
    if kind == "collab":
        from xlcollab.sheets.collab import SHEETS as tabs
        out = {s: ["XcSolve"] for s in sheets if s in tabs}
        first = next((s for s in sheets if s in tabs), None)
        if first:
            out[first].append("XcFitMovielens")
        return out
    if kind == "graddesc":
        from xlcollab.sheets.graddesc import OPTIMIZERS
        return {s: ["XcRun", "XcReset"] for s in sheets if s in OPTIMIZERS}
    raise XlcollabError(f"unknown workbook kind {kind!r} (collab or graddesc)")


def make_xlsm(xlsx_path: Path, xlsm_path: Path, kind: Literal["collab", "graddesc"]) -> Path:
    """Write `xlsm_path`: the sheets of `xlsx_path` plus the VBA project, buttons and an xlwings.conf sheet."""
    xlsx_path, xlsm_path = Path(xlsx_path), Path(xlsm_path)
    try:
        src = zipfile.ZipFile(xlsx_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WorkbookError(f"cannot read the workbook ({exc})", path=str(xlsx_path)) from None
    with src:
        parts = {name: src.read(name) for name in src.namelist()}
    if "xl/vbaProject.bin" in parts:
        raise WorkbookError("already holds a VBA project; build from the plain .xlsx", path=str(xlsx_path))
    workbook = etree.fromstring(parts["xl/workbook.xml"])
    rels = etree.fromstring(parts["xl/_rels/workbook.xml.rels"])
    types = etree.fromstring(parts["[Content_Types].xml"])
    targets = {r.get("Id"): r.get("Target") for r in rels}
    sheets_el = workbook.find(f"{{{NS}}}sheets")
    sheet_parts: list[tuple[str, str]] = []
    for sheet in sheets_el:
        target = targets[sheet.get(f"{{{R_NS}}}id")]
        sheet_parts.append((sheet.get("name"), target.lstrip("/") if target.startswith("/") else f"xl/{target}"))
    if CONF_SHEET in [name for name, _ in sheet_parts]:
        raise WorkbookError(f"already has a '{CONF_SHEET}' sheet", path=str(xlsx_path))

    # the xlwings.conf sheet, last
    conf_part = _free_name(parts, "xl/worksheets/sheet{}.xml")
    parts[conf_part] = _conf_sheet_xml()
    conf_rid = _free_id({r.get("Id") for r in rels}, "rId{}")
    etree.SubElement(rels, f"{{{PKG_NS}}}Relationship", Id=conf_rid, Type=WORKSHEET_REL,
                     Target=conf_part.removeprefix("xl/"))
    sheet_id = max(int(s.get("sheetId")) for s in sheets_el) + 1
    conf = etree.SubElement(sheets_el, f"{{{NS}}}sheet", name=CONF_SHEET, sheetId=str(sheet_id))
    conf.set(f"{{{R_NS}}}id", conf_rid)
    etree.SubElement(types, f"{{{CT_NS}}}Override", PartName="/" + conf_part, ContentType=WORKSHEET_CONTENT_TYPE)
    sheet_parts.append((CONF_SHEET, conf_part))

    # code names: ThisWorkbook and Sheet1..N, in workbook order
    codenames = [f"Sheet{i}" for i in range(1, len(sheet_parts) + 1)]
    pr = workbook.find(f"{{{NS}}}workbookPr")
    if pr is None:
        pr = etree.Element(f"{{{NS}}}workbookPr")
        anchor = workbook.find(f"{{{NS}}}fileVersion")
        workbook.insert(0 if anchor is None else workbook.index(anchor) + 1, pr)
    pr.set("codeName", "ThisWorkbook")
    buttons = buttons_for(kind, [name for name, _ in sheet_parts])
    anchors = _button_names(workbook, [name for name, _ in sheet_parts])
    vml_n = 0
    for (name, part), codename in zip(sheet_parts, codenames):
        root = etree.fromstring(parts[part])
        _set_codename(root, codename)
        if name in buttons:
            vml_n += 1
            vml_part = _free_name(parts, "xl/drawings/vmlDrawing{}.vml", start=vml_n)
            vml_n = int(re.search(r"(\d+)\.vml$", vml_part)[1])
            row, col = _button_anchor(root, anchors.get(name))
            parts[vml_part] = _buttons_vml(buttons[name], row, col, shape_block=vml_n)
            rel_part = _rels_of(part)
            sheet_rels = etree.fromstring(parts[rel_part]) if rel_part in parts else etree.Element(
                f"{{{PKG_NS}}}Relationships", nsmap={None: PKG_NS})
            rid = _free_id({r.get("Id") for r in sheet_rels}, "rId{}")
            etree.SubElement(sheet_rels, f"{{{PKG_NS}}}Relationship", Id=rid, Type=VML_REL,
                             Target="../drawings/" + vml_part.rsplit("/", 1)[1])
            parts[rel_part] = _xml(sheet_rels)
            _add_legacy_drawing(root, rid, sheet=name, path=str(xlsx_path))
        parts[part] = _xml(root)

    # the VBA project, and the workbook declared macro-enabled
    parts["xl/vbaProject.bin"] = workbook_project(codenames)
    etree.SubElement(rels, f"{{{PKG_NS}}}Relationship", Id=_free_id({r.get("Id") for r in rels}, "rId{}"),
                     Type=VBA_REL, Target="vbaProject.bin")
    for el in types.findall(f"{{{CT_NS}}}Override"):
        if el.get("PartName") == "/xl/workbook.xml":
            el.set("ContentType", MACRO_ENABLED)
    defaults = {el.get("Extension") for el in types.findall(f"{{{CT_NS}}}Default")}
    for ext, ctype in (("bin", VBA_CONTENT_TYPE), ("vml", VML_CONTENT_TYPE)):
        if ext not in defaults:
            types.insert(0, etree.Element(f"{{{CT_NS}}}Default", Extension=ext, ContentType=ctype))
    parts["xl/workbook.xml"] = _xml(workbook)
    parts["xl/_rels/workbook.xml.rels"] = _xml(rels)
    parts["[Content_Types].xml"] = _xml(types)
    _write_zip(parts, xlsm_path)
    return xlsm_path


# -- parts ------------------------------------------------------------------------------------------
def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _free_name(parts: dict, pattern: str, start: int = 1) -> str:
    i = start
    while pattern.format(i) in parts:
        i += 1
    return pattern.format(i)


def _free_id(used: set, pattern: str) -> str:
    i = 1
    while pattern.format(i) in used:
        i += 1
    return pattern.format(i)


def _rels_of(part: str) -> str:
    folder, name = part.rsplit("/", 1)
    return f"{folder}/_rels/{name}.rels"


def _set_codename(root: etree._Element, codename: str) -> None:
    pr = root.find(f"{{{NS}}}sheetPr")
    if pr is None:
        pr = etree.Element(f"{{{NS}}}sheetPr")
        root.insert(0, pr)
    pr.set("codeName", codename)


def _add_legacy_drawing(root: etree._Element, rid: str, *, sheet: str, path: str) -> None:
    if root.find(f"{{{NS}}}legacyDrawing") is not None:
        raise WorkbookError("already has a legacy drawing (comments or controls); cannot add buttons", sheet=sheet, path=path)
    el = etree.Element(f"{{{NS}}}legacyDrawing")
    el.set(f"{{{R_NS}}}id", rid)
    for i, child in enumerate(root):
        if etree.QName(child).localname in _AFTER_LEGACY:
            root.insert(i, el)
            return
    root.append(el)


def _button_names(workbook: etree._Element, sheets: list[str]) -> dict[str, str]:
    """Sheet -> the cell its sheet-scoped defined name `buttons` points at, where a layout chose one."""
    out = {}
    names = workbook.find(f"{{{NS}}}definedNames")
    for dn in names if names is not None else []:
        local = dn.get("localSheetId")
        if dn.get("name") == "buttons" and local is not None and int(local) < len(sheets):
            out[sheets[int(local)]] = (dn.text or "").split("!")[-1].split(":")[0].replace("$", "")
    return out


def _button_anchor(root: etree._Element, cell: str | None = None) -> tuple[int, int]:
    """(row, col), 0-based, of the first button: the `buttons` cell, else two columns right of the used area, row 3."""
    if cell:
        m = re.fullmatch(r"([A-Z]{1,3})(\d+)", cell)
        if m:
            return int(m[2]) - 1, _col_number(m[1]) - 1
    dim = root.find(f"{{{NS}}}dimension")
    ref = dim.get("ref") if dim is not None else "A1"
    letters = re.match(r"[A-Z]+", ref.split(":")[-1])[0]
    return 2, _col_number(letters) + 1


def _col_number(letters: str) -> int:
    col = 0
    for ch in letters:
        col = col * 26 + ord(ch) - 64
    return col


def _buttons_vml(subs: list[str], row: int, col: int, *, shape_block: int) -> bytes:
    """A legacy VML drawing with one form-control button per Sub, stacked downwards from (row, col)."""
    shapes = []
    for i, sub in enumerate(subs):
        top = row + 3 * i
        anchor = f"{col}, 0, {top}, 0, {col + 2}, 0, {top + 2}, 0"
        style = (f"position:absolute;margin-left:{col * 48}pt;margin-top:{top * 15}pt;width:96pt;height:30pt;"
                 f"z-index:{i + 1};mso-wrap-style:tight")
        shapes.append(
            f'<v:shape id="_x0000_s{shape_block * 1024 + i + 1}" type="#_x0000_t201" style="{style}" o:button="t" '
            'fillcolor="buttonFace [67]" strokecolor="windowText [64]" o:insetmode="auto">'
            '<v:fill color2="buttonFace [67]" o:detectmouseclick="t"/><o:lock v:ext="edit" rotation="t"/>'
            '<v:textbox style="mso-direction-alt:auto" o:singleclick="f"><div style="text-align:center">'
            f'<font face="Calibri" size="220" color="#000000">{escape(CAPTIONS[sub])}</font></div></v:textbox>'
            f'<x:ClientData ObjectType="Button"><x:Anchor>{anchor}</x:Anchor><x:PrintObject>False</x:PrintObject>'
            f'<x:AutoFill>False</x:AutoFill><x:FmlaMacro>[0]!{sub}</x:FmlaMacro><x:TextHAlign>Center</x:TextHAlign>'
            '<x:TextVAlign>Center</x:TextVAlign></x:ClientData></v:shape>')
    return ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:x="urn:schemas-microsoft-com:office:excel">'
            f'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{shape_block}"/></o:shapelayout>'
            '<v:shapetype id="_x0000_t201" coordsize="21600,21600" o:spt="201" path="m,l,21600r21600,l21600,xe">'
            '<v:stroke joinstyle="miter"/><v:path shadowok="f" o:extrusionok="f" strokeok="f" fillok="f" '
            'o:connecttype="rect"/><o:lock v:ext="edit" shapetype="t"/></v:shapetype>'
            + "".join(shapes) + "</xml>").encode("utf-8")


def _conf_sheet_xml() -> bytes:
    """The xlwings.conf sheet: settings as key (column A) / value (column B) from A1, then a note after a gap."""
    def cell(ref: str, text: str) -> str:
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'
    rows = [f'<row r="{i}">{cell(f"A{i}", k)}{cell(f"B{i}", v)}</row>' for i, (k, v) in enumerate(CONF, start=1)]
    note = len(CONF) + 5  # rows below the settings stay empty: `xlcollab addin --workbook` adds the interpreter there
    rows.append(f'<row r="{note}">' + cell(f"A{note}", "xlwings reads the settings above (key in A, value in B, "
                                           "from A1 down to the first empty row); they override the add-in's.") + "</row>")
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS}" xmlns:r="{R_NS}">'
            f'<sheetPr/><dimension ref="A1:B{note}"/><sheetViews><sheetView workbookViewId="0"/></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/><cols><col min="1" max="1" width="22" customWidth="1"/>'
            '<col min="2" max="2" width="22" customWidth="1"/></cols>'
            f'<sheetData>{"".join(rows)}</sheetData>'
            '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>'
            ).encode("utf-8")


def _write_zip(parts: dict[str, bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            order = ["[Content_Types].xml"] + sorted(p for p in parts if p != "[Content_Types].xml")
            for name in order:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, parts[name])
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- a whole new sheet with charts, added to an existing workbook file ----------------------------------
DRAWING_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.drawing+xml"
CHART_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"


def render_sheet(spec) -> bytes:
    """A one-sheet .xlsx (openpyxl) holding `spec`: its values, column widths and native charts."""
    import io

    from openpyxl import Workbook
    from openpyxl.chart import LineChart, Reference, ScatterChart, Series

    from xlcollab.book.base import bounds

    wb = Workbook()
    ws = wb.active
    ws.title = spec.name
    for r, row in enumerate(spec.cells, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None:
                ws.cell(r, c, value)
    for letter, width in spec.widths.items():
        ws.column_dimensions[letter].width = width
    for ch in spec.charts:
        xr0, xc0, xr1, _ = bounds(ch.x)
        xref = Reference(ws, min_col=xc0, min_row=xr0, max_row=xr1)
        chart = LineChart() if ch.kind == "line" else ScatterChart()
        for name, ref in ch.series:
            r0, c0, r1, _ = bounds(ref)
            yref = Reference(ws, min_col=c0, min_row=r0, max_row=r1)
            if ch.kind == "line":
                chart.add_data(yref)
                chart.series[-1].tx = None
                from openpyxl.chart.series import SeriesLabel
                chart.series[-1].tx = SeriesLabel(v=name)
            else:
                series = Series(yref, xref, title=name)
                series.marker.symbol = "circle"
                series.graphicalProperties.line.noFill = True
                chart.series.append(series)
        if ch.kind == "line":
            chart.set_categories(xref)
        chart.title, chart.x_axis.title, chart.y_axis.title = ch.title, ch.x_title, ch.y_title
        chart.width, chart.height = ch.width_cm, ch.height_cm
        ws.add_chart(chart, ch.anchor)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def graft_sheet(path: Path, spec) -> Path:
    """Add sheet `spec.name` (values + charts) to the workbook at `path`, replacing it if it is the last sheet.

    The sheet is rendered by openpyxl into a scratch workbook, then its parts (sheet, drawing, charts) are
    moved in under free names, strings inlined and styles dropped (the two workbooks' style tables differ);
    every other part of `path` is copied unchanged, and the file is replaced in one step.
    """
    import io

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            parts = {n: zf.read(n) for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise WorkbookError(f"cannot read the workbook ({exc})", path=str(path)) from None
    with zipfile.ZipFile(io.BytesIO(render_sheet(spec))) as zf:
        fresh = {n: zf.read(n) for n in zf.namelist()}
    workbook = etree.fromstring(parts["xl/workbook.xml"])
    rels = etree.fromstring(parts["xl/_rels/workbook.xml.rels"])
    types = etree.fromstring(parts["[Content_Types].xml"])
    sheets_el = workbook.find(f"{{{NS}}}sheets")
    existing = [s for s in sheets_el if s.get("name") == spec.name]
    if existing:
        if existing[0] is not sheets_el[-1]:
            raise WorkbookError(f"has a sheet '{spec.name}' that is not the last one; delete or rename it first",
                                path=str(path))
        _drop_sheet(parts, workbook, rels, types, existing[0], len(sheets_el) - 1)
    strings = _shared_strings(fresh.get("xl/sharedStrings.xml"))
    sheet_part = _free_name(parts, "xl/worksheets/sheet{}.xml")
    sheet_xml = etree.fromstring(fresh["xl/worksheets/sheet1.xml"])
    for c in sheet_xml.iter(f"{{{NS}}}c"):
        c.attrib.pop("s", None)
        if c.get("t") == "s":
            v = c.find(f"{{{NS}}}v")
            c.remove(v)
            c.set("t", "inlineStr")
            t = etree.SubElement(etree.SubElement(c, f"{{{NS}}}is"), f"{{{NS}}}t")
            t.text = strings[int(v.text)]
            t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    for view in sheet_xml.iter(f"{{{NS}}}sheetView"):
        view.attrib.pop("tabSelected", None)
    for cols in sheet_xml.iter(f"{{{NS}}}col"):
        cols.attrib.pop("style", None)
    fresh_rels = _rels_of("xl/worksheets/sheet1.xml")
    if fresh_rels in fresh:
        srels = etree.fromstring(fresh[fresh_rels])
        for rel in srels:
            drawing_src = "xl/drawings/" + rel.get("Target").rsplit("/", 1)[1]
            drawing_part = _free_name(parts, "xl/drawings/drawing{}.xml")
            rel.set("Target", "../drawings/" + drawing_part.rsplit("/", 1)[1])
            drels = etree.fromstring(fresh[_rels_of(drawing_src)])
            for crel in drels:
                chart_part = _free_name(parts, "xl/charts/chart{}.xml")
                parts[chart_part] = fresh["xl/charts/" + crel.get("Target").rsplit("/", 1)[1]]
                crel.set("Target", "../charts/" + chart_part.rsplit("/", 1)[1])
                etree.SubElement(types, f"{{{CT_NS}}}Override", PartName="/" + chart_part, ContentType=CHART_CONTENT_TYPE)
            parts[drawing_part] = fresh[drawing_src]
            parts[_rels_of(drawing_part)] = _xml(drels)
            etree.SubElement(types, f"{{{CT_NS}}}Override", PartName="/" + drawing_part, ContentType=DRAWING_CONTENT_TYPE)
        parts[_rels_of(sheet_part)] = _xml(srels)
    parts[sheet_part] = _xml(sheet_xml)
    etree.SubElement(types, f"{{{CT_NS}}}Override", PartName="/" + sheet_part, ContentType=WORKSHEET_CONTENT_TYPE)
    rid = _free_id({r.get("Id") for r in rels}, "rId{}")
    etree.SubElement(rels, f"{{{PKG_NS}}}Relationship", Id=rid, Type=WORKSHEET_REL, Target=sheet_part.removeprefix("xl/"))
    sheet_id = max([int(s.get("sheetId")) for s in sheets_el] + [0]) + 1
    el = etree.SubElement(sheets_el, f"{{{NS}}}sheet", name=spec.name, sheetId=str(sheet_id))
    el.set(f"{{{R_NS}}}id", rid)
    # a macro-enabled book keeps its VBA project as it is: Excel gives a sheet without a code name its own
    # document module when it opens the file (rebuilding the project here would drop the user's VBA edits)
    parts["xl/workbook.xml"] = _xml(workbook)
    parts["xl/_rels/workbook.xml.rels"] = _xml(rels)
    parts["[Content_Types].xml"] = _xml(types)
    _write_zip(parts, path)
    return path


def _shared_strings(xml: bytes | None) -> list[str]:
    if xml is None:
        return []
    root = etree.fromstring(xml)
    return ["".join(si.itertext()) for si in root.findall(f"{{{NS}}}si")]


def _sheet_part(rels: etree._Element, sheet: etree._Element) -> str:
    target = {r.get("Id"): r.get("Target") for r in rels}[sheet.get(f"{{{R_NS}}}id")]
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def _drop_sheet(parts: dict, workbook: etree._Element, rels: etree._Element, types: etree._Element,
                sheet: etree._Element, index: int) -> None:
    """Remove the last sheet with its drawing and charts (the ones an earlier graft added)."""
    part = _sheet_part(rels, sheet)
    gone = [part]
    rel_part = _rels_of(part)
    if rel_part in parts:
        for rel in etree.fromstring(parts[rel_part]):
            if rel.get("Type").endswith("/drawing"):
                drawing = os.path.normpath(f"xl/worksheets/{rel.get('Target')}").replace(os.sep, "/")
                gone.append(drawing)
                drels = _rels_of(drawing)
                if drels in parts:
                    for crel in etree.fromstring(parts[drels]):
                        gone.append(os.path.normpath(f"xl/drawings/{crel.get('Target')}").replace(os.sep, "/"))
                    gone.append(drels)
        gone.append(rel_part)
    for name in gone:
        parts.pop(name, None)
    for el in list(types):
        if el.get("PartName", "").lstrip("/") in gone:
            types.remove(el)
    for rel in list(rels):
        if rel.get("Id") == sheet.get(f"{{{R_NS}}}id"):
            rels.remove(rel)
    sheet.getparent().remove(sheet)
    names = workbook.find(f"{{{NS}}}definedNames")
    if names is not None:
        for dn in list(names):
            if dn.get("localSheetId") == str(index):
                names.remove(dn)
