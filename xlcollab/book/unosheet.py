"""A whole sheet with native charts in a live LibreOffice Calc document: how UnoBook takes `put_sheet`."""
from __future__ import annotations

from typing import Any

from openpyxl.utils.cell import column_index_from_string

from xlcollab.book.spec import Chart, SheetSpec


def put_sheet(doc: Any, spec: SheetSpec) -> None:
    """Create or replace sheet `spec.name` (last) with its values, column widths and charts, then recalculate.

    A chart's series names come from the row above its ranges (the header row of the table).
    """
    sheets = doc.Sheets
    if sheets.hasByName(spec.name):
        sheets.removeByName(spec.name)
    sheets.insertNewByName(spec.name, sheets.Count)
    sh = sheets.getByName(spec.name)
    index = list(sheets.ElementNames).index(spec.name)
    width = max((len(r) for r in spec.cells), default=0)
    if width:
        rows = tuple(tuple("" if v is None else (v if isinstance(v, str) else float(v)) for v in row)
                     + ("",) * (width - len(row)) for row in spec.cells)
        sh.getCellRangeByPosition(0, 0, width - 1, len(rows) - 1).setDataArray(rows)
        for r, row in enumerate(spec.cells):  # setDataArray leaves "" as empty text: clear those cells
            for c, v in enumerate(row):
                if v is None or v == "":
                    sh.getCellByPosition(c, r).setString("")
    for letter, chars in spec.widths.items():
        sh.Columns.getByIndex(column_index_from_string(letter) - 1).Width = int(chars * 200)
    for i, ch in enumerate(spec.charts):
        _add_chart(sh, index, ch, f"xlcollab_chart_{i + 1}")
    doc.calculateAll()


def _add_chart(sh: Any, index: int, ch: Chart, name: str) -> None:
    from com.sun.star.awt import Rectangle  # type: ignore[import-not-found]
    from com.sun.star.table import CellRangeAddress  # type: ignore[import-not-found]

    r0, c0, r1, c1 = ch.table()
    addr = CellRangeAddress()
    addr.Sheet, addr.StartColumn, addr.StartRow, addr.EndColumn, addr.EndRow = index, c0 - 1, r0 - 1, c1 - 1, r1 - 1
    pos = sh.getCellRangeByName(ch.anchor).Position
    rect = Rectangle(pos.X, pos.Y, int(ch.width_cm * 1000), int(ch.height_cm * 1000))
    sh.Charts.addNewByName(name, rect, (addr,), True, ch.kind == "line")
    chart = sh.Charts.getByName(name).EmbeddedObject
    diagram = chart.createInstance("com.sun.star.chart.LineDiagram" if ch.kind == "line"
                                   else "com.sun.star.chart.XYDiagram")
    chart.setDiagram(diagram)
    if ch.kind != "line":
        diagram.Lines = False  # points only
    chart.HasMainTitle = True
    chart.Title.String = ch.title
    diagram.HasXAxisTitle = diagram.HasYAxisTitle = True
    diagram.XAxisTitle.String, diagram.YAxisTitle.String = ch.x_title, ch.y_title


def charts(sh: Any) -> list[dict[str, Any]]:
    """What Calc shows as charts on a sheet: type, title, axis titles, series count."""
    out = []
    for name in sh.Charts.ElementNames:
        chart = sh.Charts.getByName(name).EmbeddedObject
        diagram = chart.getDiagram()
        out.append({"type": diagram.getDiagramType(),
                    "title": chart.Title.String if chart.HasMainTitle else None,
                    "x_title": diagram.XAxisTitle.String if diagram.HasXAxisTitle else None,
                    "y_title": diagram.YAxisTitle.String if diagram.HasYAxisTitle else None,
                    "series": len(chart.getFirstDiagram().getCoordinateSystems()[0].getChartTypes()[0].getDataSeries())})
    return out
