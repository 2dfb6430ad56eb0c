"""A whole sheet to (re)place in a workbook, with its native charts: what `Book.put_sheet` takes.

Cell writes cannot make a sheet or a chart; a spec describes both in plain data, so the file, LibreOffice
and Excel backends each build the same sheet their own way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class SheetSpec:
    """A whole sheet to (re)place: values from A1 (formulas as "=..." text), column widths and charts."""

    name: str
    cells: list[list[Any]]
    charts: list[Chart] = field(default_factory=list)
    widths: dict[str, float] = field(default_factory=dict)   # column letter -> width in characters
