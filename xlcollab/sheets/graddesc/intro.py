"""The graddesc workbook's `Intro` tab: what each tab teaches, how to use the buttons and the command line."""
from __future__ import annotations

from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.sheets.common import intro_sheet
from xlcollab.sheets.graddesc.layout import RUN_EPOCHS
from xlcollab.sheets.graddesc.specs import COMPARE, DATA, SPECS, TRACE_ROWS

INTRO = "Intro"

TEACHES = {
    "basic SGD": "plain gradient descent; the analytic gradients beside finite-difference estimates. Slow: b's "
                 "gradient is tiny next to a's, and a larger lr diverges",
    "momentum": "an exponential average of the gradients keeps the steps going the same way: 3x the lr, safely",
    "adagrad": "torch's Adagrad: every step divided by the root of all squared gradients so far",
    "adagrad_fastai": "fast.ai's Adagrad: once an epoch, each parameter's lr divided by its gradients' RMS so far",
    "adagrad_ann": "the same, with the lr shrunk by γ after every epoch",
    "rmsprop": "the step divided by the root of an exponential average of squared gradients",
    "adam": "fast.ai's Adam: momentum and RMSprop together; with a constant lr it keeps jumping about the answer",
    "adamw": "torch's AdamW: bias correction and weight decay that shrinks a and b directly",
    "l2": "the same Adam with weight decay in the loss instead: its gradient is rescaled like any gradient",
    "adam_ann": "fast.ai's Adam with the lr shrunk by γ after every epoch: it settles on the answer",
    "adam_ann_vba": "fast.ai's Adam with the lr divided when the gradients jump, as its VBA Run macro did",
}


def build_intro(ws: Worksheet) -> None:
    """Fill `ws` (the first tab) with the lesson's map and how to drive it."""
    assert set(TEACHES) == set(SPECS), "every optimizer tab needs a line on the Intro tab"
    tabs = [(DATA, "the points every tab fits: y = 2x + 30 at 29 random x from 1 to 100 (edit them if you like)")]
    tabs += [(sheet, TEACHES[sheet]) for sheet in SPECS]
    tabs += [(COMPARE, "every optimizer's loss per epoch on one chart, read from the tabs' traces")]
    intro_sheet(ws, INTRO, "Gradient descent, one step per row", [
        "fast.ai's graddesc.xlsm rebuilt by code (xlcollab). Every tab fits a line y = a·x + b to the points of the "
        "data tab by gradient descent, one step per row: each row takes a and b from the row above, predicts, measures "
        "the error and its gradients, and moves a and b a little. One pass over the rows is one epoch. The tabs "
        "differ only in how a step uses the gradients: the optimizer.",
    ], tabs, [
        f"Run (a button at the top left of each optimizer tab, in graddesc.xlsm): {RUN_EPOCHS} more epochs (or the "
        "number in the yellow epochs cell under the buttons) from the state in the "
        "blue cells; it appends one row per epoch to the trace (the chart follows it) and writes the state after the "
        "last epoch into the blue cells, so the rows show the next epoch.",
        "Reset: a and b back to the start values, the state zeroed, the trace cleared.",
        "Edit any yellow cell (start values, learning rate, β, ...) and Run again: Run reads them every time.",
        f"Without Excel: xlcollab run graddesc.xlsx --sheet adam --epochs 5 (or --sheet all), xlcollab reset "
        f"graddesc.xlsx --sheet all. A trace holds {TRACE_ROWS:,} epochs; Run refuses more until a Reset.",
        "The buttons need Excel with the xlwings add-in: run xlcollab addin once. The .xlsx files have no buttons; "
        "LibreOffice opens both and recalculates every formula.",
        "Every cell of every row is a formula that a spreadsheet computes; Run computes the same steps in Python "
        "(xlcollab.core.optim) and the tests check that LibreOffice's values equal them to 1e-9.",
    ])
