"""A whole new sheet with native charts, grafted into a workbook package: how a file takes `Book.put_sheet`.

openpyxl renders the sheet into a scratch workbook; its parts (sheet, drawing, charts) move into the
package under free names, strings inlined and styles dropped (the two workbooks' style tables differ).
Every other part of the package stays as it was: charts, defined names, form controls, a VBA project.
"""
from __future__ import annotations

import io

from lxml import etree
from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference, ScatterChart, Series
from openpyxl.chart.series import SeriesLabel

from xlcollab.book.base import bounds
from xlcollab.book.ooxml import (CONTENT_TYPES, PKG_NS, R_NS, WORKBOOK, WORKBOOK_RELS, WORKSHEET_CONTENT_TYPE,
                                 WORKSHEET_REL, XML_NS, Package, add_override, add_relationship, cell_text, free_name,
                                 q, rels_of, resolve, xml_bytes)
from xlcollab.book.spec import SheetSpec
from xlcollab.errors import WorkbookError

DRAWING_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.drawing+xml"
CHART_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"


def render_sheet(spec: SheetSpec) -> bytes:
    """A one-sheet .xlsx (openpyxl) holding `spec`: its values, column widths and native charts."""
    wb = Workbook()
    ws = wb.active
    ws.title = spec.name
    for r, row in enumerate(spec.cells, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None:
                cell = ws.cell(r, c, cell_text(value) if isinstance(value, str) else value)
                if isinstance(value, str):
                    cell.data_type = "s"  # text stays text: openpyxl would make "=..." a live formula
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


def graft_sheet(pkg: Package, spec: SheetSpec) -> None:
    """Add sheet `spec.name` (values + charts) to the package as its last sheet, replacing it if it is already last.

    A macro-enabled book keeps its VBA project as it is: Excel gives a sheet without a code name its own
    document module when it opens the file (rebuilding the project here would drop the user's VBA edits).
    """
    workbook, rels, types = pkg.tree(WORKBOOK), pkg.tree(WORKBOOK_RELS), pkg.tree(CONTENT_TYPES)
    sheets_el = workbook.find(q("sheets"))
    existing = [s for s in sheets_el if s.get("name") == spec.name]
    if existing:
        if existing[0] is not sheets_el[-1]:
            raise WorkbookError(f"has a sheet '{spec.name}' that is not the last one; delete or rename it first",
                                path=pkg.name)
        _drop_last_sheet(pkg, existing[0], len(sheets_el) - 1)
    with Package(io.BytesIO(render_sheet(spec)), name="the rendered sheet") as fresh:
        sheet_part = free_name(pkg, "xl/worksheets/sheet{}.xml")
        sheet_xml = _portable_sheet(fresh)
        fresh_rels = rels_of("xl/worksheets/sheet1.xml")
        if fresh_rels in fresh:
            srels = fresh.tree(fresh_rels)
            for rel in srels:
                drawing_src = resolve("xl/worksheets/sheet1.xml", rel.get("Target"))
                drawing_part = free_name(pkg, "xl/drawings/drawing{}.xml")
                rel.set("Target", "../drawings/" + drawing_part.rsplit("/", 1)[1])
                drels = fresh.tree(rels_of(drawing_src))
                for crel in drels:
                    chart_part = free_name(pkg, "xl/charts/chart{}.xml")
                    pkg.set(chart_part, fresh.read(resolve(drawing_src, crel.get("Target"))))
                    crel.set("Target", "../charts/" + chart_part.rsplit("/", 1)[1])
                    add_override(types, chart_part, CHART_CONTENT_TYPE)
                pkg.set(drawing_part, fresh.read(drawing_src))
                pkg.set(rels_of(drawing_part), xml_bytes(drels))
                add_override(types, drawing_part, DRAWING_CONTENT_TYPE)
            pkg.set(rels_of(sheet_part), xml_bytes(srels))
    pkg.set(sheet_part, xml_bytes(sheet_xml))
    add_override(types, sheet_part, WORKSHEET_CONTENT_TYPE)
    rid = add_relationship(rels, WORKSHEET_REL, sheet_part.removeprefix("xl/"))
    sheet_id = max([int(s.get("sheetId")) for s in sheets_el] + [0]) + 1
    el = etree.SubElement(sheets_el, q("sheet"), name=spec.name, sheetId=str(sheet_id))
    el.set(q("id", R_NS), rid)


def _portable_sheet(fresh: Package) -> etree._Element:
    """The rendered sheet's XML with shared strings inlined and style references dropped."""
    strings = []
    if "xl/sharedStrings.xml" in fresh:
        strings = ["".join(si.itertext()) for si in fresh.tree("xl/sharedStrings.xml").findall(q("si"))]
    sheet_xml = fresh.tree("xl/worksheets/sheet1.xml")
    for c in sheet_xml.iter(q("c")):
        c.attrib.pop("s", None)
        if c.get("t") == "s":
            v = c.find(q("v"))
            c.remove(v)
            c.set("t", "inlineStr")
            t = etree.SubElement(etree.SubElement(c, q("is")), q("t"))
            t.text = strings[int(v.text)]
            t.set(f"{{{XML_NS}}}space", "preserve")
    for view in sheet_xml.iter(q("sheetView")):
        view.attrib.pop("tabSelected", None)
    for cols in sheet_xml.iter(q("col")):
        cols.attrib.pop("style", None)
    return sheet_xml


def _drop_last_sheet(pkg: Package, sheet: etree._Element, index: int) -> None:
    """Remove the last sheet with its drawing and charts (the ones an earlier graft added) and its names."""
    workbook, rels, types = pkg.tree(WORKBOOK), pkg.tree(WORKBOOK_RELS), pkg.tree(CONTENT_TYPES)
    rid = sheet.get(q("id", R_NS))
    part = resolve(WORKBOOK, next(r.get("Target") for r in rels if r.get("Id") == rid))
    gone = [part]
    rel_part = rels_of(part)
    if rel_part in pkg:
        for rel in pkg.tree(rel_part):
            if rel.get("Type").endswith("/drawing"):
                drawing = resolve(part, rel.get("Target"))
                gone.append(drawing)
                drels = rels_of(drawing)
                if drels in pkg:
                    gone += [resolve(drawing, crel.get("Target")) for crel in pkg.tree(drels)]
                    gone.append(drels)
        gone.append(rel_part)
    for name in gone:
        pkg.drop(name)
    for el in list(types):
        if el.get("PartName", "").lstrip("/") in gone:
            types.remove(el)
    for rel in list(rels.iter(q("Relationship", PKG_NS))):
        if rel.get("Id") == rid:
            rels.remove(rel)
    sheet.getparent().remove(sheet)
    names = workbook.find(q("definedNames"))
    if names is not None:
        for dn in list(names):
            if dn.get("localSheetId") == str(index):
                names.remove(dn)
