"""The graddesc workbook: fit y = a·x + b one SGD step per row, one tab per update rule, run by torch's rules.

Tabs: `Intro` (what each tab teaches, how to use it), `data` (x, y = 2x + 30 [+ noise]), one tab per optimizer
(SPECS: basic SGD, momentum, adagrad, adagrad_fastai, adagrad_ann, rmsprop, adam, adamw, l2, adam_ann, adam_ann_vba)
and `compare` (every optimizer's loss per epoch on one chart).
By job: `specs` (what each tab is), `layout` (where its cells are, its formulas), `simulate` (the epochs on
xlcollab.core.optim's rules), `build` (openpyxl), `run` (Run and Reset on any Book).
"""
from __future__ import annotations

from xlcollab.sheets.graddesc.build import build_workbook
from xlcollab.sheets.graddesc.layout import BUTTONS_CELL, DATA_FIRST, FIRST, HEADER, Layout
from xlcollab.sheets.graddesc.run import (check_formulas, read_data, read_inputs, read_start, reset_book, run_book,
                                          trace_fill, write_state)
from xlcollab.sheets.graddesc.simulate import DIVERGED, Epoch, Start, make_data, rule_settings, run_epoch, simulate
from xlcollab.sheets.graddesc.specs import (BUTTONS, COMPARE, DATA, FD_OFFSET, LIMITS, OPTIMIZERS, SPECS, TRACE_ROWS,
                                            TRUE_A, TRUE_B, Input, Spec, tabs)

__all__ = ["BUTTONS", "BUTTONS_CELL", "COMPARE", "DATA", "DATA_FIRST", "DIVERGED", "FD_OFFSET", "FIRST", "HEADER",
           "LIMITS", "OPTIMIZERS", "SPECS", "TRACE_ROWS", "TRUE_A", "TRUE_B", "Epoch", "Input", "Layout", "Spec", "Start",
           "build_workbook", "check_formulas", "make_data", "read_data", "read_inputs", "read_start",
           "reset_book", "rule_settings", "run_book", "run_epoch", "simulate", "tabs", "trace_fill", "write_state"]
