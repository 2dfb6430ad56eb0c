"""The cached values a write carries: every formula of the sheets it changes, computed by the formula compiler.

A file written by xlcollab holds beside each formula its result, so that readers that do not calculate (openpyxl
`data_only=True`, pandas, a viewer) see the numbers; Excel and LibreOffice still recalculate on open
(`fullCalcOnLoad`). The values come from the one evaluator, `compile_cells(...).values`, with no variable cells:
the book's current values, its buffered writes included. A formula the compiler cannot evaluate (a function it
does not know, a circular reference) gets no cached value: the file shows it empty until an application
recalculates, rather than a number that might be wrong. Error results are stored as Excel errors ("#N/A").
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from xlcollab.book.base import Book, Cells, Grid, Unsupported, cell_name
from xlcollab.solver.extra_cells import Overlay, with_writes
from xlcollab.solver.refs import Cell

__all__ = ["as_cached", "buffer_formula_values", "formula_values"]


def formula_values(book: Book, sheets: Iterable[str] | None = None) -> Cells:
    """{sheet: {cell: value}} of every formula on `sheets` and on every sheet whose formulas read them (default:
    every sheet), as the book reads once its buffered writes are committed: ready for `Book.write_cached`."""
    import torch  # the compiler (and torch) load only when a file write needs them, not for a live application

    from xlcollab.solver.compile import compile_cells

    every = book.sheet_names()
    view = with_writes(book)
    if sheets is not None and book.keeps_cached_values:
        sheets = _changed(view, set(sheets) | set(book.pending()))
        view = Frozen(view, [s for s in every if s not in sheets and _fully_cached(book, s)])
    with warnings.catch_warnings():  # notes about the variables' path: there are no variables here
        warnings.simplefilter("ignore")
        compiled = compile_cells(view, [], [], sheets=every)
    targets = None if sheets is None else compiled.readers(sheets)
    return as_cached(compiled.values(torch.zeros(0, dtype=torch.float64), targets))


def _formulas(book: Book, sheet: str) -> list[str]:
    """The text of every formula on `sheet` and of its sheet-scoped names."""
    cells = [v for row in book.read(sheet, book.used_range(sheet)) for v in row if isinstance(v, str) and v[:1] == "="]
    return cells + list(book.array_formulas(sheet).values()) + list(book.names(sheet).values())


def _changed(book: Book, written: set[str]) -> set[str]:
    """The sheets whose formula results may change: those written and, transitively, every sheet whose formulas or
    names mention one of them (by its sheet name, or through a workbook-scoped name that does): a superset, from the
    formulas' text, so no compile is needed to find them."""
    every = book.sheet_names()
    try:
        global_names = book.global_names()
    except Unsupported:
        global_names = {}
    def mentions(text: str, sheet: str) -> bool:
        quoted = "'" + sheet.replace("'", "''") + "'!"
        return quoted.lower() in text.lower() or re.search(rf"(?<![\w.']){re.escape(sheet)}!", text, re.I) is not None
    texts = {s: "\n".join(_formulas(book, s)) for s in every}
    changed, grew = set(written), True
    while grew:
        names = [n for n, text in global_names.items() if any(mentions(text, s) for s in changed)]
        more = {s for s in every if s not in changed and (any(mentions(texts[s], c) for c in changed)
                                                          or any(re.search(rf"\b{re.escape(n)}\b", texts[s], re.I)
                                                                 for n in names))}
        changed |= more
        grew = bool(more)
    return changed


def _fully_cached(book: Book, sheet: str) -> bool:
    """Whether the file caches a result beside every formula of `sheet` (openpyxl-saved files cache none)."""
    ref = book.used_range(sheet)
    cached = book.read_cached(sheet, ref)
    return all(c is not None for row, crow in zip(book.read(sheet, ref), cached)
               for v, c in zip(row, crow) if isinstance(v, str) and v[:1] == "=")


class Frozen(Overlay):
    """`book` with the `frozen` sheets read as the file cached them: their formulas' results as constants. A sheet
    nothing written can change keeps its results, so the compiler need not recompute its formulas (graddesc's chained
    step tables are its slowest)."""

    def __init__(self, book: Book, frozen: Iterable[str]) -> None:
        super().__init__(book)
        self.frozen = set(frozen)

    def read(self, sheet: str, ref: str) -> Grid:
        return self.book.read_cached(sheet, ref) if sheet in self.frozen else super().read(sheet, ref)

    def array_formulas(self, sheet: str) -> dict[str, str]:
        return {} if sheet in self.frozen else self.book.array_formulas(sheet)


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
