"""A Book over a workbook open in a running LibreOffice, driven over UNO: the live-application test path.

`Office()` starts one headless `soffice` with a private profile and a private pipe, and connects to it;
`office.open(path)` loads a workbook into it as a `UnoBook`. Writes are buffered like every Book's and
`commit()` sets them all, then recalculates the whole document, so reading a formula cell afterwards gives
what LibreOffice computes from the new values. Debian: `apt-get install --no-install-recommends
libreoffice-calc-nogui python3-uno`; python3-uno is imported from /usr/lib/python3/dist-packages, which
is added to the end of sys.path only when `uno` is not importable otherwise (the venv must run the same
Python minor version as the system's python3).
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from xlcollab.book.base import Book, Grid, cell_name
from xlcollab.errors import WorkbookError, XlcollabError

INSTALL_HINT = ("install LibreOffice and its Python bridge: on Debian/Ubuntu "
                "`apt-get install --no-install-recommends libreoffice-calc-nogui python3-uno` "
                "(python3-uno must match this Python's version, here "
                f"{sys.version_info.major}.{sys.version_info.minor})")
SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"

# File filters LibreOffice uses to save in Excel's formats.
_FILTERS = {".xlsx": "Calc MS Excel 2007 XML", ".xlsm": "Calc MS Excel 2007 VBA XML", ".ods": "calc8"}


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
            raise XlcollabError(f"LibreOffice's Python bridge (uno) cannot be imported ({exc}); {INSTALL_HINT}") from None
    return uno


def soffice_path() -> str | None:
    """The `soffice` executable, or None when LibreOffice is not installed."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found:
        return found
    for candidate in ("/usr/lib/libreoffice/program/soffice", "/opt/libreoffice/program/soffice",
                      "/Applications/LibreOffice.app/Contents/MacOS/soffice"):
        if os.path.exists(candidate):
            return candidate
    return None


def available() -> bool:
    """True when both soffice and the uno module are there."""
    if soffice_path() is None:
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
    """One headless LibreOffice process with a private profile, reachable over a private pipe."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        uno = import_uno()
        exe = soffice_path()
        if exe is None:
            raise XlcollabError(f"LibreOffice (soffice) is not installed; {INSTALL_HINT}")
        self._profile = tempfile.mkdtemp(prefix="xlcollab-lo-")
        self.pipe = f"xlcollab-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._process = subprocess.Popen(
            [exe, f"-env:UserInstallation={Path(self._profile).as_uri()}", "--headless", "--invisible",
             "--nologo", "--norestore", "--nodefault", "--nolockcheck", f"--accept=pipe,name={self.pipe};urp;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.close)
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ctx = resolver.resolve(f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext")
                break
            except Exception as exc:  # NoConnectException until soffice listens
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise XlcollabError(f"LibreOffice did not start ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from None
                time.sleep(0.1)
        self.desktop = self._ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", self._ctx)

    def open(self, path: str | Path) -> "UnoBook":
        """Load a workbook (hidden, macros not run) and return it as a Book."""
        uno = import_uno()
        path = Path(path).resolve()
        if not path.is_file():
            raise WorkbookError("no such file", path=str(path))
        doc = self.desktop.loadComponentFromURL(uno.systemPathToFileUrl(str(path)), "_blank", 0,
                                                _props(Hidden=True, ReadOnly=False, MacroExecutionMode=0))
        if doc is None or not hasattr(doc, "Sheets"):
            if doc is not None:
                doc.close(True)
            raise WorkbookError("LibreOffice cannot open it as a spreadsheet", path=str(path))
        return UnoBook(doc, path, self)

    def close(self) -> None:
        """Ask LibreOffice to quit, kill it if it does not, and delete the private profile."""
        process = getattr(self, "_process", None)
        if process is None:
            return
        self._process = None
        try:
            if getattr(self, "desktop", None) is not None:
                self.desktop.terminate()
        except Exception:  # the bridge drops as soffice exits
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

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


class UnoBook(Book):
    """A workbook open in a live LibreOffice: reads what Calc shows, commits writes then recalculates."""

    def __init__(self, doc: Any, path: Path, office: Office) -> None:
        super().__init__()
        self.doc, self.path, self.office = doc, path, office
        self.name = path.name
        self.messages: list[str] = []  # status-bar texts (headless: nowhere to show them)
        self.alerts: list[str] = []    # message-box texts

    # -- reading ---------------------------------------------------------------------------
    def sheet_names(self) -> list[str]:
        return list(self.doc.Sheets.ElementNames)

    def _sheet(self, sheet: str):
        self.require_sheet(sheet)
        return self.doc.Sheets.getByName(sheet)

    def names(self, sheet: str) -> dict[str, str]:
        named = self._sheet(sheet).NamedRanges
        out = {}
        for name in named.ElementNames:
            item = named.getByName(name)
            cells = item.getReferredCells()
            if cells is None:  # a constant, or several ranges ("$s.$A$1:$B$2;$s.$C$3")
                out[name] = excel_formula(item.Content)
                continue
            a = cells.getRangeAddress()
            target = self.doc.Sheets.getByIndex(a.Sheet).Name
            first = _absolute(cell_name(a.StartRow + 1, a.StartColumn + 1))
            last = _absolute(cell_name(a.EndRow + 1, a.EndColumn + 1))
            ref = first if first == last else f"{first}:{last}"
            out[name] = f"'{target.replace(chr(39), chr(39) * 2)}'!{ref}"
        return out

    def read(self, sheet: str, ref: str) -> Grid:
        rng = self._sheet(sheet).getCellRangeByName(ref.replace("$", ""))
        data, formulas = rng.getDataArray(), rng.getFormulaArray()
        grid = []
        for data_row, formula_row in zip(data, formulas):
            row = []
            for value, formula in zip(data_row, formula_row):
                if formula == "":
                    row.append(None)
                elif formula.startswith("="):
                    row.append(excel_formula(formula))
                else:
                    row.append(value)
            grid.append(row)
        return grid

    def value(self, sheet: str, ref: str) -> Any:
        """What LibreOffice computes for one cell (a formula's result, not its text)."""
        return self.values(sheet, ref)[0][0]

    def values(self, sheet: str, ref: str) -> Grid:
        """The computed values of a range (formulas evaluated), None for empty cells."""
        rng = self._sheet(sheet).getCellRangeByName(ref.replace("$", ""))
        data, formulas = rng.getDataArray(), rng.getFormulaArray()
        return [[None if f == "" else v for v, f in zip(dr, fr)] for dr, fr in zip(data, formulas)]

    # -- writing ---------------------------------------------------------------------------
    def _commit(self, writes: dict[str, dict[str, Any]]) -> None:
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

    def recalc(self) -> None:
        """Recalculate every formula now."""
        self.doc.calculateAll()

    def save(self, path: str | Path | None = None) -> Path:
        """Save the document (to `path` in the format its suffix names, else where it came from)."""
        uno = import_uno()
        target = Path(path).resolve() if path else self.path
        flt = _FILTERS.get(target.suffix.lower())
        if flt is None:
            raise WorkbookError(f"cannot save as {target.suffix!r} (use one of {', '.join(_FILTERS)})", path=str(target))
        self.doc.storeToURL(uno.systemPathToFileUrl(str(target)), _props(FilterName=flt, Overwrite=True))
        return target

    def close(self) -> None:
        """Close the document without saving."""
        if self.doc is not None:
            self.doc.close(True)
            self.doc = None

    def active_sheet(self) -> str:
        """The sheet the document's view shows (the one a button would sit on)."""
        return self.doc.getCurrentController().getActiveSheet().Name

    def activate(self, sheet: str) -> None:
        """Show `sheet`, as clicking its tab does."""
        self.doc.getCurrentController().setActiveSheet(self._sheet(sheet))

    def put_sheet(self, spec: Any) -> None:
        """Create or replace sheet `spec.name` with its values and native charts (see xlcollab.excel.SheetSpec).

        A chart's series names come from the row above its ranges (the header row of the table).
        """
        from com.sun.star.awt import Rectangle  # type: ignore[import-not-found]
        from com.sun.star.table import CellRangeAddress  # type: ignore[import-not-found]

        from xlcollab.book.base import bounds

        sheets = self.doc.Sheets
        if sheets.hasByName(spec.name):
            sheets.removeByName(spec.name)
        sheets.insertNewByName(spec.name, sheets.Count)
        sh = sheets.getByName(spec.name)
        index = list(sheets.ElementNames).index(spec.name)
        width = max((len(r) for r in spec.cells), default=0)
        if width:
            rows = tuple(tuple("" if v is None else (v if isinstance(v, str) else float(v)) for v in row)
                         + ("",) * (width - len(row)) for row in spec.cells)
            sh.getCellRangeByPosition(0, 0, width - 1, len(rows) - 1).setDataArray(rows)
            for r, row in enumerate(spec.cells):  # setDataArray leaves "" as empty text: clear those cells
                for c, v in enumerate(row):
                    if v is None or v == "":
                        sh.getCellByPosition(c, r).setString("")
        for letter, chars in spec.widths.items():
            from openpyxl.utils import column_index_from_string
            sh.Columns.getByIndex(column_index_from_string(letter) - 1).Width = int(chars * 200)
        for i, ch in enumerate(spec.charts):
            x0r, x0c, x1r, _ = bounds(ch.x)
            last_col = max(bounds(ref)[3] for _, ref in ch.series)
            first_col = x0c if ch.kind == "line" else min(x0c, min(bounds(ref)[1] for _, ref in ch.series))
            addr = CellRangeAddress()
            addr.Sheet, addr.StartColumn, addr.StartRow = index, first_col - 1, x0r - 2  # - 2: the header row
            addr.EndColumn, addr.EndRow = last_col - 1, x1r - 1
            pos = sh.getCellRangeByName(ch.anchor).Position
            rect = Rectangle(pos.X, pos.Y, int(ch.width_cm * 1000), int(ch.height_cm * 1000))
            name = f"xlcollab_chart_{i + 1}"
            sh.Charts.addNewByName(name, rect, (addr,), True, ch.kind == "line")
            chart = sh.Charts.getByName(name).EmbeddedObject
            diagram = chart.createInstance("com.sun.star.chart.LineDiagram" if ch.kind == "line"
                                           else "com.sun.star.chart.XYDiagram")
            chart.setDiagram(diagram)
            if ch.kind != "line":
                diagram.Lines = False  # points only
            chart.HasMainTitle = True
            chart.Title.String = ch.title
            diagram.HasXAxisTitle = diagram.HasYAxisTitle = True
            diagram.XAxisTitle.String, diagram.YAxisTitle.String = ch.x_title, ch.y_title
        self.doc.calculateAll()

    def charts(self, sheet: str) -> list[dict[str, Any]]:
        """What LibreOffice shows as charts on `sheet`: type, title, axis titles, series count (for tests)."""
        out = []
        charts = self._sheet(sheet).Charts
        for name in charts.ElementNames:
            chart = charts.getByName(name).EmbeddedObject
            diagram = chart.getDiagram()
            out.append({"type": diagram.getDiagramType(),
                        "title": chart.Title.String if chart.HasMainTitle else None,
                        "x_title": diagram.XAxisTitle.String if diagram.HasXAxisTitle else None,
                        "y_title": diagram.YAxisTitle.String if diagram.HasYAxisTitle else None,
                        "series": len(chart.getFirstDiagram().getCoordinateSystems()[0].getChartTypes()[0].getDataSeries())})
        return out

    # -- feedback --------------------------------------------------------------------------
    def status(self, message: str) -> None:
        self.messages.append(message)

    def alert(self, message: str) -> None:
        self.alerts.append(message)


def _absolute(cell: str) -> str:
    m = re.match(r"([A-Z]+)(\d+)", cell)
    return f"${m[1]}${m[2]}"
