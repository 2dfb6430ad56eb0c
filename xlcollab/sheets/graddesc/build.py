"""Build graddesc.xlsx with openpyxl: the `data` tab, one tab per optimizer (SPECS), and `compare`."""
from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import Reference, Series
from openpyxl.chart.series import SeriesLabel
from openpyxl.utils.cell import absolute_coordinate, get_column_letter, quote_sheetname
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.sheets.common import (HEADER_FONT, NOTE_FONT, define_block, force_full_recalc, heading, line_chart,
                                    save_workbook)
from xlcollab.sheets.graddesc.layout import DATA_FIRST, FIRST, HEADER, TOP, Layout
from xlcollab.sheets.graddesc.simulate import Start, make_data
from xlcollab.sheets.graddesc.specs import COMPARE, DATA, FD_OFFSET, SPECS, TRACE_ROWS, TRUE_A, TRUE_B, Spec


def build_workbook(path: Path, *, seed: int = 42, n_points: int = 29, noise: float = 0.0) -> Path:
    """Write the graddesc workbook to `path` (reproducible: the same arguments give the same bytes)."""
    xs, ys = make_data(seed, n_points, noise)
    wb = Workbook()
    _build_data(wb.active, xs, ys, seed=seed, noise=noise)
    for spec in SPECS.values():
        _build_optimizer(wb.create_sheet(spec.sheet), spec, len(xs))
    _build_compare(wb.create_sheet(COMPARE), len(xs))
    wb.active = 1
    force_full_recalc(wb)
    return save_workbook(wb, path)


def _label(ws: Worksheet, row: int, col: int, text: str, name: str | None = None) -> None:
    """A label, with the defined name of the value beside it printed in grey two columns right."""
    ws.cell(row, col, text)
    if name:
        ws.cell(row, col + 2, name).font = NOTE_FONT


def _build_data(ws: Worksheet, xs: list[int], ys: list[float], *, seed: int, noise: float) -> None:
    ws.title = DATA
    heading(ws, "A1", "data: y = a·x + b with a = 2, b = 30",
            f"x: random integers 1-100 (seed {seed}); y = 2x + 30{' + Gaussian noise' if noise else ''}. Every "
            "optimizer tab fits a and b to these points, one SGD step per row. Edit them if you like: run reads them.")
    for col, text in ((1, "x"), (2, "y")):
        ws.cell(DATA_FIRST - 1, col, text).font = HEADER_FONT
    for i, (x, y) in enumerate(zip(xs, ys)):
        ws.cell(DATA_FIRST + i, 1, x)
        ws.cell(DATA_FIRST + i, 2, y)
    last = DATA_FIRST + len(xs) - 1
    define_block(ws, "x", DATA_FIRST, 1, last, 1, style="input")
    define_block(ws, "y", DATA_FIRST, 2, last, 2, style="input")
    ws.cell(DATA_FIRST - 1, 4, "how these points were made").font = HEADER_FONT
    for i, (label, name, value) in enumerate((("true a", "true_a", TRUE_A), ("true b", "true_b", TRUE_B),
                                              ("seed", "seed", seed), ("points", "points", len(xs)),
                                              ("noise (std of y)", "noise", noise))):
        _label(ws, DATA_FIRST + i, 4, label, name)
        ws.cell(DATA_FIRST + i, 5, value)
        define_block(ws, name, DATA_FIRST + i, 5)
    ws.column_dimensions["D"].width = 18


def _build_optimizer(ws: Worksheet, spec: Spec, n: int) -> None:
    lay = Layout(spec, n)
    heading(ws, "A1", f"{spec.sheet}: fit y = a·x + b, one step per row", spec.note)
    ws["A3"] = spec.differs
    ws["A3"].font = NOTE_FONT
    _top_blocks(ws, lay)
    _step_table(ws, lay)
    _trace_block(ws, lay)
    ws.column_dimensions["A"].width = ws.column_dimensions["E"].width = ws.column_dimensions["I"].width = 16


def _top_blocks(ws: Worksheet, lay: Layout) -> None:
    """Inputs (yellow), the state carried into the first row (blue) and this epoch's outputs (green)."""
    spec = lay.spec
    for col, text in ((1, "inputs (edit these)"), (5, "state carried into the first row"), (9, "this epoch")):
        ws.cell(TOP - 1, col, text).font = HEADER_FONT
    start = Start.fresh(spec)
    for i, inp in enumerate(spec.inputs):
        _label(ws, TOP + i, 1, inp.label, inp.name)
        ws.cell(TOP + i, 2, inp.default)
        define_block(ws, inp.name, TOP + i, 2, style="input")
    state_labels = {"epoch": "epochs done", "a": "a", "b": "b", "step": "steps done (t)"}
    for key, short, label in spec.buffers:
        state_labels |= {f"{short}_a": f"{short} of a ({label})", f"{short}_b": f"{short} of b"}
    for i, name in enumerate(spec.state_names):
        _label(ws, TOP + i, 5, state_labels[name], name)
        ws.cell(TOP + i, 6, start.state_value(spec, name))
        define_block(ws, name, TOP + i, 6, style="param")
    labels = {"loss": "epoch loss (mean of the rows)", "end_a": "a after this epoch", "end_b": "b after this epoch",
              "lr_now": "lr this epoch = lr·γ^epoch"}
    for i, (name, formula) in enumerate(lay.output_formulas().items()):
        _label(ws, TOP + i, 9, labels[name], name)
        ws.cell(TOP + i, 10, formula)
        define_block(ws, name, TOP + i, 10, style="objective" if name == "loss" else "output")


def _step_table(ws: Worksheet, lay: Layout) -> None:
    spec, headers = lay.spec, _headers(lay.spec)
    ws.cell(HEADER - 1, 1, "one SGD step per row (formulas only; run rewrites only the blue state cells)").font = NOTE_FONT
    for j, key in enumerate(spec.columns, start=1):
        ws.cell(HEADER, j, headers[key]).font = HEADER_FONT
        ws.column_dimensions[get_column_letter(j)].width = 12
    for i, row in enumerate(lay.formulas()):
        for j, formula in enumerate(row, start=1):
            ws.cell(FIRST + i, j, formula)
    define_block(ws, "steps", FIRST, 1, lay.last, len(spec.columns), style="output")


def _trace_block(ws: Worksheet, lay: Layout) -> None:
    """The trace `run` appends to, and its "Error by epoch" chart."""
    spec, c0 = lay.spec, lay.trace_col0
    ws.cell(HEADER - 1, c0, f"trace: one row per epoch, written by `xlcollab run`; holds {TRACE_ROWS:,} epochs "
                            "(run refuses when full; `xlcollab reset` clears it)").font = NOTE_FONT
    trace_headers = {"epoch": "epoch", "a": "a", "b": "b", "loss": "loss", "lr": "lr", "step": "t"}
    for key, short, _ in spec.buffers:
        trace_headers |= {f"{short}_a": f"{short} (a)", f"{short}_b": f"{short} (b)"}
    for j, key in enumerate(spec.trace_columns):
        ws.cell(HEADER, c0 + j, trace_headers[key]).font = HEADER_FONT
        ws.column_dimensions[get_column_letter(c0 + j)].width = 12
    define_block(ws, "trace", FIRST, c0, FIRST + TRACE_ROWS - 1, c0 + len(spec.trace_columns) - 1)
    for r in range(lay.last + 1, FIRST + TRACE_ROWS):  # empty <row> elements: appending fills them in place
        ws.row_dimensions[r]
    loss_col = c0 + spec.trace_columns.index("loss")
    line_chart(ws, "L1", title="Error by epoch", x_title="epoch", y_title="loss",
               data=Reference(ws, min_col=loss_col, min_row=HEADER, max_row=FIRST + TRACE_ROWS - 1),
               categories=Reference(ws, min_col=c0, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1),
               width=16, height=7)


def _headers(spec: Spec) -> dict[str, str]:
    h = {"x": "x", "y": "y", "a": "a", "b": "b", "pred": "a·x+b", "err": "err = a·x+b-y",
         "loss": "loss = err²" + (" + wd/2·(a²+b²)" if spec.l2 else ""),
         "ga": "de/da = 2·err·x" + (" + wd·a" if spec.l2 else ""), "gb": "de/db = 2·err" + (" + wd·b" if spec.l2 else ""),
         "fd_a": f"est de/da (a+{FD_OFFSET})", "fd_b": f"est de/db (b+{FD_OFFSET})", "step": "t",
         "new_a": "new a", "new_b": "new b"}
    for _, short, label in spec.buffers:
        h |= {f"{short}_a": f"{short} (a): {label}", f"{short}_b": f"{short} (b)"}
    return h


def _build_compare(ws: Worksheet, n: int) -> None:
    heading(ws, "A1", "compare: every optimizer's loss per epoch",
            "Read from each tab's trace block (epoch 1 is the first row after a reset). Run them all with "
            "`xlcollab run graddesc.xlsx --sheet all --epochs 100`.")
    for j, text in enumerate(("optimizer", "epochs done", "a", "b", "next epoch's loss"), start=1):
        ws.cell(4, j, text).font = HEADER_FONT
    chart = None
    for i, spec in enumerate(SPECS.values()):
        lay, q = Layout(spec, n), quote_sheetname(spec.sheet)
        ws.cell(5 + i, 1, spec.sheet)
        for j, cell in enumerate((lay.state["epoch"], lay.state["a"], lay.state["b"], lay.outputs["loss"]), start=2):
            ws.cell(5 + i, j, f"={q}!{absolute_coordinate(cell)}")
        loss_col = lay.trace_col0 + spec.trace_columns.index("loss")
        src = ws.parent[spec.sheet]
        ref = Reference(src, min_col=loss_col, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1)
        if chart is None:
            chart = line_chart(ws, "A15", title="Error by epoch, every optimizer", x_title="epoch", y_title="loss",
                               data=ref, width=26, height=13)
            chart.series[0].tx = SeriesLabel(v=spec.sheet)
        else:
            series = Series(ref, title=spec.sheet)
            series.smooth = False
            chart.series.append(series)
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["E"].width = 18
