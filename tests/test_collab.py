"""collab_filter: the built tabs, `xlcollab solve`, and LibreOffice recomputing the solved file as the oracle."""
from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import torch
from openpyxl.worksheet.formula import ArrayFormula

from helpers import run_cli, sha
from xlcollab.book.base import bounds, split_ref
from xlcollab.errors import WorkbookError
from xlcollab.book.filebook import FileBook
from xlcollab.sheets.collab import PARAMS, SHEETS, TABS, build_workbook
from xlcollab.sheets.collab.solve import trace_rows
from xlcollab.solver import solve as solver
from xlcollab.solver.engines import grg
from xlcollab.solver.model import read_model as solver_model

from collab_reference import params_written, read_model

OWNED = {sheet: (*params, "trace", "last_run") for sheet, params in PARAMS.items()}


def names(ws) -> dict[str, str]:
    return {k: v.attr_text for k, v in ws.defined_names.items()}


def block(ws, name: str) -> np.ndarray:
    """A named block's values (None -> nan) from a data_only workbook."""
    ref = split_ref(names(ws)[name])[1]
    rows = ws[ref] if ":" in ref else ((ws[ref],),)
    return np.array([[np.nan if c.value is None else c.value for c in row] for row in rows], dtype=float)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """`xlcollab build` (the .xlsx files only)."""
    out = tmp_path_factory.mktemp("built")
    rc, _, err = run_cli("build", "--out", out, "--no-xlsm")
    assert rc == 0, err
    return out / "collab_filter.xlsx"


@pytest.fixture(scope="module")
def solved(built: Path, tmp_path_factory) -> tuple[Path, dict]:
    """`xlcollab solve WORKBOOK --sheet all --json` with the default settings, on a copy."""
    path = tmp_path_factory.mktemp("solved") / "solved.xlsx"
    shutil.copy(built, path)
    rc, out, err = run_cli("solve", path, "--sheet", "all", "--json")
    assert rc == 0, err
    return path, json.loads(out)["sheets"]


@pytest.fixture(scope="module")
def edited(built: Path, tmp_path_factory) -> Path:
    """A user's edits: squash off on `bias`, one rating changed and one removed on every ratings block."""
    path = tmp_path_factory.mktemp("edited") / "edited.xlsx"
    shutil.copy(built, path)
    book = FileBook(path)
    book.write_name("bias", "squash", "off")
    for sheet in ("dotprod", "bias"):
        r0, c0, _, _ = bounds(book.ref_of(sheet, "ratings"))
        book.write(sheet, f"{openpyxl.utils.get_column_letter(c0 + 1)}{r0}", 1.5)
        book.write(sheet, f"{openpyxl.utils.get_column_letter(c0 + 2)}{r0 + 3}", None)
    for sheet in ("movielens_emb", "movielens_1hot", "nnet"):
        r0, c0, _, _ = bounds(book.ref_of(sheet, "ratings"))
        book.write(sheet, f"C{r0 + 4}", 0.5)
    book.commit()
    return path


@pytest.fixture(scope="module")
def reformulated(built: Path, tmp_path_factory) -> tuple[Path, dict]:
    """A student's edit of the model itself: dotprod's predictions squared (=IF(..., MMULT(...)^2, 0)), then
    `xlcollab solve --sheet dotprod`: the edited formulas are what gets minimised."""
    path = tmp_path_factory.mktemp("reformulated") / "reformulated.xlsx"
    wb = openpyxl.load_workbook(built)
    ws = wb["dotprod"]
    for row in ws[split_ref(names(ws)["predictions"])[1]]:
        for cell in row:
            cell.value = re.sub(r"(MMULT\([^)]*\))", r"\1^2", cell.value)
    wb.save(path)
    rc, out, err = run_cli("solve", path, "--sheet", "dotprod", "--json")
    assert rc == 0, err
    return path, json.loads(out)["sheets"]["dotprod"]


@pytest.fixture(scope="module")
def recalculated(built: Path, solved, edited: Path, reformulated, tmp_path_factory) -> dict[str, openpyxl.Workbook]:
    """LibreOffice recomputes the built, solved, edited and reformulated workbooks (one soffice call)."""
    from xlcollab.book import libreoffice

    if not libreoffice.available():
        pytest.skip("LibreOffice (soffice) is not installed")
    outs = libreoffice.recalc([built, solved[0], edited, reformulated[0]], tmp_path_factory.mktemp("lo"))
    return {p.stem: openpyxl.load_workbook(p, data_only=True) for p in outs}


# -- the built workbook ---------------------------------------------------------------------------------
def test_tabs_names_and_solver_model(built: Path) -> None:
    wb = openpyxl.load_workbook(built)
    assert wb.sheetnames == list(TABS)
    assert wb.calculation.fullCalcOnLoad
    for sheet in SHEETS:
        ws = wb[sheet]
        dn = names(ws)
        for name in ("ratings", "predictions", "rmse", "trace", "last_run", "user_ids", "movie_ids", *PARAMS[sheet]):
            assert split_ref(dn[name])[0] == sheet, (sheet, name)
        hidden = {k for k, v in ws.defined_names.items() if v.hidden}
        assert {"solver_opt", "solver_adj", "solver_typ", "solver_eng", "solver_neg", "solver_num"} <= hidden
        assert dn["solver_opt"] == dn["rmse"] and dn["solver_typ"] == "2" and dn["solver_eng"] == "1"
        assert dn["solver_adj"].split(",") == [dn[p] for p in PARAMS[sheet]]
        n_vars = sum(np.prod([b - a + 1 for a, b in zip(bounds(split_ref(dn[p])[1])[:2],
                                                          bounds(split_ref(dn[p])[1])[2:])]) for p in PARAMS[sheet])
        assert n_vars <= 200, (sheet, n_vars)  # Excel Solver's limit: it must still run on every tab
        assert ws._charts, sheet  # the RMSE-by-epoch line chart


def test_ratings_are_the_crosstab_of_the_embedded_data(built: Path) -> None:
    from xlcollab.core.data import crosstab, load_ratings

    table = crosstab(load_ratings(), 15)
    wb = openpyxl.load_workbook(built)
    ratings = block(wb["dotprod"], "ratings")
    np.testing.assert_array_equal(ratings, table.to_numpy())
    assert block(wb["dotprod"], "movie_ids").ravel().tolist() == list(table.columns)
    assert block(wb["bias"], "user_ids").ravel().tolist() == list(table.index)
    long = block(wb["movielens_emb"], "ratings")
    assert len(long) == int((~np.isnan(ratings)).sum()) == 211
    for u, m, r in long:
        assert table.loc[u, m] == r
    ws = wb["dotprod"]
    id_row, c0, _, c1 = bounds(split_ref(names(ws)["movie_ids"])[1])
    assert [ws.cell(id_row - 1, c).value for c in range(c0, c1 + 1)] == table.attrs["titles"]  # titles above ids
    # blanks are truly empty (LibreOffice would give #VALUE! on "" - number)
    assert sum(c.value is None for row in ws[split_ref(names(ws)["ratings"])[1]] for c in row) == 225 - 211


def test_build_is_seeded(built: Path, tmp_path: Path) -> None:
    # (same seed, same bytes: tests/test_build.py)
    other = openpyxl.load_workbook(build_workbook(tmp_path / "other.xlsx", seed=7))
    first = openpyxl.load_workbook(built)
    assert not np.array_equal(block(other["dotprod"], "user_factors"), block(first["dotprod"], "user_factors"))
    # the long-form tabs start where dotprod starts: the same model from the same point
    np.testing.assert_array_equal(block(first["movielens_emb"], "user_factors"), block(first["dotprod"], "user_factors"))
    np.testing.assert_array_equal(block(first["movielens_1hot"], "movie_factors"), block(first["dotprod"], "movie_factors").T)


# -- LibreOffice is the oracle ----------------------------------------------------------------------------
def _assert_sheet_agrees(lo_ws, book: FileBook, sheet: str, rmse: float | None = None) -> np.ndarray:
    """The engine's RMSE and predictions equal torch's for the parameters in the file."""
    model = read_model(book, sheet)
    torch_rmse, torch_preds = model.evaluate()
    lo_rmse = block(lo_ws, "rmse").item()
    assert lo_rmse == pytest.approx(torch_rmse, rel=1e-9, abs=0), sheet
    if rmse is not None:
        assert lo_rmse == pytest.approx(rmse, rel=1e-9, abs=0), sheet
    lo_preds = block(lo_ws, "predictions")
    assert lo_preds.shape == torch_preds.shape
    np.testing.assert_allclose(lo_preds, torch_preds, rtol=1e-9, atol=1e-12, err_msg=sheet)
    return lo_preds


@pytest.mark.libreoffice
def test_start_values_torch_objective_is_the_sheets_formulas(built: Path, recalculated) -> None:
    lo = recalculated["collab_filter"]
    book = FileBook(built)
    for sheet in SHEETS:
        _assert_sheet_agrees(lo[sheet], book, sheet)
    # the long-form tabs hold the dotprod model: same RMSE from the same start
    assert block(lo["movielens_emb"], "rmse").item() == pytest.approx(block(lo["dotprod"], "rmse").item(), rel=1e-12)
    assert block(lo["movielens_1hot"], "rmse").item() == pytest.approx(block(lo["dotprod"], "rmse").item(), rel=1e-12)


@pytest.mark.libreoffice
def test_users_edits_count(edited: Path, recalculated) -> None:
    lo = recalculated["edited"]
    book = FileBook(edited)
    for sheet in SHEETS:
        _assert_sheet_agrees(lo[sheet], book, sheet)
    assert block(lo["bias"], "rmse").item() != block(recalculated["collab_filter"]["bias"], "rmse").item()


@pytest.mark.libreoffice
def test_solved_workbook_libreoffice_agrees_with_torch(solved, recalculated) -> None:
    path, results = solved
    lo = recalculated["solved"]
    book = FileBook(path)
    preds = {sheet: _assert_sheet_agrees(lo[sheet], book, sheet, results[sheet]["final_rmse"]) for sheet in SHEETS}
    # one-hot x embedding matrix is the lookup: the same model from the same start, solved through different
    # formulas; the RMSE agrees to the rounding 200 L-BFGS steps carry, the predictions (a factor rotation apart
    # on the optimum's valley) closely
    assert results["movielens_1hot"]["final_rmse"] == pytest.approx(results["movielens_emb"]["final_rmse"], rel=1e-7)
    np.testing.assert_allclose(preds["movielens_1hot"], preds["movielens_emb"], atol=1e-3)
    assert results["nnet"]["final_rmse"] < results["dotprod"]["final_rmse"]
    for sheet, r in results.items():
        assert r["final_rmse"] < r["start_rmse"], sheet
        assert r["device"] in ("cpu", "cuda")


@pytest.mark.libreoffice
def test_an_edited_formula_is_what_gets_solved(reformulated, recalculated) -> None:
    path, r = reformulated
    lo = recalculated["reformulated"]["dotprod"]
    assert "^2" in openpyxl.load_workbook(path)["dotprod"]["I31"].value
    assert r["final_rmse"] < 0.5 * r["start_rmse"]
    assert block(lo, "rmse").item() == pytest.approx(r["final_rmse"], rel=1e-9)  # LibreOffice: the edited formulas
    preds = block(lo, "predictions")
    assert (preds >= 0).all() and preds.max() > 3  # squares of the solved dot products
    # the formulas before the edit give another RMSE at the same parameters: the edit was what got solved
    assert read_model(FileBook(path), "dotprod").evaluate()[0] > r["final_rmse"] + 0.05


# -- solve: results, write-back, nothing else touched ----------------------------------------------------------
def test_solve_reaches_the_reference_rmses(solved) -> None:
    _, r = solved
    # Excel Solver (GRG Nonlinear) stopped at 0.393 / 0.319 on fast.ai's sheets; ours goes further on these
    assert r["dotprod"]["final_rmse"] < 0.34
    assert r["bias"]["final_rmse"] < 0.25
    # the same model through other formulas (look-ups, not a crosstab): the same optimum up to the rounding
    # that 200 L-BFGS steps through differently ordered sums carry
    assert r["movielens_emb"]["final_rmse"] == pytest.approx(r["dotprod"]["final_rmse"], rel=1e-7)
    assert r["nnet"]["final_rmse"] < 0.3


def test_trace_and_last_run_are_written(solved) -> None:
    path, results = solved
    wb = openpyxl.load_workbook(path)
    for sheet in SHEETS:
        ws, r = wb[sheet], results[sheet]
        trace = block(ws, "trace")
        filled = trace[~np.isnan(trace[:, 0])]
        assert filled[0, 0] == 0 and filled[0, 1] == r["start_rmse"]
        assert filled[-1, 1] == r["final_rmse"]
        assert np.all(np.diff(filled[:, 0]) > 0)
        last = [row[0].value for row in ws[split_ref(names(ws)["last_run"])[1]]]
        assert last[0] == r["optimizer"] and last[2] == r["epochs"] and last[4] == r["device"]
        assert last[6] == r["start_rmse"] and last[7] == r["final_rmse"]


def _owned_cells(ws, sheet: str) -> set[str]:
    boxes = [bounds(split_ref(names(ws)[name])[1]) for name in OWNED[sheet]]
    return {c.coordinate for r0, c0, r1, c1 in boxes
            for row in ws.iter_rows(min_row=r0, min_col=c0, max_row=r1, max_col=c1) for c in row}


def test_solve_changes_only_its_own_blocks(built: Path, solved) -> None:
    path, _ = solved
    with zipfile.ZipFile(built) as a, zipfile.ZipFile(path) as b:
        assert a.namelist() == b.namelist()
        sheet_parts = {f"xl/worksheets/sheet{TABS.index(s) + 1}.xml" for s in SHEETS}
        for name in a.namelist():
            if name not in sheet_parts:
                assert a.read(name) == b.read(name), name
    before, after = openpyxl.load_workbook(built), openpyxl.load_workbook(path)
    for sheet in SHEETS:
        # an array formula's other cells hold only its cached results, which a solve refreshes
        results = {c.coordinate for row in before[sheet].iter_rows() for cell in row
                   if isinstance(cell.value, ArrayFormula) for line in before[sheet][cell.value.ref] for c in line}
        owned = _owned_cells(before[sheet], sheet) | results
        changed = set()
        for row_a, row_b in zip(before[sheet].iter_rows(), after[sheet].iter_rows()):
            for ca, cb in zip(row_a, row_b):
                va, vb = ca.value, cb.value
                va, vb = getattr(va, "text", va), getattr(vb, "text", vb)
                if va != vb:
                    changed.add(ca.coordinate)
                assert tuple(ca._style or ()) == tuple(cb._style or ()), ca.coordinate  # same style ids
        assert changed <= owned, (sheet, sorted(changed - owned)[:5])
        assert changed, sheet
        assert before[sheet].max_row == after[sheet].max_row and before[sheet].max_column == after[sheet].max_column


def test_one_sheet_to_out_leaves_the_original_alone(built: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    shutil.copy(built, src)
    digest = sha(src)
    rc, out, err = run_cli("solve", src, "--sheet", "dotprod,", "--epochs", "5", "--out", tmp_path / "out.xlsx")
    assert rc == 0, err
    assert sha(src) == digest
    assert "dotprod" in out and "bias" not in out
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(tmp_path / "out.xlsx") as b:
        differ = [n for n in a.namelist() if a.read(n) != b.read(n)]
    assert differ == [f"xl/worksheets/sheet{TABS.index('dotprod') + 1}.xml"]


# -- fitting: the generic Solver path on the compiled tab vs the hand-written model and torch.optim ----------------
def solve_tab(path: Path, sheet: str, optimizer: str, lr: float, epochs: int, wd: float = 0.0):
    """(reference model at the start, outcome, parameters the solve would write) through xlcollab.solver."""
    book = FileBook(path)
    options = solver.Options(engine="grg", grg=grg.Settings(optimizer=optimizer, lr=lr, iterations=epochs, wd=wd))
    outcome, writes = solver.solve_model(book, solver_model(book, sheet), options)
    return read_model(book, sheet), outcome, params_written(book, sheet, writes["values"][sheet])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "momentum", "lbfgs"])
def test_every_optimizer_lowers_the_rmse(built: Path, optimizer: str) -> None:
    lr = {"sgd": 0.5, "momentum": 0.1}.get(optimizer, 0.05 if optimizer.startswith("adam") else 1.0)
    model, outcome, params = solve_tab(built, "dotprod", optimizer, lr, 30)
    assert outcome.objective_after < 0.8 * outcome.objective_before
    assert outcome.trace[0] == pytest.approx(model.evaluate()[0], rel=1e-13)
    assert outcome.trace[-1] == outcome.objective_after
    assert outcome.objective_after == pytest.approx(model.evaluate(params)[0], rel=1e-13)


@pytest.mark.parametrize("optimizer, wd", [("adam", 0.0), ("adamw", 0.01), ("momentum", 0.001)])
def test_first_order_steps_are_torch_optims(built: Path, optimizer: str, wd: float) -> None:
    """The compiled tab descended by our rules equals torch.optim on the hand-written model, step for step."""
    model, ours, params = solve_tab(built, "bias", optimizer, 0.02, 25, wd)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    opt = {"adam": lambda: torch.optim.Adam(p.values(), lr=0.02, weight_decay=wd),
           "adamw": lambda: torch.optim.AdamW(p.values(), lr=0.02, weight_decay=wd),
           "momentum": lambda: torch.optim.SGD(p.values(), lr=0.02, momentum=0.9, weight_decay=wd)}[optimizer]()
    trace = []
    for _ in range(25):
        opt.zero_grad()
        rmse, _ = model.forward(p)
        rmse.backward()
        trace.append(rmse.item())
        opt.step()
    np.testing.assert_allclose(ours.trace[:-1], trace, rtol=1e-10)
    for k, v in p.items():
        np.testing.assert_allclose(params[k], v.detach().numpy(), rtol=1e-8, atol=1e-10)


def test_lbfgs_reaches_torch_lbfgs_minimum(built: Path) -> None:
    model, ours, _ = solve_tab(built, "dotprod", "lbfgs", 1.0, 400)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    opt = torch.optim.LBFGS(p.values(), max_iter=400, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = model.forward(p)[0]
        loss.backward()
        return loss

    opt.step(closure)
    assert ours.objective_after == pytest.approx(model.forward(p)[0].item(), rel=1e-6)


def test_trace_rows_sample_evenly() -> None:
    rows = trace_rows([float(i) for i in range(1001)], 101)
    assert rows[0] == [0, 0.0] and rows[-1] == [1000, 1000.0] and rows[1] == [10, 10.0]
    short = trace_rows([3.0, 2.0, 1.0], 5)
    assert short == [[0, 3.0], [1, 2.0], [2, 1.0], [None, None], [None, None]]


# -- bad input: a clear error, exit 1, the file untouched ------------------------------------------------
def _patch_part(path: Path, part: str, edit) -> None:
    with zipfile.ZipFile(path) as zf:
        items = [(info, zf.read(info.filename)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in items:
            zf.writestr(info, edit(data) if info.filename == part else data)


def _write(sheet: str, cell: str, value):
    def apply(path: Path) -> None:
        book = FileBook(path)
        book.write(sheet, cell, value)
        book.commit()
    return apply


def _rename_dotprod(path: Path) -> None:
    _patch_part(path, "xl/workbook.xml", lambda d: d.replace(b'name="dotprod"', b'name="dot product"'))


def _delete_bias(path: Path) -> None:
    _patch_part(path, "xl/workbook.xml", lambda d: re.sub(rb'<sheet [^>]*name="bias"[^>]*/>', b"", d))


def _drop_name(path: Path) -> None:
    # dotprod's `ratings` (localSheetId: its position among the tabs)
    local = str(TABS.index("dotprod")).encode()
    _patch_part(path, "xl/workbook.xml",
                lambda d: re.sub(rb'<definedName name="ratings" localSheetId="' + local + rb'">[^<]*</definedName>', b"", d))


BAD = {
    # case: (how to spoil the copy, solve args, words the message must contain)
    "text rating": (_write("dotprod", "J8", "five"), ["--sheet", "dotprod"], ["sheet 'dotprod'", "cell J8", "'five'"]),
    "rating out of range": (_write("bias", "K9", 7), ["--sheet", "bias"], ["sheet 'bias'", "cell K9", "a rating must be a number in [0.5, 5], found 7"]),
    "long rating out of range": (_write("movielens_emb", "C30", 0), ["--sheet", "movielens_emb"],
                                 ["sheet 'movielens_emb'", "cell C30", "in [0.5, 5], found 0"]),
    "unknown user id": (_write("nnet", "A40", 999999), ["--sheet", "nnet"], ["sheet 'nnet'", "cell A40", "999999"]),
    "blank parameter": (_write("dotprod", "C33", None), ["--sheet", "dotprod"], ["sheet 'dotprod'", "cell C33", "blank"]),
    "text parameter": (_write("movielens_1hot", "L8", "x"), ["--sheet", "movielens_1hot"],
                       ["sheet 'movielens_1hot'", "cell L8", "number"]),
    "bad squash switch": (_write("bias", "Z16", "maybe"), ["--sheet", "bias"], ["sheet 'bias'", "cell Z16", "on or off"]),
    "renamed sheet": (_rename_dotprod, ["--sheet", "all"], ["'dotprod'"]),
    "deleted sheet": (_delete_bias, ["--sheet", "bias"], ["no sheet named 'bias'"]),
    "missing defined name": (_drop_name, ["--sheet", "dotprod"], ["sheet 'dotprod'", "'ratings'"]),
    "read-only file": (lambda p: p.chmod(0o444), ["--sheet", "dotprod", "--epochs", "2"], ["read-only"]),
    "truncated file": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), [], ["collab_filter.xlsx"]),
    "not a workbook": (lambda p: p.write_text("userId,movieId,rating\n1,2,3\n"), [], ["not an Excel workbook"]),
    "open in Excel": (lambda p: p.with_name("~$" + p.name).write_bytes(b"lock"), ["--sheet", "dotprod", "--epochs", "2"],
                      ["lock file"]),
    "diverges": (lambda p: None, ["--sheet", "dotprod", "--optimizer", "sgd", "--lr", "1e9"], ["dotprod", "Nothing was written"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_the_file_untouched(built: Path, tmp_path: Path, case: str) -> None:
    spoil, args, words = BAD[case]
    path = tmp_path / "collab_filter.xlsx"
    shutil.copy(built, path)
    spoil(path)
    digest = sha(path)
    rc, out, err = run_cli("solve", path, *args)
    assert rc == 1, (out, err)
    assert err.startswith("xlcollab: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)
    assert sha(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("~$")) == ["collab_filter.xlsx"]


def test_unknown_tab_and_bad_settings_are_refused(built: Path) -> None:
    rc, _, err = run_cli("solve", built, "--sheet", "graddesc")
    assert rc == 1 and "no sheet named 'graddesc'" in err
    rc, _, err = run_cli("solve", built, "--lr", "-1")
    assert rc == 1 and "learning rate" in err
    rc, _, err = run_cli("solve", built, "--epochs", "0")
    assert rc == 1 and "epochs" in err


def test_solve_book_reads_through_any_book(built: Path) -> None:
    """solve_book buffers its writes and leaves committing to the caller (the add-in commits a live book)."""
    from xlcollab.sheets.collab import solve_book

    digest = sha(built)
    book = FileBook(built)
    results = solve_book(book, ["dotprod"], epochs=3)
    assert set(results) == {"dotprod"} and set(book.pending()) == {"dotprod"}
    book.discard()
    assert sha(built) == digest
    with pytest.raises(WorkbookError, match="no_such_block"):
        book.ref_of("dotprod", "no_such_block")
