"""What every bundled tab shares when it is built: styles, number formats, named blocks, Excel Solver's model,
charts, notes and the printed page.

Named blocks are sheet-scoped defined names (openpyxl 3.1 `ws.defined_names`) with absolute targets;
Excel Solver's own model is stored as hidden sheet-scoped names, exactly as Excel writes them, so Excel's
Solver still runs on our sheets beside ours.
"""
from __future__ import annotations

import datetime
import io
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl.chart import Reference, ScatterChart, Series
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.utils.cell import absolute_coordinate, quote_sheetname
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.book.base import range_name
from xlcollab.book.filebook import FileBook
from xlcollab.book.ooxml import FIXED_TIME, Package
from xlcollab.core.settings import SOLVE_ENGINES, SOLVE_OPTIMIZERS
from xlcollab.errors import WorkbookError
from xlcollab.solver.cached import buffer_formula_values

# Inputs (data you may edit), parameters (what the solver changes), outputs (formulas) look different.
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")      # pale yellow: data / settings you type
PARAM_FILL = PatternFill("solid", fgColor="DDEBF7")      # pale blue: what gradient descent changes
OUTPUT_FILL = PatternFill("solid", fgColor="E2EFDA")     # pale green: formulas
OBJECTIVE_FILL = PatternFill("solid", fgColor="F8CBAD")  # orange: the objective (RMSE / loss)
RECORD_FILL = PatternFill("solid", fgColor="EDEDED")     # grey: what a Run or Solve records (trace, last run)
FONT = "Calibri"
HEADER_FONT = Font(name=FONT, bold=True)
TITLE_FONT = Font(name=FONT, bold=True, size=14)
NOTE_FONT = Font(name=FONT, italic=True, color="595959")
THIN = Side(style="thin", color="BFBFBF")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTER = Alignment(horizontal="center")
WRAP = Alignment(wrap_text=True, vertical="top")
HEADER_WRAP = Alignment(wrap_text=True, vertical="bottom", horizontal="center")

STYLES = {"input": INPUT_FILL, "param": PARAM_FILL, "output": OUTPUT_FILL, "objective": OBJECTIVE_FILL,
          "record": RECORD_FILL}
# What the colours mean, in the words every tab's legend uses.
LEGEND = {"input": "yellow: inputs you may edit", "param": "blue: what gradient descent changes",
          "output": "green: formulas", "objective": "orange: the loss being minimised",
          "record": "grey: what the last Run or Solve recorded"}

# Number formats: fixed decimals where values stay within a few orders of magnitude, scientific (4 significant
# digits) where they span many (losses, gradients, second moments), whole numbers for counts and ids.
INT, FIX2, FIX3, FIX4, SCI = "0", "0.00", "0.000", "0.0000", "0.000E+00"
POINT_CM = 2.54 / 72            # a point (row heights are in points) in centimetres (chart sizes)
# line colours, one per series: told apart in print as on screen (matplotlib's tab10, then black)
PALETTE = ("1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B", "E377C2", "7F7F7F", "BCBD22", "17BECF",
           "000000")

# The "last run" block: label column + value column, in this order, on every solvable tab.
LAST_RUN_LABELS = ("optimizer", "lr", "epochs", "weight decay", "device", "seconds", "start RMSE", "final RMSE")

# The settings block the buttons (and `xlcollab solve`) read: the sheet-scoped name `settings` over rows of
# label | value, a blank value meaning the tab's default. What each label takes: the choices of a choice setting, the
# (low, high) of a whole number; lr is any number > 0. xlcollab.sheets.settings_cells checks the cells by these.
SETTING_CHOICES: dict[str, tuple[str, ...]] = {"optimizer": tuple(SOLVE_OPTIMIZERS), "device": ("auto", "cpu", "cuda"),
                                               "engine": SOLVE_ENGINES}
SETTING_WHOLE: dict[str, tuple[int, int]] = {"epochs": (1, 1_000_000), "multistart": (1, 100_000)}


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


def settings_block(ws: Worksheet, row: int, col: int, labels: Sequence[str]) -> str:
    """Rows of label | blank yellow input cell from (row, col), named `settings`; each value cell validated as its
    setting (a list for a choice, a whole number, a number > 0) so Excel refuses a bad entry as it is typed."""
    for i, label in enumerate(labels):
        ws.cell(row + i, col, label)
        cell = ws.cell(row + i, col + 1)
        cell.number_format, cell.fill, cell.border = "General", STYLES["input"], BOX
        rule, takes = _setting_rule(label)
        rule.allow_blank, rule.showErrorMessage, rule.errorTitle = True, True, label
        rule.error = f"{label}: {takes}, or blank for the tab's default"
        ws.add_data_validation(rule)
        rule.add(cell)
    return define_block(ws, "settings", row, col, row + len(labels) - 1, col + 1)


def _setting_rule(label: str) -> tuple[DataValidation, str]:
    """The data validation of one setting's cell and what it takes, in words."""
    if label in SETTING_CHOICES:
        choices = SETTING_CHOICES[label]
        return DataValidation(type="list", formula1='"' + ",".join(choices) + '"'), "one of " + ", ".join(choices)
    if label in SETTING_WHOLE:
        lo, hi = SETTING_WHOLE[label]
        return (DataValidation(type="whole", operator="between", formula1=str(lo), formula2=str(hi)),
                f"a whole number from {lo} to {hi}")
    return DataValidation(type="decimal", operator="greaterThan", formula1="0"), "a number > 0"


def xy_chart(ws: Worksheet, anchor: str, *, title: str, x_title: str, y_title: str,
             series: Sequence[tuple[str, Reference, Reference]], width: float = 15, height: float = 7.5,
             log_y: bool = False, y_format: str = "General") -> ScatterChart:
    """A native chart of lines over cell references: each series (title, x cells, y cells).

    A scatter chart with lines, so that the x axis is a value axis: blank rows below a trace are not plotted and the
    axis spans the filled rows only (the curve fills the plot after 5 epochs and after 5,000), its labels spaced by
    the chart program. Charts point at cells, so they redraw when a run or solve writes new values.
    """
    chart = ScatterChart()
    chart.title = title
    chart.x_axis.title, chart.y_axis.title = x_title, y_title
    chart.width, chart.height = width, height
    chart.x_axis.delete = chart.y_axis.delete = False
    chart.x_axis.number_format, chart.y_axis.number_format = "General", y_format
    chart.x_axis.majorTickMark = chart.y_axis.majorTickMark = "out"
    if log_y:
        chart.y_axis.scaling.logBase = 10
    for i, (name, xs, ys) in enumerate(series):
        line = Series(ys, xs, title=name)
        line.marker.symbol = "none"
        line.smooth = False
        line.graphicalProperties.line.solidFill = PALETTE[i % len(PALETTE)]
        line.graphicalProperties.line.width = 19050  # 1.5 pt, in EMU
        chart.series.append(line)
    chart.legend = chart.legend if len(series) > 1 else None
    ws.add_chart(chart, anchor)
    return chart


def note(ws: Worksheet, row: int, col: int, last_col: int, text: str, *, font: Font = NOTE_FONT,
         chars_per_line: float | None = None) -> None:
    """A wrapped note merged across columns col..last_col, its row tall enough for the lines it needs."""
    ws.cell(row, col, text).font = font
    ws.cell(row, col).alignment = WRAP
    if last_col > col:
        ws.merge_cells(start_row=row, start_column=col, end_row=row, end_column=last_col)
    width = chars_per_line or sum(column_width(ws, c) for c in range(col, last_col + 1)) * 0.8  # italic is wide
    lines = sum(max(1, -(-len(part) // max(1, int(width)))) for part in text.split("\n"))
    ws.row_dimensions[row].height = max(ws.row_dimensions[row].height or 15, 15 * lines + 2)


def column_width(ws: Worksheet, col: int, *, unset: float = 8.43) -> float:
    """The width of column `col` in characters; `unset` (Excel's default 8.43) where none was set."""
    from openpyxl.utils.cell import get_column_letter

    letter = get_column_letter(col)  # `in` first: looking a column up would create it with openpyxl's width 13
    return ws.column_dimensions[letter].width if letter in ws.column_dimensions else unset


def comment(ws: Worksheet, cell: str, text: str) -> None:
    """A cell comment (the red corner: hover to read) on a cell a student should look at."""
    ws[cell].comment = Comment(text, "xlcollab", width=260, height=max(60, 15 * (len(text) // 40 + 2)))


def print_one_page(ws: Worksheet, area: str) -> None:
    """Print `area` (the tab's main block) on one landscape page."""
    ws.print_area = area
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = ws.page_setup.fitToHeight = 1
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_options.gridLines = False


def legend(ws: Worksheet, row: int, col: int, items: Sequence[tuple[str, str]], *, span: int = 2) -> None:
    """The colour legend: (kind of cell, what it is on this tab), each in a filled cell merged over `span` columns."""
    for i, (kind, text) in enumerate(items):
        c = col + span * i
        cell = ws.cell(row, c, text)
        cell.fill, cell.border, cell.font, cell.alignment = STYLES[kind], BOX, Font(name=FONT, size=9), CENTER
        if span > 1:
            ws.merge_cells(start_row=row, start_column=c, end_row=row, end_column=c + span - 1)


def heading(ws: Worksheet, cell: str, text: str, explanation: str | None = None) -> None:
    """A bold title, with an italic explanatory note in the cell below."""
    ws[cell] = text
    ws[cell].font = TITLE_FONT
    if explanation:
        below = ws[cell].offset(row=1)
        below.value = explanation
        below.font = NOTE_FONT


def force_full_recalc(wb) -> None:
    """Ask Excel and LibreOffice to recalculate every formula when the file is opened."""
    wb.calculation.fullCalcOnLoad = True
    wb.calculation.calcMode = "auto"


def save_workbook(wb, path: str | Path) -> Path:
    """Save reproducibly (fixed document dates and zip entries: same seed, same bytes) and atomically, each formula's
    value cached beside it (computed by xlcollab's formula compiler), so readers that do not calculate see numbers."""
    stamp = datetime.datetime(*FIXED_TIME)
    wb.properties.created = wb.properties.modified = stamp
    wb.properties.creator = wb.properties.lastModifiedBy = "xlcollab"
    buffer = io.BytesIO()
    wb.save(buffer)
    with tempfile.TemporaryDirectory(prefix="xlcollab-build-") as scratch:
        draft = Path(scratch) / Path(path).name
        with Package(buffer, name=str(path)) as pkg:
            core = pkg.read("docProps/core.xml")  # openpyxl stamps "now" into modified regardless
            pkg.set("docProps/core.xml", re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2020-01-01T00:00:00Z", core))
            pkg.save(draft, reproducible=True)
        book = FileBook(draft, out=path)  # the draft's entries keep their fixed dates: still the same bytes
        try:
            buffer_formula_values(book)
            book.commit()
        finally:
            book.close()
    return Path(path)


def intro_sheet(ws: Worksheet, name: str, title: str, about: Sequence[str], tabs: Sequence[tuple[str, str]],
                how: Sequence[str]) -> None:
    """An `Intro` tab: what the workbook is, what each tab teaches, how to use it, what the colours mean."""
    ws.title = name
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 18, 110
    heading(ws, "A1", title)
    row = _paragraphs(ws, 3, about)
    row = _paragraphs(ws, _section(ws, row, "The tabs"), [text for _, text in tabs], column=2)
    for i, (tab, _) in enumerate(tabs, start=row - len(tabs)):
        ws.cell(i, 1, tab).font, ws.cell(i, 1).alignment = HEADER_FONT, WRAP
    row = _paragraphs(ws, _section(ws, row, "How to use it"), ["• " + text for text in how])
    row = _section(ws, row, "Colours")
    for kind, meaning in LEGEND.items():
        ws.cell(row, 1).fill, ws.cell(row, 1).border = STYLES[kind], BOX
        ws.cell(row, 2, meaning).font = Font(name=FONT)
        row += 1
    print_one_page(ws, f"A1:B{row}")


def _section(ws: Worksheet, row: int, title: str) -> int:
    """A section heading one row below `row`; the row its text starts on."""
    ws.cell(row + 1, 1, title).font = HEADER_FONT
    return row + 2


def _paragraphs(ws: Worksheet, row: int, texts: Sequence[str], *, column: int = 1) -> int:
    """One wrapped note per text from `row` down, starting in `column`; the row after the last."""
    for text in texts:
        note(ws, row, column, 2, text, font=Font(name=FONT))
        row += 1
    return row
