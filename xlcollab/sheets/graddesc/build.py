"""Build graddesc.xlsx with openpyxl: `Intro`, `data`, one tab per optimizer (SPECS) and `compare`."""
from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import Reference
from openpyxl.drawing.line import LineProperties
from openpyxl.formatting.rule import FormulaRule
from openpyxl.utils.cell import absolute_coordinate, get_column_letter, quote_sheetname
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.book.base import bounds, cell_name
from xlcollab.sheets.common import (BOX, FIX2, FIX4, HEADER_FONT, HEADER_WRAP, INT, NOTE_FONT, POINT_CM, SCI, STYLES,
                                    column_width, comment, define_block, force_full_recalc, heading, legend, note, print_one_page,
                                    save_workbook, settings_block, xy_chart)
from xlcollab.sheets.graddesc.intro import build_intro
from xlcollab.sheets.graddesc.layout import (BLOCK_COL, BUTTONS_CELL, DATA_FIRST, FIRST, HEADER, INPUT_ROW,
                                             OUTPUT_ROW, RUN_EPOCHS, SETTINGS_ROW, STATE_ROW, Layout)
from xlcollab.sheets.graddesc.simulate import Start, make_data
from xlcollab.sheets.graddesc.specs import COMPARE, DATA, FD_OFFSET, SPECS, TRACE_ROWS, TRUE_A, TRUE_B, Spec

# number format of a step column, state cell, output or trace column by its key (scientific where none is given)
FORMATS = {"x": INT, "y": FIX2, "a": FIX4, "b": FIX4, "pred": FIX4, "new_a": FIX4, "new_b": FIX4, "end_a": FIX4,
           "end_b": FIX4, "epoch": INT, "step": INT, "ratio": "0.000"}
WIDTHS = {"x": 6, "y": 8, "step": 8}   # characters; every other step and trace column is WIDTH wide
WIDTH = 11.5
LEGEND_COLUMNS = 10     # the colour legend (row 4) takes columns A..J: the chart starts right of it


def build_workbook(path: Path, *, seed: int = 42, n_points: int = 29, noise: float = 0.0) -> Path:
    """Write the graddesc workbook to `path` (reproducible: the same arguments give the same bytes)."""
    xs, ys = make_data(seed, n_points, noise)
    wb = Workbook()
    build_intro(wb.active)
    _build_data(wb.create_sheet(DATA), xs, ys, seed=seed, noise=noise)
    for spec in SPECS.values():
        _build_optimizer(wb.create_sheet(spec.sheet), spec, (xs, ys))
    _build_compare(wb.create_sheet(COMPARE), len(xs))
    force_full_recalc(wb)
    return save_workbook(wb, path)


def _build_data(ws: Worksheet, xs: list[int], ys: list[float], *, seed: int, noise: float) -> None:
    for col, width in (("A", 8), ("B", 10), ("C", 3), ("D", 18), ("E", 10)):
        ws.column_dimensions[col].width = width
    heading(ws, "A1", "data: y = a·x + b with a = 2, b = 30")
    note(ws, 2, 1, 12, f"x: random integers 1-100 (seed {seed}); y = 2x + 30{' + Gaussian noise' if noise else ''}. "
         "Every optimizer tab fits a and b to these points, one step per row. Edit them if you like: Run reads them.")
    legend(ws, 3, 1, [("input", "yellow: you may edit")])
    for col, text in ((1, "x"), (2, "y")):
        ws.cell(DATA_FIRST - 1, col, text).font = HEADER_FONT
    for i, (x, y) in enumerate(zip(xs, ys)):
        ws.cell(DATA_FIRST + i, 1, x).number_format = INT if float(x).is_integer() else FIX2
        ws.cell(DATA_FIRST + i, 2, y).number_format = FIX2
    last = DATA_FIRST + len(xs) - 1
    define_block(ws, "x", DATA_FIRST, 1, last, 1, style="input")
    define_block(ws, "y", DATA_FIRST, 2, last, 2, style="input")
    ws.cell(DATA_FIRST - 1, 4, "how these points were made").font = HEADER_FONT
    for i, (label, name, value) in enumerate((("true a", "true_a", TRUE_A), ("true b", "true_b", TRUE_B),
                                              ("seed", "seed", seed), ("points", "points", len(xs)),
                                              ("noise (std of y)", "noise", noise))):
        ws.cell(DATA_FIRST + i, 4, label)
        ws.cell(DATA_FIRST + i, 5, value).number_format = "General"
        define_block(ws, name, DATA_FIRST + i, 5)
    chart = xy_chart(ws, "G4", title="the data: y against x", x_title="x", y_title="y", width=14, height=9,
                     series=[("points", Reference(ws, min_col=1, min_row=DATA_FIRST, max_row=last),
                              Reference(ws, min_col=2, min_row=DATA_FIRST, max_row=last))])
    chart.series[0].marker.symbol = "circle"
    chart.series[0].graphicalProperties.line = LineProperties(noFill=True)  # points only: x is not sorted
    ws.freeze_panes = f"A{DATA_FIRST}"
    print_one_page(ws, f"A1:N{max(last, 24)}")


def _build_optimizer(ws: Worksheet, spec: Spec, data: tuple[list[float], list[float]]) -> None:
    lay = Layout(spec, len(data[0]))
    _widths(ws, lay)
    chart_col = BLOCK_COL + max(lay.block_width, LEGEND_COLUMNS - BLOCK_COL + 1) + 1
    heading(ws, "A1", f"{spec.sheet}: fit y = a·x + b, one step per row")
    note(ws, 2, 1, chart_col - 2, spec.note)
    note(ws, 3, 1, chart_col - 2, spec.differs)
    legend(ws, 4, 1, [("input", "yellow: you edit"), ("param", "blue: Run writes"), ("output", "green: formulas"),
                      ("objective", "orange: the loss"), ("record", "grey: Run's trace")])
    define_block(ws, "buttons", *bounds(BUTTONS_CELL)[:2])
    ws.cell(SETTINGS_ROW - 2, 1, "Run's settings").font = HEADER_FONT
    ws.cell(SETTINGS_ROW - 1, 1, f"blank: {RUN_EPOCHS}").font = NOTE_FONT
    settings_block(ws, SETTINGS_ROW, 1, ["epochs"])
    _top_blocks(ws, lay, Start.fresh(spec, data=data))
    _step_table(ws, lay)
    last_col = max(_trace_block(ws, lay, chart_col), lay.trace_col0 + len(spec.trace_columns) - 1)
    for cell, text in _comments(lay).items():
        comment(ws, cell, text)
    ws.freeze_panes = f"A{FIRST}"
    print_one_page(ws, f"A1:{get_column_letter(last_col)}{lay.last}")


def _widths(ws: Worksheet, lay: Layout) -> None:
    for j, key in enumerate(lay.spec.columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = WIDTHS.get(key, WIDTH)
    for j, key in enumerate(lay.spec.trace_columns):
        ws.column_dimensions[get_column_letter(lay.trace_col0 + j)].width = WIDTHS.get(key, WIDTH)
    ws.column_dimensions[get_column_letter(lay.trace_col0 - 1)].width = 3
    for j in range(BLOCK_COL, BLOCK_COL + lay.block_width):  # the top blocks' values need a full column
        ws.column_dimensions[get_column_letter(j)].width = max(column_width(ws, j, unset=0), WIDTH)


def _labels(ws: Worksheet, row: int, labels: list[str]) -> None:
    """A row of wrapped labels over a block's values, tall enough for the longest."""
    for j, text in enumerate(labels):
        cell = ws.cell(row, BLOCK_COL + j, text)
        cell.alignment, cell.font = HEADER_WRAP, NOTE_FONT
    width = min(WIDTH, *(column_width(ws, BLOCK_COL + j) for j in range(len(labels))))
    lines = max(-(-len(text) // int(width - 1)) for text in labels)
    ws.row_dimensions[row].height = 15 * max(1, lines) + 2


def _top_blocks(ws: Worksheet, lay: Layout, start: Start) -> None:
    """Inputs (yellow), the state carried into the first row (blue) and this epoch's outputs (green)."""
    spec = lay.spec
    captions = ((INPUT_ROW, "inputs (edit these, then Run or Reset)"),
                (STATE_ROW, "state carried into the first row (Run writes it)"),
                (OUTPUT_ROW, "this epoch (Run carries the last cells on)"))
    for row, text in captions:
        ws.cell(row - 2, BLOCK_COL, text).font = HEADER_FONT
    _labels(ws, INPUT_ROW - 1, [inp.label for inp in spec.inputs])
    for i, inp in enumerate(spec.inputs):
        ws.cell(INPUT_ROW, BLOCK_COL + i, inp.default).number_format = "General"
        define_block(ws, inp.name, INPUT_ROW, BLOCK_COL + i, style="input")
    _labels(ws, STATE_ROW - 1, [STATE_LABELS[name] for name in spec.state_names])
    for i, name in enumerate(spec.state_names):
        ws.cell(STATE_ROW, BLOCK_COL + i, start.state[name]).number_format = FORMATS.get(name, SCI)
        define_block(ws, name, STATE_ROW, BLOCK_COL + i, style="param")
    _labels(ws, OUTPUT_ROW - 1, [OUTPUT_LABELS[name] for name in spec.output_names])
    for i, (name, formula) in enumerate(lay.output_formulas().items()):
        ws.cell(OUTPUT_ROW, BLOCK_COL + i, formula).number_format = FORMATS.get(name, SCI)
        define_block(ws, name, OUTPUT_ROW, BLOCK_COL + i, style="objective" if name == "loss" else "output")


STATE_LABELS = {"epoch": "epochs done", "lr_now": "lr this epoch", "a": "a", "b": "b", "step": "steps done (t)",
                "b1t": "β1^t", "b2t": "β2^t", "rms_a": "RMS of de/da so far", "rms_b": "RMS of de/db so far",
                "g_rms": "RMS of the gradients, last epoch", "m_a": "m of a", "m_b": "m of b", "v_a": "v of a",
                "v_b": "v of b", "s_a": "s of a", "s_b": "s of b"}
OUTPUT_LABELS = {"loss": "loss: mean of the rows", "end_a": "a after this epoch", "end_b": "b after this epoch",
                 "rms_a_next": "RMS of de/da, with this epoch", "rms_b_next": "RMS of de/db, with this epoch",
                 "g_rms_now": "RMS of the gradients this epoch", "ratio": "ratio to last epoch's RMS",
                 "lr_next": "lr next epoch"}


def _step_table(ws: Worksheet, lay: Layout) -> None:
    spec, headers = lay.spec, _headers(lay.spec)
    ws.cell(HEADER - 1, 1, "one step per row: formulas only (Run and Reset write only the blue state cells)").font = NOTE_FONT
    for j, key in enumerate(spec.columns, start=1):
        cell = ws.cell(HEADER, j, headers[key])
        cell.font, cell.alignment = HEADER_FONT, HEADER_WRAP
    for i, row in enumerate(lay.formulas()):
        for j, (key, formula) in enumerate(zip(spec.columns, row), start=1):
            ws.cell(FIRST + i, j, formula).number_format = FORMATS.get(key, SCI)
    define_block(ws, "steps", FIRST, 1, lay.last, len(spec.columns), style="output")
    longest = max(len(h) / (WIDTHS.get(k, WIDTH) - 1) for k, h in headers.items() if k in spec.columns)
    ws.row_dimensions[HEADER].height = 15 * max(2, -(-longest // 1)) + 2


def _trace_block(ws: Worksheet, lay: Layout, chart_col: int) -> int:
    """The trace `run` appends to and its "Error by epoch" chart (right of the top blocks); returns the chart's
    last column."""
    spec, c0 = lay.spec, lay.trace_col0
    ws.cell(HEADER - 1, c0, f"trace: one row per epoch, {TRACE_ROWS:,} at most (Run appends, Reset clears)").font = NOTE_FONT
    headers = TRACE_HEADERS | {name: STATE_LABELS[name] for name in spec.trace_columns if name not in TRACE_HEADERS}
    for j, key in enumerate(spec.trace_columns):
        cell = ws.cell(HEADER, c0 + j, headers[key])
        cell.font, cell.alignment = HEADER_FONT, HEADER_WRAP
    for j, key in enumerate(spec.trace_columns):  # a value Run writes takes its column's number format
        ws.column_dimensions[get_column_letter(c0 + j)].number_format = FORMATS.get(key, SCI)
    ref = define_block(ws, "trace", FIRST, c0, FIRST + TRACE_ROWS - 1, c0 + len(spec.trace_columns) - 1)
    ws.conditional_formatting.add(ref.split("!")[1].replace("$", ""),  # grey, without a styled cell per row
                                  FormulaRule(formula=["TRUE"], fill=STYLES["record"], stopIfTrue=False))
    height = sum(ws.row_dimensions[r].height or 15 for r in range(1, OUTPUT_ROW + 1)) * POINT_CM - 0.3
    width = 8 * 2.3
    rows = Reference(ws, min_col=c0, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1)
    loss = Reference(ws, min_col=c0 + spec.trace_columns.index("loss"), min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1)
    xy_chart(ws, f"{get_column_letter(chart_col)}1", title="Error by epoch (the trace; log scale)", x_title="epoch",
             y_title="loss", series=[("loss", rows, loss)], width=width, height=height, log_y=True, y_format="0E+00")
    return chart_col + 8


def _comments(lay: Layout) -> dict[str, str]:
    """Cell comments on the cells a student should look at first."""
    spec, c, first = lay.spec, lay.col, FIRST
    out = {lay.inputs["lr"]: "The learning rate: how far each step moves against the gradient. Make it 10 times "
                             "larger and Run: the loss explodes (Run refuses to write a diverged run). Make it 10 "
                             "times smaller: the line crawls.",
           lay.state["a"]: "The a and b the first row starts from. Run writes the a and b after its last epoch here "
                           "(and the optimizer's state beside them); Reset puts the start values back.",
           f"{c['ga']}{first}": "The gradient of this row's loss with respect to a: how much the loss grows when a "
                                "grows a little. The step goes the other way.",
           f"{c['new_a']}{first}": "One step of gradient descent: a moved against its gradient, scaled by the "
                                   "optimizer's rule. The next row starts from here.",
           lay.outputs["loss"]: "The mean of the rows' losses in this epoch: what the trace records and the chart "
                                "plots, one point per epoch (log scale).",
           cell_name(SETTINGS_ROW, 2): f"The epochs one click of Run runs (blank: {RUN_EPOCHS}, as fast.ai's button). "
                                       "`xlcollab run --epochs N` and a macro's epochs= win over it.",
           cell_name(first, lay.trace_col0): "Run appends one row per epoch here: the epoch, a and b after it, its "
                                             "loss and lr, and the optimizer's state after it."}
    if spec.fd:
        out[f"{c['fd_a']}{first}"] = ("The same gradient estimated without calculus: nudge a by 0.01 and see how "
                                      "much the loss changes. Close to de/da, and slower to compute for a big model.")
    if spec.buffers:
        key = f"{spec.buffers[0][1]}_a"
        out[f"{c[key]}{first}"] = ("The optimizer's memory for a: the rule in the header, carried from row to row and "
                                   "from epoch to epoch (the blue state cells).")
    if spec.schedule != "constant" or spec.rms_scaled:
        out[lay.outputs[spec.output_names[3]]] = ("Computed from this epoch's rows; Run copies these green cells "
                                                   "into the blue state for the next epoch, as fast.ai's VBA did.")
    return out


TRACE_HEADERS = {"epoch": "epoch", "a": "a", "b": "b", "loss": "loss", "lr": "lr", "step": "t"}


def _headers(spec: Spec) -> dict[str, str]:
    h = {"x": "x", "y": "y", "a": "a", "b": "b", "pred": "a·x + b", "err": "err = a·x + b - y",
         "loss": "loss = err²" + (" + wd/2·(a² + b²)" if spec.l2 else ""),
         "ga": "de/da = 2·err·x" + (" + wd·a" if spec.l2 else ""), "gb": "de/db = 2·err" + (" + wd·b" if spec.l2 else ""),
         "fd_a": f"est. de/da (a + {FD_OFFSET})", "fd_b": f"est. de/db (b + {FD_OFFSET})", "step": "t",
         "b1t": "β1^t = β1^(t-1)·β1", "b2t": "β2^t = β2^(t-1)·β2", "new_a": "new a", "new_b": "new b"}
    for _, short, label in spec.buffers:
        h |= {f"{short}_a": f"{short} of a = {label}", f"{short}_b": f"{short} of b"}
    return h


def _build_compare(ws: Worksheet, n: int) -> None:
    for col, width in (("A", 16), ("B", 10), ("C", 10), ("D", 10), ("E", 12)):
        ws.column_dimensions[col].width = width
    heading(ws, "A1", "compare: every optimizer's loss per epoch")
    note(ws, 2, 1, 12, "Read from each tab's trace (epoch 1 is the first row after a Reset). Run them all, e.g. "
         "`xlcollab run graddesc.xlsx --sheet all --epochs 100`, and see which rule gets down fastest.")
    legend(ws, 3, 1, [("output", "green: formulas")])
    for j, text in enumerate(("optimizer", "epochs done", "a", "b", "next epoch's loss"), start=1):
        cell = ws.cell(5, j, text)
        cell.font, cell.alignment = HEADER_FONT, HEADER_WRAP
    ws.row_dimensions[5].height = 32
    series = []
    for i, spec in enumerate(SPECS.values()):
        lay, q, row = Layout(spec, n), quote_sheetname(spec.sheet), 6 + i
        ws.cell(row, 1, spec.sheet)
        for j, (key, cell) in enumerate((("epoch", lay.state["epoch"]), ("a", lay.state["a"]), ("b", lay.state["b"]),
                                         ("loss", lay.outputs["loss"])), start=2):
            ws.cell(row, j, f"={q}!{absolute_coordinate(cell)}").number_format = FORMATS.get(key, SCI)
            ws.cell(row, j).fill, ws.cell(row, j).border = STYLES["output"], BOX
        src, c0 = ws.parent[spec.sheet], lay.trace_col0
        rows = Reference(src, min_col=c0, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1)
        loss = Reference(src, min_col=c0 + spec.trace_columns.index("loss"), min_row=FIRST,
                         max_row=FIRST + TRACE_ROWS - 1)
        series.append((spec.sheet, rows, loss))
    top = 7 + len(SPECS)
    xy_chart(ws, f"A{top}", title="Error by epoch, every optimizer (log scale)", x_title="epoch", y_title="loss",
             series=series, width=26, height=13, log_y=True, y_format="0E+00")
    ws.freeze_panes = "A6"
    print_one_page(ws, f"A1:L{top + 27}")

