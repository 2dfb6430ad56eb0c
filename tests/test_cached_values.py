"""Cached formula values: every file that `build`, `run`, `reset` and `solve` write carries the value of each formula
(computed by xlcollab's compiler), and each equals LibreOffice's recalculation of the same file to 1e-9 relative;
errors are stored as errors, a formula the compiler cannot evaluate gets no value, and the file still asks Excel and
LibreOffice to recalculate on open.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.formula import ArrayFormula

from solver_workbooks import CASES, ERROR_CASES, assert_same, engine_values, save
from xlcollab.book.base import bounds
from xlcollab.book.filebook import FileBook
from xlcollab.cli import main
from xlcollab.solver.cached import buffer_formula_values, formula_values

BUNDLED = ("built_collab", "built_graddesc", "built_collab_xlsm", "built_graddesc_xlsm", "ran", "reset", "solved")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One build, then a run, a reset and a solve of it, and the compiler test cases with their values cached."""
    folder = tmp_path_factory.mktemp("cached")
    built = folder / "built"
    assert main(["build", "--out", str(built)]) == 0
    out = {"built_collab": built / "collab_filter.xlsx", "built_graddesc": built / "graddesc.xlsx",
           # LibreOffice names each recalculated copy by its stem: the .xlsm twins get stems of their own
           "built_collab_xlsm": Path(shutil.copy(built / "collab_filter.xlsm", folder / "collab_m.xlsm")),
           "built_graddesc_xlsm": Path(shutil.copy(built / "graddesc.xlsm", folder / "graddesc_m.xlsm")),
           "ran": folder / "ran.xlsx", "reset": folder / "reset.xlsx", "solved": folder / "solved.xlsx"}
    assert main(["run", str(out["built_graddesc"]), "--epochs", "3", "--out", str(out["ran"])]) == 0
    assert main(["reset", str(out["ran"]), "--sheet", "adam", "--out", str(out["reset"])]) == 0
    assert main(["solve", str(out["built_collab"]), "--sheet", "dotprod", "--sheet", "movielens_emb", "--epochs", "20",
                 "--out", str(out["solved"])]) == 0
    for case in [*CASES, ERROR_CASES[0]]:  # ERROR_CASES[0]'s file: cycles, NPV, TODAY, #DIV/0!, text
        book = FileBook(save(case, folder))
        buffer_formula_values(book)
        book.commit()
        out[case.stem] = book.location()
    return out


@pytest.fixture(scope="module")
def oracle(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """LibreOffice's recalculation of every file (one start), as {(sheet, row, col): value} per file."""
    from xlcollab.book import libreoffice
    if not libreoffice.available():
        pytest.skip("LibreOffice (soffice) is not installed")
    done = libreoffice.recalc(list(files.values()), tmp_path_factory.mktemp("lo"))
    return {key: engine_values(path) for key, path in zip(files, done)}


def formula_cells(path: Path) -> list[tuple[str, int, int]]:
    """Every cell that holds a formula, array formulas' whole extents included."""
    cells = []
    for ws in load_workbook(path).worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, ArrayFormula):
                    r0, c0, r1, c1 = bounds(c.value.ref)
                    cells += [(ws.title, r, k) for r in range(r0, r1 + 1) for k in range(c0, c1 + 1)]
                elif isinstance(c.value, str) and c.value.startswith("="):
                    cells.append((ws.title, c.row, c.column))
    return cells


def check_cached(path: Path, truth: dict, name: str, errors_differ: tuple = ()) -> list[tuple[str, int, int]]:
    """Each formula's cached value equals LibreOffice's (in `errors_differ`, both are errors, but LibreOffice's
    code differs from Excel's); returns the formula cells without one."""
    ours = engine_values(path)
    missing = []
    for cell in formula_cells(path):
        if ours.get(cell) is None:
            missing.append(cell)
        elif cell in errors_differ:
            assert str(ours[cell]).startswith("#") and str(truth.get(cell)).startswith("#"), (cell, truth.get(cell))
        else:
            assert_same(ours[cell], truth.get(cell), f"{name} {cell}")
    return missing


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", BUNDLED)
def test_every_formula_of_the_bundled_workbooks_is_cached_as_libreoffice_computes_it(name, files, oracle) -> None:
    path = files[name]
    assert len(formula_cells(path)) > 1000, "too few formulas: is this a bundled workbook?"
    assert check_cached(path, oracle[name], name) == []
    with zipfile.ZipFile(path) as zf:  # Excel and LibreOffice still recalculate on open
        assert b'fullCalcOnLoad="1"' in zf.read("xl/workbook.xml")


@pytest.mark.libreoffice
@pytest.mark.parametrize("case", [*CASES, ERROR_CASES[0]], ids=lambda c: c.stem)
def test_every_formula_feature_is_cached_and_errors_stay_errors(case, files, oracle) -> None:
    """The compiler's test workbooks: arrays, look-ups, criteria, several sheets, IFERROR, text and error values."""
    sqrt_of_negative = ("Mixed", 7, 1)  # Excel: #NUM! (what we store); LibreOffice: #VALUE!
    missing = check_cached(files[case.stem], oracle[case.stem], case.stem, errors_differ=(sqrt_of_negative,))
    if case.stem != "bad":
        assert missing == []
        return
    # what the compiler cannot evaluate gets no value rather than a guess: NPV, TODAY, the cycles, a missing sheet
    assert set(missing) == {("Cycle", 1, 1), ("Cycle", 1, 2), ("Unsup", 1, 1), ("Unsup", 2, 1), ("Unsup", 3, 1),
                            ("Mixed", 2, 1), ("Mixed", 3, 1), ("Mixed", 5, 1), ("Mixed", 1, 3), ("Mixed", 2, 3),
                            ("NoSheet", 1, 1)}
    cached = engine_values(files["bad"])
    assert cached[("Err", 3, 1)] == "#DIV/0!" and cached[("Mixed", 7, 1)] == "#NUM!"  # errors, as Excel shows them
    assert cached[("Text", 4, 1)] == "abc0.5"


def test_run_and_reset_change_the_cached_values_with_the_cells(files) -> None:
    """After a run the tabs show the next epoch (a lower loss) and `compare`, which reads them, follows; a reset
    brings back every value of the tab as built."""
    built, ran, reset = (engine_values(files[k]) for k in ("built_graddesc", "ran", "reset"))
    loss = ("adam", *bounds(FileBook(files["ran"]).ref_of("adam", "loss"))[:2])
    assert ran[loss] < built[loss]
    changed = [c for c in formula_cells(files["built_graddesc"]) if ran.get(c) != built.get(c)]
    assert {s for s, _, _ in changed} >= {"adam", "momentum", "compare"}
    assert [c for c in changed if c[0] == "adam" and reset.get(c) != built.get(c)] == []


@pytest.mark.libreoffice
def test_pandas_reads_the_rmse(files, oracle) -> None:
    book = FileBook(files["solved"])
    for sheet in ("dotprod", "bias"):
        r, c = bounds(book.ref_of(sheet, "rmse"))[:2]
        rmse = pd.read_excel(files["solved"], sheet_name=sheet, header=None).iat[r - 1, c - 1]
        assert_same(float(rmse), oracle["solved"][(sheet, r, c)], f"{sheet} rmse")
    assert engine_values(files["solved"])[("dotprod", r, c)] != engine_values(files["built_collab"])[("dotprod", r, c)]


def test_the_values_are_those_after_the_buffered_writes(files) -> None:
    book = FileBook(files["arith"])
    before = formula_values(book)
    book.write("Model", "B2", 10.0)
    after = formula_values(book)
    assert before.keys() == after.keys() and before["Model"] != after["Model"]
    assert formula_values(book, ["Model"]) == after


def _chained_workbook(path: Path) -> Path:
    """Data (values) <- Calc (formulas) <- Report (through the workbook-scoped name `total`), and Other (unrelated)."""
    from openpyxl import Workbook
    from openpyxl.workbook.defined_name import DefinedName
    wb = Workbook()
    data = wb.active
    data.title = "Data"
    data["A1"], data["A2"] = 3, 4
    calc = wb.create_sheet("Calc")
    calc["B1"], calc["B2"] = "=Data!A1*Data!A2", "=B1+1"
    report = wb.create_sheet("Report")
    report["A1"] = "=total*10"
    other = wb.create_sheet("Other")
    other["A1"], other["A2"] = 5, "=A1^2"
    wb.defined_names["total"] = DefinedName("total", attr_text="Calc!$B$2")
    wb.save(path)
    return path


def _cached(path: Path) -> dict[str, object]:
    wb = load_workbook(path, data_only=True)
    return {f"{ws.title}!{c.coordinate}": c.value for ws in wb for row in ws.iter_rows() for c in row
            if c.value is not None}


@pytest.mark.parametrize("cached_before", [True, False], ids=["file caches its results", "file caches none"])
def test_a_write_recomputes_exactly_the_sheets_that_read_it(tmp_path: Path, cached_before: bool) -> None:
    from xlcollab.solver.cached import _changed
    path = _chained_workbook(tmp_path / "chain.xlsx")
    if cached_before:
        book = FileBook(path)
        buffer_formula_values(book)
        book.commit()
        assert _cached(path)["Report!A1"] == 130  # (3*4 + 1) * 10
    book = FileBook(path)
    assert _changed(book, {"Data"}) == {"Data", "Calc", "Report"}  # Report through the name `total`
    assert _changed(book, {"Other"}) == {"Other"}
    book.write("Data", "A1", 5)
    buffer_formula_values(book, ["Data"])
    book.commit()
    got = _cached(path)
    assert (got["Calc!B1"], got["Calc!B2"], got["Report!A1"]) == (20, 21, 210)
    assert got.get("Other!A2") == (25 if cached_before else None)  # a sheet nothing changed keeps what it had
