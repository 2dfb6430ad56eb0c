"""A tab's settings cells, as the buttons read them: the block a sheet-scoped name `settings` points at.

The block is rows of label | value (the value in its last column); the labels are the keys of SETTINGS. A blank value
leaves that setting to the tab's default; a bad one is refused with the usual one line naming file, sheet and cell.
A setting given by the caller (the ribbon's choices, a Python keyword) wins over the cell. A tab without the block
runs on its defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xlcollab.book.base import bounds, cell_name
from xlcollab.book.cells import at
from xlcollab.core import checks
from xlcollab.errors import WorkbookError

if TYPE_CHECKING:
    from xlcollab.book.base import Book

NAME = "settings"
DEVICES = ("auto", "cpu", "cuda")
ENGINES = ("auto", "grg", "lp", "evolutionary")
# label -> how its value is checked (core.checks, with the words every message uses)
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "optimizer": lambda v: checks.choice(v, "the optimizer", ("adam", "adamw", "sgd", "momentum", "lbfgs")),
    "lr": lambda v: checks.number(v, "the learning rate", lo=0, lo_open=True),
    "epochs": lambda v: checks.whole(v, "epochs", lo=1, hi=1_000_000),
    "device": lambda v: checks.choice(v, "the device", DEVICES),
    "multistart": lambda v: checks.whole(v, "multistart", lo=1, hi=100_000),
    "engine": lambda v: checks.choice(v, "the engine", ENGINES),
}


def read(book: Book, sheet: str) -> dict[str, Any]:
    """{label: value} of the tab's settings block, for the rows whose value is not blank; {} without a block."""
    if NAME not in book.names(sheet):
        return {}
    ref = book.ref_of(sheet, NAME)
    r0, c0, _, c1 = bounds(ref)
    out: dict[str, Any] = {}
    for i, row in enumerate(book.read(sheet, ref)):
        label = str(row[0]).strip().lower() if not checks.is_blank(row[0]) else ""
        if label not in SETTINGS:
            raise WorkbookError(f"the settings block has a row '{row[0]}'; its rows are {', '.join(SETTINGS)}",
                                sheet=sheet, cell=cell_name(r0 + i, c0), path=book.name)
        if not checks.is_blank(row[-1]):
            with at(book, sheet, cell_name(r0 + i, c1)):
                out[label] = SETTINGS[label](row[-1])
    return out


def merged(book: Book, sheet: str, given: dict[str, Any]) -> dict[str, Any]:
    """The tab's settings overridden by those `given` (None in `given` means: not given)."""
    return {**read(book, sheet), **{k: v for k, v in given.items() if v is not None}}
