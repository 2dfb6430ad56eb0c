"""A Book over a live Excel workbook through xlwings: what the buttons' macros work on.

Reads take values and formulas of a range in two calls; `commit()` checks that no written cell holds a
formula, writes each horizontal run of cells in one call with screen updating off, then lets Excel
recalculate. Progress goes to Excel's status bar, failures to a message box. Needs Excel (Windows or
macOS); nothing here runs on Linux, where the same macros are tested through FileBook and UnoBook.
xlwings has no cross-platform call for an array formula's extent or a sheet's protection, so
`array_formulas` and `is_protected` raise `Unsupported` here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from xlcollab.book.base import Book, Cells, Grid, bounds, cell_name, column_index
from xlcollab.book.spec import SheetSpec
from xlcollab.errors import WorkbookError


def as_text(value: Any) -> Any:
    """What to assign to Range.value so that text stays text: Excel parses an assigned string as if typed, so
    "=...", "+...", "-...", "@..." would become formulas and "1/2" a date; a leading apostrophe makes it text
    (Excel keeps it as the cell's prefix character, not in the value)."""
    return "'" + value if isinstance(value, str) and value else value


def _grid(value: Any, rows: int, cols: int) -> Grid:
    """xlwings gives a scalar for one cell and a flat list for one row/column: always a 2-D list."""
    if rows == 1 and cols == 1:
        return [[value[0][0] if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)) else value]]
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (list, tuple)):
        return [list(value)] if rows == 1 else [[v] for v in value]
    return [list(r) for r in value]


class XlwingsBook(Book):
    """An open Excel workbook (an `xw.Book`), e.g. `XlwingsBook(xw.Book.caller())`."""

    def __init__(self, book: Any) -> None:
        super().__init__()
        self.book = book
        self.name = book.name
        self.fullname = book.fullname

    def location(self) -> Path | None:
        """The workbook file, when it is saved on a local disk (not a new or OneDrive-only book)."""
        full = self.fullname
        return Path(full) if full and "://" not in full and Path(full).is_absolute() else None

    def _sheet_names(self) -> list[str]:
        return [s.name for s in self.book.sheets]

    def _sheet(self, sheet: str):
        return self.book.sheets[sheet]

    def _names(self, sheet: str) -> dict[str, str]:
        out = {}
        for n in self._sheet(sheet).names:  # sheet-scoped names: name "'dotprod'!movie_factors"
            out[n.name.rsplit("!", 1)[-1]] = n.refers_to.lstrip("=")
        return out

    def _global_names(self) -> dict[str, str]:
        return {n.name: n.refers_to.lstrip("=") for n in self.book.names if "!" not in n.name}

    def _used_range(self, sheet: str) -> str:
        return self._sheet(sheet).used_range.address.replace("$", "")

    def _merged_cells(self, sheet: str) -> list[str]:
        used = self._sheet(sheet).used_range
        if not used.merge_cells:  # one call answers "none here" for the whole sheet
            return []
        found: dict[str, None] = {}
        for cell in used:
            if cell.merge_cells:
                found.setdefault(cell.merge_area.address.replace("$", ""))
        return list(found)

    def _read(self, sheet: str, ref: str) -> Grid:
        r0, c0, r1, c1 = bounds(ref)
        rng = self._sheet(sheet).range(ref)
        values = _grid(rng.options(ndim=2).value, r1 - r0 + 1, c1 - c0 + 1)
        formulas = _grid(rng.formula, r1 - r0 + 1, c1 - c0 + 1)
        return [[f if isinstance(f, str) and f.startswith("=") else v for v, f in zip(vr, fr)]
                for vr, fr in zip(values, formulas)]

    def _commit(self, writes: Cells, cached: Cells) -> None:
        runs = []
        for sheet, cells in writes.items():  # check every written cell before writing any
            sht = self._sheet(sheet)
            coords = {}
            for ref in cells:
                letters = ref.rstrip("0123456789")
                coords[ref] = (int(ref[len(letters):]), column_index(letters))
            r0, r1 = min(r for r, _ in coords.values()), max(r for r, _ in coords.values())
            c0, c1 = min(c for _, c in coords.values()), max(c for _, c in coords.values())
            box = f"{cell_name(r0, c0)}:{cell_name(r1, c1)}"
            formulas = _grid(sht.range(box).formula, r1 - r0 + 1, c1 - c0 + 1)
            for ref, (r, c) in coords.items():
                f = formulas[r - r0][c - c0]
                if isinstance(f, str) and f.startswith("="):
                    raise WorkbookError(f"refusing to overwrite the formula {f}", sheet=sheet, cell=ref, path=self.name)
            by_row: dict[int, list[tuple[int, Any]]] = {}
            for ref, (r, c) in coords.items():
                by_row.setdefault(r, []).append((c, as_text(cells[ref])))
            for r, items in by_row.items():
                items.sort()
                start, run = items[0][0], [items[0][1]]
                for (c, v), (prev, _) in zip(items[1:], items):
                    if c == prev + 1:
                        run.append(v)
                    else:
                        runs.append((sht, r, start, run))
                        start, run = c, [v]
                runs.append((sht, r, start, run))
        app = self.book.app
        with app.properties(screen_updating=False):
            for sht, r, c, values in runs:
                sht.range((r, c)).value = [values] if len(values) > 1 else values[0]
        app.calculate()

    def active_sheet(self) -> str:
        """The sheet whose button was clicked."""
        return self.book.sheets.active.name

    def status(self, message: str) -> None:
        self.book.app.status_bar = message or False

    def alert(self, message: str) -> None:
        self.book.app.alert(message, title="xlcollab", buttons="ok", mode="critical")

    def inform(self, message: str) -> None:
        self.book.app.alert(message, title="xlcollab", buttons="ok", mode="info")

    def _put_sheet(self, spec: SheetSpec) -> None:
        """Create or replace sheet `spec.name` with values and native charts (titles where Excel's API allows)."""
        with self.book.app.properties(display_alerts=False):
            if spec.name in self.sheet_names():
                self.book.sheets[spec.name].delete()
        sht = self.book.sheets.add(spec.name, after=self.book.sheets[len(self.book.sheets) - 1])
        if spec.cells:
            sht.range("A1").value = [[as_text(v) for v in row] for row in spec.cells]
        for letter, chars in spec.widths.items():
            sht.range(f"{letter}:{letter}").column_width = chars
        for ch in spec.charts:
            r0, c0, r1, c1 = ch.table()
            anchor = sht.range(ch.anchor)
            chart = sht.charts.add(anchor.left, anchor.top, width=ch.width_cm * 28.35, height=ch.height_cm * 28.35)
            chart.chart_type = "line" if ch.kind == "line" else "xy_scatter"
            chart.set_source_data(sht.range((r0, c0), (r1, c1)))
            try:  # Windows COM; macOS's scripting bridge names these differently
                api = chart.api[1]
                api.HasTitle = True
                api.ChartTitle.Text = ch.title
                for axis, text in ((1, ch.x_title), (2, ch.y_title)):
                    api.Axes(axis).HasTitle = True
                    api.Axes(axis).AxisTitle.Text = text
            except Exception:  # titles are cosmetic: never fail the macro over them
                pass
