"""Turn a built .xlsx into a macro-enabled .xlsm: a VBA project, one button per macro on each tab, xlwings.conf.

Nothing here needs Excel. The VBA project (xl/vbaProject.bin) comes from `xlcollab.excel.vba`: a document
module per sheet and the `xlcollab` module whose Subs run the Python macros. The buttons are Excel form
controls in each sheet's legacy VML drawing,
bound to those Subs (`<x:FmlaMacro>[0]!XcSolve`), the way XlsxWriter's `insert_button` writes them. The
.xlsx is post-processed part by part (the workbook, content types, the sheets that get buttons); every
other part is copied byte for byte, so charts and defined names survive.
"""
from __future__ import annotations

import re
from pathlib import Path
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from lxml import etree

from xlcollab.book.ooxml import (CONTENT_TYPES, CT_NS, NS, PKG_NS, R_NS, WORKBOOK, WORKBOOK_RELS, WORKSHEET_CONTENT_TYPE,
                                 WORKSHEET_REL, Package, add_override, add_relationship, free_name, q, rels_of,
                                 resolve)
from xlcollab.errors import WorkbookError, XlcollabError
from xlcollab.excel.conf import conf_sheet_xml
from xlcollab.excel.vba import MACROS, workbook_project

CONF_SHEET = "xlwings.conf"
CONF = (("UDF Modules", "xlcollab.excel"),)
MACRO_ENABLED = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
VBA_CONTENT_TYPE = "application/vnd.ms-office.vbaProject"
VML_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.vmlDrawing"
VBA_REL = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
VML_REL = f"{R_NS}/vmlDrawing"


CAPTIONS = {"XcSolve": "Solve", "XcRun": "Run", "XcReset": "Reset", "XcFitMovielens": "Fit MovieLens"}

# Worksheet children that must come after <legacyDrawing> (ECMA-376 CT_Worksheet order).
_AFTER_LEGACY = {"legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems",
                 "tableParts", "extLst"}


def button_subs(buttons: Mapping[str, Sequence[str]], sheets: list[str]) -> dict[str, list[str]]:
    """{tab: [VBA Sub]} for the tabs of `sheets` that `buttons` ({tab: (macro, ...)}, as sheets/ declares it) names."""
    subs = {macro: sub for sub, macro in MACROS.items()}
    for tab, macros in buttons.items():
        for macro in macros:
            if macro not in subs:
                raise XlcollabError(f"tab '{tab}' asks for a button for '{macro}', which is no macro of xlcollab.excel "
                                    f"(buttons exist for {', '.join(subs)})")
    return {s: [subs[m] for m in buttons[s]] for s in sheets if buttons.get(s)}


def make_xlsm(xlsx_path: Path, xlsm_path: Path, buttons: Mapping[str, Sequence[str]]) -> Path:
    """Write `xlsm_path`: the sheets of `xlsx_path` plus the VBA project, an xlwings.conf sheet and the buttons
    `buttons` names per tab (macro names: `xlcollab.sheets.collab.BUTTONS`, `xlcollab.sheets.graddesc.BUTTONS`)."""
    xlsx_path, xlsm_path = Path(xlsx_path), Path(xlsm_path)
    with Package(xlsx_path) as pkg:
        if "xl/vbaProject.bin" in pkg:
            raise WorkbookError("already holds a VBA project; build from the plain .xlsx", path=str(xlsx_path))
        book = pkg.workbook()
        if CONF_SHEET in book.order:
            raise WorkbookError(f"already has a '{CONF_SHEET}' sheet", path=str(xlsx_path))
        workbook, rels, types = pkg.tree(WORKBOOK), pkg.tree(WORKBOOK_RELS), pkg.tree(CONTENT_TYPES)
        sheet_parts = [(name, book.parts[name]) for name in book.order]

        # the xlwings.conf sheet, last
        conf_part = free_name(pkg, "xl/worksheets/sheet{}.xml")
        pkg.set(conf_part, _conf_sheet_xml())
        conf_rid = add_relationship(rels, WORKSHEET_REL, conf_part.removeprefix("xl/"))
        sheets_el = workbook.find(q("sheets"))
        sheet_id = max(int(s.get("sheetId")) for s in sheets_el) + 1
        conf = etree.SubElement(sheets_el, q("sheet"), name=CONF_SHEET, sheetId=str(sheet_id))
        conf.set(q("id", R_NS), conf_rid)
        add_override(types, conf_part, WORKSHEET_CONTENT_TYPE)
        sheet_parts.append((CONF_SHEET, conf_part))

        # code names: ThisWorkbook and Sheet1..N, in workbook order
        codenames = [f"Sheet{i}" for i in range(1, len(sheet_parts) + 1)]
        pr = workbook.find(q("workbookPr"))
        if pr is None:
            pr = etree.Element(q("workbookPr"))
            anchor = workbook.find(q("fileVersion"))
            workbook.insert(0 if anchor is None else workbook.index(anchor) + 1, pr)
        pr.set("codeName", "ThisWorkbook")
        subs = button_subs(buttons, [name for name, _ in sheet_parts])
        anchors = {name: names["buttons"].split("!")[-1].split(":")[0].replace("$", "")
                   for name, names in book.local_names.items() if "buttons" in names}
        vml_n = 0
        for (name, part), codename in zip(sheet_parts, codenames):
            root = pkg.tree(part)
            _set_codename(root, codename)
            legacy = root.find(q("legacyDrawing"))
            if name in subs and legacy is not None:  # the tab's cell comments: their drawing takes the buttons too
                row, col = _button_anchor(root, anchors.get(name))
                block = 100 + codenames.index(codename)  # shape ids clear of the comments' (openpyxl's from 1025)
                _merge_buttons(pkg, part, legacy, _buttons_vml(subs[name], row, col, shape_block=block))
            elif name in subs:
                vml_n = _add_buttons(pkg, name, part, root, subs[name], anchors.get(name), vml_n + 1)

        # the VBA project, and the workbook declared macro-enabled
        pkg.set("xl/vbaProject.bin", workbook_project(codenames))
        add_relationship(rels, VBA_REL, "vbaProject.bin")
        for el in types.findall(q("Override", CT_NS)):
            if el.get("PartName") == "/" + WORKBOOK:
                el.set("ContentType", MACRO_ENABLED)
        defaults = {el.get("Extension") for el in types.findall(q("Default", CT_NS))}
        for ext, ctype in (("bin", VBA_CONTENT_TYPE), ("vml", VML_CONTENT_TYPE)):
            if ext not in defaults:
                types.insert(0, etree.Element(q("Default", CT_NS), Extension=ext, ContentType=ctype))
        return pkg.save(xlsm_path, reproducible=True)


# -- parts ------------------------------------------------------------------------------------------
def _add_buttons(pkg: Package, sheet: str, part: str, root: etree._Element, subs: list[str], cell: str | None,
                 block: int) -> int:
    """Give a sheet its buttons: a VML drawing (shape block >= `block`), its relationship and <legacyDrawing>."""
    vml_part = free_name(pkg, "xl/drawings/vmlDrawing{}.vml", start=block)
    block = int(re.search(r"(\d+)\.vml$", vml_part)[1])
    row, col = _button_anchor(root, cell)
    pkg.set(vml_part, _buttons_vml(subs, row, col, shape_block=block))
    rel_part = rels_of(part)
    if rel_part not in pkg:
        pkg.put_tree(rel_part, etree.Element(q("Relationships", PKG_NS), nsmap={None: PKG_NS}))
    rid = add_relationship(pkg.tree(rel_part), VML_REL, "../drawings/" + vml_part.rsplit("/", 1)[1])
    _add_legacy_drawing(root, rid, sheet=sheet, path=pkg.name)
    return block


def _set_codename(root: etree._Element, codename: str) -> None:
    pr = root.find(q("sheetPr"))
    if pr is None:
        pr = etree.Element(q("sheetPr"))
        root.insert(0, pr)
    pr.set("codeName", codename)


def _add_legacy_drawing(root: etree._Element, rid: str, *, sheet: str, path: str) -> None:
    if root.find(q("legacyDrawing")) is not None:
        raise WorkbookError("already has a legacy drawing (comments or controls); cannot add buttons", sheet=sheet, path=path)
    el = etree.Element(q("legacyDrawing"))
    el.set(q("id", R_NS), rid)
    for i, child in enumerate(root):
        if etree.QName(child).localname in _AFTER_LEGACY:
            root.insert(i, el)
            return
    root.append(el)


def _merge_buttons(pkg: Package, sheet_part: str, legacy: etree._Element, buttons_vml: bytes) -> None:
    """Add the button shapes of `buttons_vml` to the sheet's legacy VML drawing (its comments): a sheet has one
    legacy drawing. The buttons keep their own shape-id block, which the drawing's idmap then lists too."""
    rid = legacy.get(q("id", R_NS))
    target = next(r.get("Target") for r in pkg.tree(rels_of(sheet_part)) if r.get("Id") == rid)
    vml_part = resolve(sheet_part, target)
    drawing, extra = etree.fromstring(pkg.read(vml_part)), etree.fromstring(buttons_vml)
    office = "urn:schemas-microsoft-com:office:office"
    idmap, more = drawing.find(f".//{{{office}}}idmap"), extra.find(f".//{{{office}}}idmap")
    if idmap is not None and more is not None:
        idmap.set("data", f"{idmap.get('data')},{more.get('data')}")
    for child in extra:
        if etree.QName(child).localname != "shapelayout":
            drawing.append(child)
    pkg.set(vml_part, etree.tostring(drawing))


def _button_anchor(root: etree._Element, cell: str | None = None) -> tuple[int, int]:
    """(row, col), 0-based, of the first button: the `buttons` cell, else two columns right of the used area, row 3."""
    if cell:
        m = re.fullmatch(r"([A-Z]{1,3})(\d+)", cell)
        if m:
            return int(m[2]) - 1, _col_number(m[1]) - 1
    dim = root.find(q("dimension"))
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
    """The xlwings.conf sheet: the settings, then a note on how xlwings reads them."""
    return conf_sheet_xml(list(CONF), "xlwings reads the settings above (key in A, value in B, from A1 down to the "
                                      "first empty row); they override the add-in's.")
