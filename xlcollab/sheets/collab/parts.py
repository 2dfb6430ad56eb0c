"""The parts every collab_filter tab is built from: the RMSE and "last run" panel, the RMSE-by-epoch trace and its
Solver's model, and the small cell helpers the tab builders share."""
from __future__ import annotations

import numpy as np
from openpyxl.chart import Reference
from openpyxl.styles import Alignment
from openpyxl.utils.cell import get_column_letter as L
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.core.settings import SOLVE, SOLVE_OPTIMIZERS
from xlcollab.sheets.collab.layout import DEFAULTS, SOLVER_LIMIT, TRACE_ROWS, Y_RANGE
from xlcollab.sheets.common import (BOX, FIX2, FIX4, HEADER_FONT, HEADER_WRAP, INT, LAST_RUN_LABELS, NOTE_FONT, STYLES,
                                    column_width, comment, define_block, settings_block, store_solver_model, target,
                                    xy_chart)

RATING_FMT, PARAM_FMT, PRED_FMT = "0.0", "0.000", '0.00;-0.00;""'   # zero predictions (blank ratings) show nothing
RMSE_FMT = FIX4
TOP = 4             # first row under the title, its note and the colour legend
BUTTONS_ROW = 5     # the .xlsm's buttons go at A5 on the long-form tabs, B5 on the crosstab tabs (two columns wide)
# the number format of each "last run" value, in LAST_RUN_LABELS order
LAST_RUN_FORMATS = ("General", "General", INT, "General", "General", FIX2, RMSE_FMT, RMSE_FMT)
LEGEND = [("input", "yellow: data you edit"), ("param", "blue: what Solve fits"), ("output", "green: formulas"),
          ("objective", "orange: the RMSE"), ("record", "grey: what Solve wrote")]
LEGEND_SPAN = 3     # columns per legend entry
SETTINGS_COL = 3    # the settings block (label, value, default) starts this many columns right of the panel
SETTINGS_LABELS = ("optimizer", "lr", "epochs", "device", "multistart")  # engine: a collab tab is GRG's alone
CHART_COL = 7       # the RMSE chart (15 cm wide) starts this many columns right of the panel, right of the settings
CHART_END = 16      # and ends this many columns right of the panel


def a(col: int, row: int) -> str:
    """Absolute address: $B$3."""
    return f"${L(col)}${row}"


def rng(c0: int, r0: int, c1: int, r1: int, *, absolute: bool = True) -> str:
    """A range, absolute ($B$3:$F$17) or relative (B3:F17)."""
    if absolute:
        return f"{a(c0, r0)}:{a(c1, r1)}"
    return f"{L(c0)}{r0}:{L(c1)}{r1}"


def fill(ws: Worksheet, row: int, col: int, values: np.ndarray, fmt: str | None = None) -> None:
    """Write a 2-D block of numbers from (row, col)."""
    for i, line in enumerate(np.atleast_2d(values)):
        for j, v in enumerate(line):
            cell = ws.cell(row + i, col + j, float(v))
            if fmt:
                cell.number_format = fmt


def label(ws: Worksheet, row: int, col: int, text: str, *, bold: bool = True, wrap: bool = False) -> None:
    cell = ws.cell(row, col, text)
    if bold:
        cell.font = HEADER_FONT
    if wrap:
        cell.alignment = HEADER_WRAP


def caption(ws: Worksheet, row: int, col: int, last_col: int, text: str) -> None:
    """A bold caption over a block, merged across its columns and wrapped (it never runs into the next one)."""
    label(ws, row, col, text)
    ws.cell(row, col).alignment = Alignment(wrap_text=True, vertical="bottom")
    if last_col > col:
        ws.merge_cells(start_row=row, start_column=col, end_row=row, end_column=last_col)
    width = sum(column_width(ws, c) for c in range(col, last_col + 1))
    lines = -(-len(text) // max(1, int(width * 0.9)))
    ws.row_dimensions[row].height = max(ws.row_dimensions[row].height or 15, 15 * lines + 2)


def widths(ws: Worksheet, cols: dict[int, float]) -> None:
    """Widen columns to at least these widths (characters): a column shared by two blocks fits both."""
    for col, width in cols.items():
        ws.column_dimensions[L(col)].width = max(column_width(ws, col, unset=0), width)


def formulas_fill(ws: Worksheet, r0: int, c0: int, r1: int, c1: int) -> None:
    """Fill a block of formula cells green (what the legend says formulas are)."""
    for row in ws.iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1):
        for cell in row:
            cell.fill, cell.border = STYLES["output"], BOX


def panel(ws: Worksheet, col: int, rmse_formula: str) -> None:
    """The RMSE cell and the "last run" block at the top of columns `col` (labels) and `col + 1` (values)."""
    label(ws, TOP, col, "RMSE")
    ws.cell(TOP, col + 1, rmse_formula).number_format = RMSE_FMT
    define_block(ws, "rmse", TOP, col + 1, style="objective")
    ws.cell(TOP + 2, col, "last run (Solve writes it)").font = HEADER_FONT
    for i, (text, fmt) in enumerate(zip(LAST_RUN_LABELS, LAST_RUN_FORMATS), start=1):
        ws.cell(TOP + 2 + i, col, text)
        ws.cell(TOP + 2 + i, col + 1).number_format = fmt
    define_block(ws, "last_run", TOP + 3, col + 1, TOP + 2 + len(LAST_RUN_LABELS), col + 1, style="record")
    widths(ws, {col: 14, col + 1: 12})
    settings(ws, col + SETTINGS_COL, TOP + 2)


def settings(ws: Worksheet, col: int, row: int) -> None:
    """The settings block Solve reads (name `settings`: label | value, from (row + 1, col)) and each setting's default
    beside it, taken from the one place that defines it (layout.DEFAULTS, core.settings).

    The value cells start blank, meaning "the default", rather than holding the defaults: a solve given only an
    optimizer runs that optimizer's own lr and epochs (core.settings.check_solve), so an lr cell filled with the
    tab's default would silently keep adam's lr for sgd. The default column is a formula that follows the optimizer
    cell, so it always shows what a blank cell will run with.
    """
    ws.cell(row, col, "Solve's settings").font = HEADER_FONT
    ws.cell(row, col + 2, "default").font = NOTE_FONT
    settings_block(ws, row + 1, col, SETTINGS_LABELS)
    optimizer = a(col + 1, row + 1)
    tab_optimizer, tab_lr, tab_epochs = DEFAULTS[ws.title]
    defaults = {"optimizer": tab_optimizer, "lr": _per_optimizer(optimizer, tab_optimizer, tab_lr, 0),
                "epochs": _per_optimizer(optimizer, tab_optimizer, tab_epochs, 1), "device": SOLVE["device"].default,
                "multistart": 1}
    for i, label in enumerate(SETTINGS_LABELS, start=1):
        cell = ws.cell(row + i, col + 2, defaults[label])
        cell.font, cell.number_format, cell.alignment = NOTE_FONT, "General", Alignment(horizontal="left")
    widths(ws, {col: 11, col + 1: 10, col + 2: 9})
    comment(ws, optimizer.replace("$", ""), "Type a setting here to change what Solve runs; blank: the default, in "
            "grey beside it. The Solve button and `xlcollab solve` both read these cells; the ribbon's choices and "
            "the command's flags win over them. What ran is in the last run block.")


def _per_optimizer(cell: str, tab_optimizer: str, tab_value: float, which: int) -> str:
    """=IF(OR(cell="", cell="lbfgs"), 200, IF(cell="adam", 1000, ...)): the tab's value for its own optimizer (or a
    blank cell), else the optimizer's (core.settings.SOLVE_OPTIMIZERS: (lr, epochs)); "?" for anything else."""
    formula = '"?"'
    for name, values in reversed(SOLVE_OPTIMIZERS.items()):
        formula = f'IF({cell}="{name}",{values[which]:g},{formula})'
    return f'=IF(OR({cell}="",{cell}="{tab_optimizer}"),{tab_value:g},{formula})'


def squash_cells(ws: Worksheet, col: int, row: int) -> tuple[str, str, str]:
    """The sigmoid switch (on/off) and the y range cells under the panel: returns absolute addresses."""
    ws.cell(row, col, "sigmoid squash")
    ws.cell(row, col + 1, "on")
    define_block(ws, "squash", row, col + 1, style="input")
    dv = DataValidation(type="list", formula1='"on,off"', allow_blank=False, showErrorMessage=True,
                        errorTitle="sigmoid squash", error="type on or off")
    ws.add_data_validation(dv)
    dv.add(ws.cell(row, col + 1))
    return (a(col + 1, row),) + y_range_cells(ws, col, row + 1)


def y_range_cells(ws: Worksheet, col: int, row: int) -> tuple[str, str]:
    """The sigmoid's y range (low, high) at (row, col + 1) and the row below: returns absolute addresses."""
    ws.cell(row, col, "y low")
    ws.cell(row + 1, col, "y high")
    ws.cell(row, col + 1, Y_RANGE[0]).number_format = "General"
    ws.cell(row + 1, col + 1, Y_RANGE[1]).number_format = "General"
    define_block(ws, "y_range", row, col + 1, row + 1, col + 1, style="input")
    return a(col + 1, row), a(col + 1, row + 1)


def trace(ws: Worksheet, col: int, row: int, chart_anchor: str) -> None:
    """The RMSE-by-epoch block (epoch, RMSE; written by Solve, grey) and its chart at `chart_anchor`."""
    label(ws, row, col, "RMSE by epoch")
    label(ws, row + 1, col, "epoch")
    label(ws, row + 1, col + 1, "RMSE")
    first, last = row + 2, row + 1 + TRACE_ROWS
    define_block(ws, "trace", first, col, last, col + 1, style="record")
    for r in range(first, last + 1):
        ws.cell(r, col).number_format, ws.cell(r, col + 1).number_format = INT, RMSE_FMT
    xy_chart(ws, chart_anchor, title=f"{ws.title}: RMSE by epoch", x_title="epoch", y_title="RMSE", y_format="0.00",
             series=[("RMSE", Reference(ws, min_col=col, min_row=first, max_row=last),
                      Reference(ws, min_col=col + 1, min_row=first, max_row=last))], width=15, height=7.5)


def solver(ws: Worksheet, rmse: tuple[int, int], blocks: list[tuple[int, int, int, int]]) -> None:
    """Excel Solver's model: minimise the RMSE cell by changing the parameter blocks (row0, col0, row1, col1)."""
    store_solver_model(ws, target(ws, *rmse), [target(ws, r0, c0, r1, c1) for r0, c0, r1, c1 in blocks])


def solver_note(blocks: list[tuple[int, int, int, int]]) -> str:
    """What to tell a student when the model has more variables than Excel's Solver takes ("" when it fits)."""
    n = sum((r1 - r0 + 1) * (c1 - c0 + 1) for r0, c0, r1, c1 in blocks)
    if n <= SOLVER_LIMIT:
        return ""
    return (f" This tab has {n} variables: Excel's Solver stops at {SOLVER_LIMIT}, so it cannot run it (its model is "
            "stored all the same); xlcollab solve can.")


def header_ids(ws: Worksheet, row: int, col: int, ids: list, *, rotate: bool = False) -> None:
    """Ids as bold column headers (written upwards where the columns are narrow)."""
    for j, v in enumerate(ids):
        ws.cell(row, col + j, v)
    style_headers(ws, row, col, col + len(ids) - 1, rotate=rotate)


def style_headers(ws: Worksheet, row: int, c0: int, c1: int, *, rotate: bool = False) -> None:
    """Bold headers in row `row`, columns c0..c1, written upwards when `rotate`."""
    for c in range(c0, c1 + 1):
        cell = ws.cell(row, c)
        cell.font, cell.number_format = HEADER_FONT, "General"
        if rotate:
            cell.alignment = Alignment(text_rotation=90, horizontal="center", vertical="bottom")
