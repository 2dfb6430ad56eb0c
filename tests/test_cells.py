"""book/cells.py: typed reads through a Book; a bad value is one WorkbookError naming file, sheet and cell."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook

from xlcollab.book import cells
from xlcollab.book.filebook import FileBook
from xlcollab.errors import WorkbookError
from xlcollab.sheets.common import define_block


@pytest.fixture
def book(tmp_path: Path) -> FileBook:
    wb = Workbook()
    ws = wb.active
    ws.title = "my sheet"
    ws["A1"], ws["A2"], ws["A3"] = 0.5, None, 3
    ws["B1"], ws["B2"], ws["B3"] = "=A1*2", "text", True
    ws["C1"], ws["C2"] = "on", 2.5
    define_block(ws, "column", 1, 1, 3, 1)
    define_block(ws, "grid", 1, 1, 3, 2)
    define_block(ws, "lr", 1, 1)
    wb.save(tmp_path / "b.xlsx")
    return FileBook(tmp_path / "b.xlsx")


def test_numbers_read_as_floats_and_arrays(book: FileBook) -> None:
    assert cells.number_at(book, "my sheet", "A1", "x", lo=0, hi=1) == 0.5
    assert cells.whole_at(book, "my sheet", "A3", "n", lo=1) == 3 and isinstance(cells.whole_at(book, "my sheet", "A3", "n"), int)
    assert cells.named_number(book, "my sheet", "lr", "the learning rate", lo=0, lo_open=True) == 0.5
    assert cells.choice_at(book, "my sheet", "C1", "the switch", ("on", "off")) == "on"
    got = cells.numbers_in(book, "my sheet", "column", "a value", blanks=True)
    assert got.shape == (3, 1) and got[0, 0] == 0.5 and math.isnan(got[1, 0]) and got[2, 0] == 3.0
    assert got.dtype == np.float64


@pytest.mark.parametrize("read,cell,words", [
    (lambda b: cells.number_at(b, "my sheet", "A1", "the learning rate", lo=1), "A1", "must be a number >= 1, found 0.5"),
    (lambda b: cells.number_at(b, "my sheet", "B1", "x"), "B1", "a formula (=A1*2)"),
    (lambda b: cells.number_at(b, "my sheet", "B3", "x"), "B3", "found True"),
    (lambda b: cells.whole_at(b, "my sheet", "C2", "epochs"), "C2", "whole number"),
    (lambda b: cells.choice_at(b, "my sheet", "C2", "the switch", ("on", "off")), "C2", "one of on, off"),
    (lambda b: cells.numbers_in(b, "my sheet", "column", "a value"), "A2", "found blank"),
    (lambda b: cells.numbers_in(b, "my sheet", "grid", "a value", blanks=True), "B1", "a formula"),
    (lambda b: cells.numbers_in(b, "my sheet", "column", "a value", blanks=True, hi=2), "A3", "<= 2, found 3"),
])
def test_a_bad_value_names_file_sheet_and_cell(book: FileBook, read, cell: str, words: str) -> None:
    with pytest.raises(WorkbookError) as info:
        read(book)
    message = str(info.value)
    assert message.startswith(f"file {book.name}, sheet 'my sheet', cell {cell}: "), message
    assert words in message and "\n" not in message
    assert (info.value.sheet, info.value.cell) == ("my sheet", cell)


def test_a_missing_name_is_refused(book: FileBook) -> None:
    with pytest.raises(WorkbookError, match="the defined name 'nope' is missing"):
        cells.numbers_in(book, "my sheet", "nope", "x")
