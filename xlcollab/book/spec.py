"""A whole sheet to (re)place in a workbook, with its native charts: what `Book.put_sheet` takes.

Cell writes cannot make a sheet or a chart; a spec describes both in plain data, so the file, LibreOffice
and Excel backends each build the same sheet their own way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openpyxl.utils.cell import range_boundaries


@dataclass
class Chart:
    """A native chart over cells of the sheet it sits on: `kind` "line" (x = categories) or "scatter" (x values)."""

    kind: str
    title: str
    x_title: str
    y_title: str
    x: str                                  # "A3:A12"
    series: list[tuple[str, str]]           # [(series name, "B3:B12")]
    anchor: str                             # top-left cell, "H2"
    width_cm: float = 16.0
    height_cm: float = 9.0

    def table(self) -> tuple[int, int, int, int]:
        """(min_row, min_col, max_row, max_col) of the block a live application charts: from the header row
        above `x` down to its last row, from the x column (a line chart's categories) or the first series
        column (a scatter's x may sit right of its series) to the last series column."""
        x_col, x_row, _, x_last = range_boundaries(self.x)
        series = [range_boundaries(ref) for _, ref in self.series]
        first = x_col if self.kind == "line" else min([x_col] + [b[0] for b in series])
        return x_row - 1, first, x_last, max(b[2] for b in series)


@dataclass
class SheetSpec:
    """A whole sheet to (re)place: values from A1 (formulas as "=..." text), column widths and charts."""

    name: str
    cells: list[list[Any]]
    charts: list[Chart] = field(default_factory=list)
    widths: dict[str, float] = field(default_factory=dict)   # column letter -> width in characters
