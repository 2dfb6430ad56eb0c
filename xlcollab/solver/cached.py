"""The cached values a write carries: every formula of the sheets it changes, computed by the formula compiler.

A file written by xlcollab holds beside each formula its result, so that readers that do not calculate (openpyxl
`data_only=True`, pandas, a viewer) see the numbers; Excel and LibreOffice still recalculate on open
(`fullCalcOnLoad`). The values come from the one evaluator, `compile_cells(...).values`, with no variable cells:
the book's current values, its buffered writes included. A formula the compiler cannot evaluate (a function it
does not know, a circular reference) gets no cached value: the file shows it empty until an application
recalculates, rather than a number that might be wrong. Error results are stored as Excel errors ("#N/A").
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from xlcollab.book.base import Book, Cells, cell_name
from xlcollab.solver.extra_cells import with_writes
from xlcollab.solver.refs import Cell

__all__ = ["as_cached", "buffer_formula_values", "formula_values"]


def formula_values(book: Book, sheets: Iterable[str] | None = None) -> Cells:
    """{sheet: {cell: value}} of every formula on `sheets` and on every sheet whose formulas read them (default:
    every sheet), as the book reads once its buffered writes are committed: ready for `Book.write_cached`."""
    import torch  # the compiler (and torch) load only when a file write needs them, not for a live application

    from xlcollab.solver.compile import compile_cells

    every = book.sheet_names()
    with warnings.catch_warnings():  # notes about the variables' path: there are no variables here
        warnings.simplefilter("ignore")
        compiled = compile_cells(with_writes(book), [], [], sheets=every)
    targets = None if sheets is None else compiled.readers(sheets)
    return as_cached(compiled.values(torch.zeros(0, dtype=torch.float64), targets))


def buffer_formula_values(book: Book, sheets: Iterable[str] | None = None) -> None:
    """Buffer `formula_values(book, sheets)` into the book; nothing on a live application, which computes its own."""
    if not book.keeps_cached_values:
        return
    for sheet, cells in formula_values(book, sheets).items():
        book.write_cached(sheet, cells)


def as_cached(values: Mapping[Cell, Any], leave_out: Iterable[Cell] = ()) -> Cells:
    """{(sheet, row, col): value} (what `Compiled.values` gives) as {sheet: {"B3": value}}, less `leave_out`."""
    skip = set(leave_out)
    out: Cells = {}
    for cell, value in values.items():
        if cell not in skip:
            out.setdefault(cell[0], {})[cell_name(cell[1], cell[2])] = value
    return out
