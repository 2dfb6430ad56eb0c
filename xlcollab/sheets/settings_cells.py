"""A tab's settings cells, as the buttons read them: the block a sheet-scoped name `settings` points at.

The block is rows of label | value (the value in its last column); the labels are the keys of SETTINGS. A blank value
leaves that setting to the tab's default; a bad one is refused with the usual one line naming file, sheet and cell.
A setting given by the caller (the ribbon's choices, a Python keyword, a flag of `xlcollab solve`) wins over the cell.
A tab without the block runs on its defaults. Multistart 1 (one start) reads as 0: the sheet's own start values alone.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xlcollab.book.base import bounds, cell_name
from xlcollab.book.cells import at
from xlcollab.core import checks
from xlcollab.errors import WorkbookError
from xlcollab.sheets.common import SETTING_CHOICES, SETTING_WHOLE

if TYPE_CHECKING:
    from xlcollab.book.base import Book

NAME = "settings"


def _choice(label: str, what: str) -> Callable[[Any], str]:
    return lambda v: checks.choice(v, what, SETTING_CHOICES[label])


def _whole(label: str, what: str) -> Callable[[Any], int]:
    lo, hi = SETTING_WHOLE[label]
    return lambda v: checks.whole(v, what, lo=lo, hi=hi)


# label -> how its value is checked (core.checks, with the words every message uses); the choices and ranges are
# sheets.common's, which also sets the cells' data validation
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "optimizer": _choice("optimizer", "the optimizer"),
    "lr": lambda v: checks.number(v, "the learning rate", lo=0, lo_open=True),
    "epochs": _whole("epochs", "epochs"),
    "device": _choice("device", "the device"),
    "multistart": _whole("multistart", "multistart"),
    "engine": _choice("engine", "the engine"),
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
    if out.get("multistart") == 1:  # one start: the sheet's own start values, no random ones
        out["multistart"] = 0
    return out


def merged(book: Book, sheet: str, given: dict[str, Any]) -> dict[str, Any]:
    """The tab's settings overridden by those `given` (None in `given` means: not given)."""
    return {**read(book, sheet), **{k: v for k, v in given.items() if v is not None}}


def run_epochs(book: Book, tab: str, given: int | None = None) -> int:
    """The epochs a Run of graddesc tab `tab` takes: `given`, else the tab's epochs cell, else RUN_EPOCHS (5, as the
    original button); the Run button and `xlcollab run` both ask here."""
    from xlcollab.sheets.graddesc.layout import RUN_EPOCHS  # here: a collab solve never loads the graddesc package

    return merged(book, tab, {"epochs": given}).get("epochs", RUN_EPOCHS)
