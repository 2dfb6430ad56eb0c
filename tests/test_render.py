"""The bundled workbooks as a student sees them, after long runs: a real renderer (LibreOffice) recomputes every
formula and prints every tab to PDF; no cell shows an error or ###, and every number fits its column."""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from xlcollab.book import libreoffice
from xlcollab.cli import main
from xlcollab.sheets import collab, graddesc

pytestmark = pytest.mark.libreoffice
ERRORS = ("###", "#NUM!", "#VALUE!", "#NAME?", "#DIV/0!", "#N/A", "#REF!", "Err:")


def formatted(value: float, fmt: str) -> str:
    """The text a spreadsheet shows for `value` in number format `fmt` (the formats the workbooks use)."""
    if fmt == "General":
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e11 else f"{value:.10g}".upper()
    sections = fmt.split(";")
    if len(sections) == 3 and value == 0:
        return sections[2].strip('"')
    body = sections[0] if value >= 0 or len(sections) == 1 else sections[1].lstrip("-")
    sign = "-" if value < 0 else ""
    m = re.fullmatch(r"0(?:\.(0+))?(E\+00)?", body)
    assert m, f"no emulation of the number format {fmt!r}"
    decimals = len(m[1] or "")
    text = f"{abs(value):.{decimals}E}" if m[2] else f"{abs(value):.{decimals}f}"
    return sign + text if text.strip("0.E+-") else text  # -0.00 shows as 0.00


def check_widths(built: Path, recalculated: Path) -> int:
    """Every numeric cell's text, in its own number format, fits its column with a character to spare; returns the
    number of cells checked. Formats and widths come from the workbook, values from LibreOffice's recalculation."""
    styled = openpyxl.load_workbook(built)
    values = openpyxl.load_workbook(recalculated, data_only=True)
    checked = 0
    for ws in styled:
        merged = {c for rng in ws.merged_cells.ranges for row in ws[rng.coord] for c in (cell.coordinate for cell in row)}
        for row in values[ws.title].iter_rows():
            for cell in row:
                v = cell.value
                if isinstance(v, bool) or not isinstance(v, (int, float)) or cell.coordinate in merged:
                    continue
                source = ws[cell.coordinate]
                if source.alignment is not None and source.alignment.text_rotation:
                    continue  # written upwards: its room is the row's height
                letter = re.match(r"[A-Z]+", cell.coordinate)[0]
                width = ws.column_dimensions[letter].width if letter in ws.column_dimensions else 8.43
                text = formatted(v, source.number_format)
                assert len(text) + 1 <= width, (ws.title, cell.coordinate, v, source.number_format, text, width)
                checked += 1
    return checked


def error_cells(recalculated: Path) -> list[tuple[str, str, str]]:
    wb = openpyxl.load_workbook(recalculated, data_only=True)
    return [(ws.title, c.coordinate, c.value) for ws in wb for row in ws.iter_rows() for c in row
            if isinstance(c.value, str) and c.value.startswith(ERRORS)]


def pdf_text(paths: list[Path], outdir: Path) -> dict[str, str]:
    """Each workbook printed to PDF by LibreOffice (recalculating on load), as pdftotext reads it."""
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils (scripts/setup.sh --test does)")
    cmd = libreoffice.soffice_command("--convert-to", "pdf", "--outdir", str(outdir), *map(str, paths),
                                      profile=libreoffice.profile_dir())
    subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    out = {}
    for p in paths:
        pdf = outdir / f"{p.stem}.pdf"
        out[p.stem] = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                     check=True).stdout
    return out


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory) -> dict[str, Path]:
    """Both workbooks after the longest runs they hold: every graddesc tab for its whole trace (3,000 epochs, 87,000
    steps), every collab tab solved with its defaults."""
    if not libreoffice.available():
        pytest.skip("LibreOffice (soffice) is not installed")
    root = tmp_path_factory.mktemp("long")
    g = graddesc.build_workbook(root / "graddesc.xlsx")
    c = collab.build_workbook(root / "collab_filter.xlsx")
    assert main(["run", str(g), "--sheet", "all", "--epochs", str(graddesc.TRACE_ROWS)]) == 0
    assert main(["solve", str(c)]) == 0
    return {"graddesc": g, "collab_filter": c}


@pytest.fixture(scope="module")
def recalculated(long_runs, tmp_path_factory) -> dict[str, Path]:
    out = libreoffice.recalc(long_runs.values(), tmp_path_factory.mktemp("lo"))
    return {p.stem: p for p in out}


def test_no_formula_shows_an_error_after_the_longest_runs(long_runs, recalculated) -> None:
    """β^t, γ^epoch and fast.ai's 0/0 would all have turned into #NUM! / #DIV/0! by epoch 3,000."""
    for name in long_runs:
        assert error_cells(recalculated[name]) == [], name
    wb = openpyxl.load_workbook(recalculated["graddesc"], data_only=True)
    for sheet, spec in graddesc.SPECS.items():
        lay = graddesc.Layout(spec, 29)
        loss = wb[sheet][lay.outputs["loss"]].value
        assert isinstance(loss, (int, float)) and math.isfinite(loss), sheet
        assert wb[sheet][lay.state["epoch"]].value == graddesc.TRACE_ROWS


def test_every_number_fits_its_column(long_runs, recalculated) -> None:
    assert check_widths(long_runs["graddesc"], recalculated["graddesc"]) > 11 * 29 * 10
    assert check_widths(long_runs["collab_filter"], recalculated["collab_filter"]) > 5 * 211


def test_the_printed_pages_show_no_error_and_no_hashes(long_runs, tmp_path) -> None:
    texts = pdf_text(list(long_runs.values()), tmp_path)
    for name, text in texts.items():
        for bad in ERRORS:
            assert bad not in text, (name, bad, text[max(0, text.find(bad) - 200):text.find(bad) + 50])
        assert "Error by epoch" in text or "RMSE by epoch" in text
    pages = {name: text.count("\f") for name, text in texts.items()}
    assert pages == {"graddesc": len(graddesc.SPECS) + 3, "collab_filter": len(collab.TABS)}  # one page a tab


def test_charts_follow_the_trace(long_runs) -> None:
    """The charts plot the trace as x-y lines (x = the epoch column): blank rows below a trace are no points, so the
    curve spans the plot after 5 epochs and after 3,000. compare's series start at epoch 1 on every tab."""
    wb = openpyxl.load_workbook(long_runs["graddesc"])
    for sheet, spec in graddesc.SPECS.items():
        lay = graddesc.Layout(spec, 29)
        (chart,) = wb[sheet]._charts
        (series,) = chart.series
        first, last = lay.trace.split(":")
        epoch_col = re.match(r"[A-Z]+", first)[0]
        last_row = re.search(r"\d+", last)[0]
        assert series.xVal.numRef.f == f"'{sheet}'!${epoch_col}${graddesc.FIRST}:${epoch_col}${last_row}"
        assert chart.x_axis.title is not None and chart.y_axis.title is not None
    (compare,) = wb["compare"]._charts
    assert [s.tx.strRef.f if s.tx.strRef else s.tx.v for s in compare.series] == list(graddesc.SPECS)
    assert all(f"${graddesc.FIRST}:" in s.xVal.numRef.f and f"${graddesc.FIRST}:" in s.yVal.numRef.f
               for s in compare.series)
