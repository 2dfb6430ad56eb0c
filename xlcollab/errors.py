"""The error family: every error a user can cause is an XlcollabError with a one-line message."""
from __future__ import annotations


class XlcollabError(Exception):
    """Root of every error xlcollab raises on purpose; the CLI prints it as one line, exit status 1."""


class DataError(XlcollabError):
    """Bad ratings data: names the file, row, column or id."""


class SettingsError(XlcollabError, ValueError):
    """An impossible setting (negative epochs, zero factors, a bad learning rate)."""


class WorkbookError(XlcollabError):
    """A workbook that cannot be read, solved or written: names the file, sheet and cell."""

    def __init__(self, message: str, *, sheet: str | None = None, cell: str | None = None, path: str | None = None):
        where = ", ".join(p for p in (f"file {path}" if path else None,
                                      f"sheet '{sheet}'" if sheet else None,
                                      f"cell {cell}" if cell else None) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.sheet, self.cell, self.path = sheet, cell, path


class DivergedError(XlcollabError):
    """A fit whose loss became NaN or infinite."""


class SolveError(WorkbookError):
    """A Solver model without an answer (infeasible, unbounded, node limit): names the sheet; nothing is written."""
