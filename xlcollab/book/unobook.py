"""A Book over a workbook open in a running LibreOffice, driven over UNO: the live-application backend.

`Office()` starts one headless `soffice` (through `libreoffice.soffice_command`, with a private profile
that recalculates on load and a private pipe) and connects to it; `office.open(path)` loads a workbook
into it as a `UnoBook`. Writes are buffered like every Book's and `commit()` sets them all, then
recalculates the whole document, so reading a formula cell afterwards gives what LibreOffice computes
from the new values. python3-uno is imported from /usr/lib/python3/dist-packages, which is added to the
end of sys.path only when `uno` is not importable otherwise (the venv must run the same Python minor
version as the system's python3).
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from xlcollab.book import libreoffice, unosheet
from xlcollab.book.base import Book, Cells, Grid, bounds, cell_name, range_name, union
from xlcollab.book.spec import SheetSpec
from xlcollab.errors import WorkbookError, XlcollabError

SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def import_uno():
    """The `uno` module, from the venv or Debian's python3-uno; XlcollabError saying how to install it."""
    try:
        import uno
    except ImportError:
        if os.path.isdir(SYSTEM_DIST_PACKAGES) and SYSTEM_DIST_PACKAGES not in sys.path:
            sys.path.append(SYSTEM_DIST_PACKAGES)  # appended: the venv's own packages keep priority
        try:
            import uno
        except ImportError as exc:
            raise XlcollabError(f"LibreOffice's Python bridge (uno) cannot be imported ({exc}); "
                                f"{libreoffice.INSTALL_HINT}") from None
    return uno


def available() -> bool:
    """True when both soffice and the uno module are there."""
    if not libreoffice.available():
        return False
    try:
        import_uno()
    except XlcollabError:
        return False
    return True


def _props(**values: Any) -> tuple:
    from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]
    out = []
    for name, value in values.items():
        p = PropertyValue()
        p.Name, p.Value = name, value
        out.append(p)
    return tuple(out)


class Office:
    """One headless LibreOffice process with a private profile, reachable over a private pipe.

    `profile` (default: a fresh temporary folder, deleted on close) and `env` (the process environment)
    let a caller keep extensions in a profile of its own or change how soffice loads its libraries.
    """

    def __init__(self, *, profile: str | Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        uno = import_uno()
        libreoffice.require_soffice()
        self._own_profile = profile is None
        self.profile = libreoffice.profile_dir(tempfile.mkdtemp(prefix="xlcollab-lo-") if profile is None else profile)
        self.pipe = f"xlcollab-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        cmd = libreoffice.soffice_command("--invisible", "--nodefault", "--nolockcheck",
                                          f"--accept=pipe,name={self.pipe};urp;", profile=self.profile)
        self.process: subprocess.Popen | None = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        atexit.register(self.close)
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctx = resolver.resolve(f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext")
                break
            except Exception as exc:  # NoConnectException until soffice listens
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise XlcollabError(f"LibreOffice did not start ({type(exc).__name__}: {exc}); "
                                        f"{libreoffice.INSTALL_HINT}") from None
                time.sleep(0.1)
        self.smgr = self.ctx.ServiceManager
        self.desktop = self.smgr.createInstanceWithContext("com.sun.star.frame.Desktop", self.ctx)

    def load(self, path: str | Path):
        """Load a document hidden, macros not run; the raw UNO document (None when LibreOffice cannot)."""
        uno = import_uno()
        return self.desktop.loadComponentFromURL(uno.systemPathToFileUrl(str(Path(path).resolve())), "_blank", 0,
                                                 _props(Hidden=True, ReadOnly=False, MacroExecutionMode=0))

    def open(self, path: str | Path) -> "UnoBook":
        """Load a workbook and return it as a Book."""
        path = Path(path).resolve()
        if not path.is_file():
            raise WorkbookError("no such file", path=str(path))
        doc = self.load(path)
        if doc is None or not hasattr(doc, "Sheets"):
            if doc is not None:
                doc.close(True)
            raise WorkbookError("LibreOffice cannot open it as a spreadsheet", path=str(path))
        return UnoBook(doc, path, self)

    def kill(self) -> None:
        """Stop soffice at once (its whole process group: oosplash and soffice.bin)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self, *, wait: float = 10.0) -> None:
        """Ask LibreOffice to quit, kill it if it does not, and delete a temporary profile."""
        process = getattr(self, "process", None)
        if process is None:
            return
        try:
            if getattr(self, "desktop", None) is not None:
                self.desktop.terminate()
        except Exception:  # the bridge drops as soffice exits
            pass
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.kill()
            process.wait(timeout=wait)
        self.process = None
        if self._own_profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Office":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHEET_REF = re.compile(r"\$?('(?:[^']|'')+'|[A-Za-z_][\w.]*?)\.(\$?[A-Z]{1,3}\$?\d+)")


def excel_formula(api_formula: str) -> str:
    """LibreOffice's API formula ("=IF(A1="";0;$'s'.B2)") in Excel's syntax ("=IF(A1="",0,'s'!B2)")."""
    out = []
    for part in re.split(r'("[^"]*")', api_formula):
        if part.startswith('"') and part.endswith('"') and len(part) >= 2:
            out.append(part)
            continue
        part = part.replace(";", ",")
        out.append(_SHEET_REF.sub(lambda m: f"{_quoted(m[1])}!{m[2]}", part))
    return "".join(out)


def _quoted(sheet: str) -> str:
    return sheet if sheet.startswith("'") else f"'{sheet}'"


def _absolute(cell: str) -> str:
    m = re.match(r"([A-Z]+)(\d+)", cell)
    return f"${m[1]}${m[2]}"


def _address(a: Any) -> str:
    """"B3:D5" of a UNO CellRangeAddress."""
    return range_name(a.StartRow + 1, a.StartColumn + 1, a.EndRow + 1, a.EndColumn + 1)


class UnoBook(Book):
    """A workbook open in a live LibreOffice: reads what Calc shows, commits writes then recalculates."""

    def __init__(self, doc: Any, path: Path, office: Office) -> None:
        self.doc, self.path, self.office = doc, path, office
        self.name = path.name
        self.messages: list[str] = []  # status-bar texts (headless: nowhere to show them)
        self.alerts: list[str] = []    # message-box texts
        super().__init__()

    def _forget(self) -> None:
        super()._forget()
        self._arrays: dict[str, dict[str, str]] = {}

    # -- reading ---------------------------------------------------------------------------
    def _sheet_names(self) -> list[str]:
        return list(self.doc.Sheets.ElementNames)

    def _sheet(self, sheet: str):
        return self.doc.Sheets.getByName(sheet)

    def _name_text(self, item: Any) -> str:
        """A named range as Excel writes it: "'s'!$A$1:$B$2", or the content of a constant or a multi-range name."""
        cells = item.getReferredCells()
        if cells is None:  # a constant, or several ranges ("$s.$A$1:$B$2;$s.$C$3")
            return excel_formula(item.Content)
        a = cells.getRangeAddress()
        target = self.doc.Sheets.getByIndex(a.Sheet).Name
        first = _absolute(cell_name(a.StartRow + 1, a.StartColumn + 1))
        last = _absolute(cell_name(a.EndRow + 1, a.EndColumn + 1))
        ref = first if first == last else f"{first}:{last}"
        return f"'{target.replace(chr(39), chr(39) * 2)}'!{ref}"

    def _names(self, sheet: str) -> dict[str, str]:
        named = self._sheet(sheet).NamedRanges
        return {name: self._name_text(named.getByName(name)) for name in named.ElementNames}

    def _global_names(self) -> dict[str, str]:
        named = self.doc.NamedRanges
        return {name: self._name_text(named.getByName(name)) for name in named.ElementNames}

    def _read(self, sheet: str, ref: str) -> Grid:
        rng = self._sheet(sheet).getCellRangeByName(ref)
        data, formulas = rng.getDataArray(), rng.getFormulaArray()
        r0, c0, _, _ = bounds(ref)
        grid = []
        for i, (data_row, formula_row) in enumerate(zip(data, formulas)):
            row = []
            for j, (value, formula) in enumerate(zip(data_row, formula_row)):
                if formula == "":
                    row.append(None)
                elif formula.startswith("="):
                    row.append(excel_formula(formula))
                elif formula.startswith("{=") and cell_name(r0 + i, c0 + j) in self._array_formulas(sheet):
                    row.append(excel_formula(formula[1:-1]))  # an array formula, at its anchor
                else:
                    row.append(value)
            grid.append(row)
        return grid

    def _array_formulas(self, sheet: str) -> dict[str, str]:
        if sheet not in self._arrays:
            from com.sun.star.sheet.CellFlags import FORMULA  # type: ignore[import-not-found]
            sh, found = self._sheet(sheet), {}
            covered: list[tuple[int, int, int, int]] = []
            for a in sh.queryContentCells(FORMULA).getRangeAddresses():
                block = sh.getCellRangeByPosition(a.StartColumn, a.StartRow, a.EndColumn, a.EndRow).getFormulaArray()
                for i, row in enumerate(block):
                    for j, formula in enumerate(row):
                        r, c = a.StartRow + i + 1, a.StartColumn + j + 1
                        if formula.startswith("{=") and not any(b[0] <= r <= b[2] and b[1] <= c <= b[3] for b in covered):
                            cursor = sh.createCursorByRange(sh.getCellByPosition(c - 1, r - 1))
                            cursor.collapseToCurrentArray()
                            extent = _address(cursor.getRangeAddress())
                            found[extent.split(":")[0]] = extent
                            covered.append(bounds(extent))
            self._arrays[sheet] = found
        return self._arrays[sheet]

    def _merged_cells(self, sheet: str) -> list[str]:
        sh, out = self._sheet(sheet), []
        groups = sh.getUniqueCellFormatRanges()  # a merged area's anchor carries its span as a format attribute
        for i in range(groups.Count):
            anchors = groups.getByIndex(i).getRangeAddresses()
            first = anchors[0]
            if not sh.getCellRangeByPosition(first.StartColumn, first.StartRow, first.EndColumn, first.EndRow).getIsMerged():
                continue
            for a in anchors:
                cursor = sh.createCursorByRange(sh.getCellByPosition(a.StartColumn, a.StartRow))
                cursor.collapseToMergedArea()
                out.append(_address(cursor.getRangeAddress()))
        return out

    def _used_range(self, sheet: str) -> str:
        cursor = self._sheet(sheet).createCursor()
        cursor.gotoStartOfUsedArea(False)
        cursor.gotoEndOfUsedArea(True)
        return union([_address(cursor.getRangeAddress()), *self._merged_cells(sheet)]) or "A1"

    def _is_protected(self, sheet: str) -> bool:
        return bool(self._sheet(sheet).isProtected())

    def value(self, sheet: str, ref: str) -> Any:
        """What LibreOffice computes for one cell (a formula's result, not its text)."""
        return self.values(sheet, ref)[0][0]

    def values(self, sheet: str, ref: str) -> Grid:
        """The computed values of a range (formulas evaluated), None for empty cells."""
        self.require_sheet(sheet)
        rng = self._sheet(sheet).getCellRangeByName(ref.replace("$", ""))
        data, formulas = rng.getDataArray(), rng.getFormulaArray()
        return [[None if f == "" else v for v, f in zip(dr, fr)] for dr, fr in zip(data, formulas)]

    def active_sheet(self) -> str:
        """The sheet the document's view shows (the one a button would sit on)."""
        return self.doc.getCurrentController().getActiveSheet().Name

    def activate(self, sheet: str) -> None:
        """Show `sheet`, as clicking its tab does."""
        self.require_sheet(sheet)
        self.doc.getCurrentController().setActiveSheet(self._sheet(sheet))

    def location(self) -> Path:
        return self.path

    # -- writing ---------------------------------------------------------------------------
    def _commit(self, writes: Cells, cached: Cells) -> None:
        """Set every written cell, then recalculate (cached results are LibreOffice's own to compute)."""
        from com.sun.star.table.CellContentType import FORMULA  # type: ignore[import-not-found]
        cells = []
        for sheet, values in writes.items():  # check everything before changing anything
            sh = self._sheet(sheet)
            for ref, value in values.items():
                cell = sh.getCellRangeByName(ref)
                if cell.getType() == FORMULA:
                    raise WorkbookError(f"refusing to overwrite the formula {excel_formula(cell.getFormula())}",
                                        sheet=sheet, cell=ref, path=self.name)
                cells.append((cell, value))
        self.doc.lockControllers()
        self.doc.addActionLock()
        try:
            for cell, value in cells:
                if value is None:
                    cell.setString("")
                elif isinstance(value, str):
                    cell.setString(value)
                else:
                    cell.setValue(float(value))
        finally:
            self.doc.removeActionLock()
            self.doc.unlockControllers()
        self.doc.calculateAll()

    def close(self) -> None:
        """Close the document without saving."""
        if self.doc is not None:
            self.doc.close(True)
            self.doc = None

    def _put_sheet(self, spec: SheetSpec) -> None:
        unosheet.put_sheet(self.doc, spec)

    def charts(self, sheet: str) -> list[dict[str, Any]]:
        """What LibreOffice shows as charts on `sheet`: type, title, axis titles, series count (for tests)."""
        self.require_sheet(sheet)
        return unosheet.charts(self._sheet(sheet))

    # -- feedback --------------------------------------------------------------------------
    def status(self, message: str) -> None:
        self.messages.append(message)

    def alert(self, message: str) -> None:
        self.alerts.append(message)
