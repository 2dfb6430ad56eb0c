"""What every bundled tab shares when it is built: styles, named blocks, Excel Solver's model, charts.

Named blocks are sheet-scoped defined names (openpyxl 3.1 `ws.defined_names`) with absolute targets;
Excel Solver's own model is stored as hidden sheet-scoped names, exactly as Excel writes them, so Excel's
Solver still runs on our sheets beside ours.
"""
from __future__ import annotations

import datetime
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.utils.cell import absolute_coordinate, quote_sheetname
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.book.base import range_name
from xlcollab.book.ooxml import FIXED_TIME, Package
from xlcollab.errors import WorkbookError

# Inputs (data you may edit), parameters (what the solver changes), outputs (formulas) look different.
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")      # pale yellow: data / settings you type
PARAM_FILL = PatternFill("solid", fgColor="DDEBF7")      # pale blue: what gradient descent changes
OUTPUT_FILL = PatternFill("solid", fgColor="E2EFDA")     # pale green: formulas
OBJECTIVE_FILL = PatternFill("solid", fgColor="F8CBAD")  # orange: the objective (RMSE / loss)
HEADER_FONT = Font(bold=True)
TITLE_FONT = Font(bold=True, size=14)
NOTE_FONT = Font(italic=True, color="595959")
THIN = Side(style="thin", color="BFBFBF")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTER = Alignment(horizontal="center")

STYLES = {"input": INPUT_FILL, "param": PARAM_FILL, "output": OUTPUT_FILL, "objective": OBJECTIVE_FILL}

# The "last run" block: label column + value column, in this order, on every solvable tab.
LAST_RUN_LABELS = ("optimizer", "lr", "epochs", "weight decay", "device", "seconds", "start RMSE", "final RMSE")


def pick_tabs(sheets: str | Iterable[str], allowed: Sequence[str], refusal: str, *, path: str | None = None) -> list[str]:
    """The tabs an action works on: "all" means every one of `allowed`; a name not in `allowed` is refused
    with one message, `refusal` followed by the tabs it does work on."""
    if sheets == "all" or (not isinstance(sheets, str) and list(sheets) == ["all"]):
        return list(allowed)
    names = [sheets] if isinstance(sheets, str) else list(sheets)
    for name in names or [""]:
        if name not in allowed:
            raise WorkbookError(f"{refusal} ({', '.join(allowed)}, or all), not on this one", sheet=name or None,
                                path=path)
    return names


def target(ws: Worksheet, min_row: int, min_col: int, max_row: int | None = None, max_col: int | None = None) -> str:
    """"'sheet'!$B$3:$P$17": the absolute, sheet-qualified target a defined name needs."""
    ref = range_name(min_row, min_col, max_row or min_row, max_col or min_col)
    return f"{quote_sheetname(ws.title)}!{absolute_coordinate(ref)}"


def define(ws: Worksheet, name: str, value: str, *, hidden: bool = False) -> None:
    """Add (or replace) a sheet-scoped defined name."""
    ws.defined_names[name] = DefinedName(name, attr_text=value, hidden=hidden or None)


def define_block(ws: Worksheet, name: str, min_row: int, min_col: int, max_row: int | None = None,
                 max_col: int | None = None, *, style: str | None = None) -> str:
    """Name a block of cells on its own sheet, optionally fill it with one of STYLES; returns the target."""
    ref = target(ws, min_row, min_col, max_row, max_col)
    define(ws, name, ref)
    if style:
        for row in ws.iter_rows(min_row=min_row, max_row=max_row or min_row, min_col=min_col, max_col=max_col or min_col):
            for cell in row:
                cell.fill = STYLES[style]
                cell.border = BOX
    return ref


def store_solver_model(ws: Worksheet, objective: str, variables: Sequence[str], *, goal: int = 2,
                       engine: int = 1, nonnegative: bool = False) -> None:
    """Excel Solver's model as Excel itself saves it: hidden sheet-scoped solver_* names.

    `objective` and `variables` are targets from `target()`; goal 1 max, 2 min, 3 value-of;
    engine 1 GRG Nonlinear, 2 Simplex LP, 3 Evolutionary.
    """
    model: dict[str, Any] = {
        "solver_adj": ",".join(variables),
        "solver_cvg": "0.0001",
        "solver_drv": "1",
        "solver_eng": str(engine),
        "solver_est": "1",
        "solver_itr": "2147483647",
        "solver_mip": "2147483647",
        "solver_mni": "30",
        "solver_mrt": "0.075",
        "solver_msl": "2",
        "solver_neg": "1" if nonnegative else "2",
        "solver_nod": "2147483647",
        "solver_num": "0",
        "solver_nwt": "1",
        "solver_opt": objective,
        "solver_pre": "0.000001",
        "solver_rbv": "1",
        "solver_rlx": "2",
        "solver_rsd": "0",
        "solver_scl": "1",
        "solver_sho": "2",
        "solver_ssz": "100",
        "solver_tim": "2147483647",
        "solver_tol": "0.01",
        "solver_typ": str(goal),
        "solver_val": "0",
        "solver_ver": "3",
    }
    for name, value in model.items():
        define(ws, name, value, hidden=True)


def write_last_run(ws: Worksheet, row: int, col: int) -> str:
    """Lay out the empty "last run" block (labels + blank values) at (row, col); name it `last_run`."""
    ws.cell(row, col, "last run").font = HEADER_FONT
    for i, label in enumerate(LAST_RUN_LABELS, start=1):
        ws.cell(row + i, col, label)
    return define_block(ws, "last_run", row + 1, col + 1, row + len(LAST_RUN_LABELS), col + 1, style="output")


def line_chart(ws: Worksheet, anchor: str, *, title: str, x_title: str, y_title: str,
               data: Reference, categories: Reference | None = None, width: float = 15, height: float = 7.5) -> LineChart:
    """A native line chart over cell references (it redraws when a solve writes new values)."""
    chart = LineChart()
    chart.title, chart.x_axis.title, chart.y_axis.title = title, x_title, y_title
    chart.width, chart.height = width, height
    chart.add_data(data, titles_from_data=True)
    if categories is not None:
        chart.set_categories(categories)
    for series in chart.series:
        series.smooth = False
    ws.add_chart(chart, anchor)
    return chart


def heading(ws: Worksheet, cell: str, text: str, note: str | None = None) -> None:
    """A bold title, with an italic explanatory note in the cell below."""
    ws[cell] = text
    ws[cell].font = TITLE_FONT
    if note:
        below = ws[cell].offset(row=1)
        below.value = note
        below.font = NOTE_FONT


def force_full_recalc(wb) -> None:
    """Ask Excel and LibreOffice to recalculate every formula when the file is opened."""
    wb.calculation.fullCalcOnLoad = True
    wb.calculation.calcMode = "auto"


def save_workbook(wb, path: str | Path) -> Path:
    """Save reproducibly (fixed document dates and zip entries: same seed, same bytes) and atomically."""
    stamp = datetime.datetime(*FIXED_TIME)
    wb.properties.created = wb.properties.modified = stamp
    wb.properties.creator = wb.properties.lastModifiedBy = "xlcollab"
    buffer = io.BytesIO()
    wb.save(buffer)
    with Package(buffer, name=str(path)) as pkg:
        core = pkg.read("docProps/core.xml")  # openpyxl stamps "now" into modified regardless
        pkg.set("docProps/core.xml", re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2020-01-01T00:00:00Z", core))
        return pkg.save(path, reproducible=True)
