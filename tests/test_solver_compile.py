"""The formula compiler against LibreOffice: every generated model's compiled values (outputs and every formula
cell of the touched sheets) equal LibreOffice's recalculation of the same workbook to 1e-9 relative, at the
variables' start values and at a second point; autograd gradients equal central finite differences; a batch
equals its points one by one; bad models give one line naming the sheet and cell.
"""
from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from solver_workbooks import CASES, ERROR_CASES, Case, assert_same, engine_values, open_book, save
from xlcollab.errors import WorkbookError
from xlcollab.solver.compile import compile_cells
from xlcollab.solver.refs import cell_label, parse_cells

ROOT = Path(__file__).resolve().parent.parent
COLLAB = ROOT / "workbooks" / "collab_filter.xlsx"
GRADDESC = ROOT / "workbooks" / "graddesc.xlsx"
TABS = ("dotprod", "bias", "movielens_emb", "movielens_1hot", "nnet")


def second_point(case: Case, x0: np.ndarray) -> np.ndarray:
    """A point away from the start: every variable moved, deterministically."""
    rng = np.random.default_rng(len(case.name))
    return np.round(x0 + rng.uniform(0.05, 0.3, x0.shape) * rng.choice([-1, 1], x0.shape), 6)


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> dict[str, Path]:
    """Every case written at its start values (stem) and at a second point (stem_x1), plus the bundled tabs."""
    folder = tmp_path_factory.mktemp("solver_books")
    out: dict[str, Path] = {}
    for case in CASES:
        out[case.name] = save(case, folder)
        x0 = compile_cells(open_book(out[case.name]), case.variable_cells(), []).x0.numpy()
        out[f"{case.name}_x1"] = save(case, folder, second_point(case, x0), stem=f"{case.name}_x1")
    out["bad"] = save(ERROR_CASES[0], folder)
    out["collab_filter"] = Path(shutil.copy(COLLAB, folder / "collab_filter.xlsx"))
    out["graddesc"] = Path(shutil.copy(GRADDESC, folder / "graddesc.xlsx"))
    return out


@pytest.fixture(scope="module")
def oracle(books, tmp_path_factory) -> dict[str, Path]:
    """LibreOffice's recalculation of every workbook, in one start."""
    from xlcollab.book import libreoffice
    if not libreoffice.available():
        pytest.skip("LibreOffice is not installed")
    names = [k for k in books if k != "bad"]
    done = libreoffice.recalc([books[k] for k in names], tmp_path_factory.mktemp("recalculated"))
    return dict(zip(names, done))


@pytest.mark.libreoffice
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_values_equal_libreoffice(case: Case, books, oracle) -> None:
    """At x0 and at a second point: every compiled formula value and every output equals LibreOffice's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compile_cells(open_book(books[case.name]), case.variable_cells(), case.output_cells())
    x1 = second_point(case, comp.x0.numpy())
    for x, stem in ((comp.x0, case.name), (torch.as_tensor(x1), f"{case.name}_x1")):
        truth = engine_values(oracle[stem])
        values = comp.values(x)
        assert values, "no formula values"
        for cell, ours in values.items():
            assert_same(ours, truth.get(cell), f"{stem} {cell_label(cell)}")
        for cells, got in zip(comp.outputs, comp(x)):
            for cell, v in zip(cells, got.tolist()):
                assert_same(v, truth.get(cell), f"{stem} output {cell_label(cell)}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradients_equal_finite_differences(case: Case, books) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compile_cells(open_book(books[case.name]), case.variable_cells(), case.output_cells())
    x = comp.x0.clone().requires_grad_(True)
    outs = comp(x)
    weights = [torch.linspace(0.5, 1.5, o.numel(), dtype=torch.float64) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all(), "non-finite gradient"
    h = 1e-6
    for i in range(len(comp.variables)):
        e = torch.zeros_like(comp.x0)
        e[i] = h
        f = lambda p: sum((o * w).sum() for o, w in zip(comp(comp.x0 + p), weights)).item()
        fd = (f(e) - f(-e)) / (2 * h)
        assert math.isclose(grad[i].item(), fd, rel_tol=1e-5, abs_tol=1e-6), \
            f"{case.name} d/d{cell_label(comp.variables[i])}: autograd {grad[i].item()}, finite differences {fd}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_batch_equals_points(case: Case, books) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compile_cells(open_book(books[case.name]), case.variable_cells(), case.output_cells())
    xs = comp.x0 + 0.05 * torch.randn(4, len(comp.variables), generator=torch.Generator().manual_seed(1),
                                       dtype=torch.float64)
    batched = comp(xs)
    for b in range(xs.shape[0]):
        for got, want in zip(batched, comp(xs[b])):
            assert got.shape[1:] == want.shape
            torch.testing.assert_close(got[b], want, rtol=1e-13, atol=1e-14)  # reduction order may differ


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
def test_bad_models_name_the_cell(case: Case, books) -> None:
    with pytest.raises(WorkbookError) as info:
        compile_cells(open_book(books["bad"]), case.variable_cells(), case.output_cells())
    message = str(info.value)
    assert "\n" not in message
    for word in case.error:
        assert word in message, f"{word!r} not in {message!r}"


def test_zero_gradient_functions_are_noted(books) -> None:
    case = next(c for c in CASES if c.notes)
    with pytest.warns(UserWarning, match="zero gradient"):
        comp = compile_cells(open_book(books[case.name]), case.variable_cells(), case.output_cells())
    joined = " ".join(comp.notes)
    for word in case.notes:
        assert word in joined
    assert "C1" not in joined and "C2" not in joined  # ROUND/INT/FLOOR of constants are off the variables' path


def test_objective_without_variables_compiles_to_a_constant(books) -> None:
    comp = compile_cells(open_book(books["bad"]), [("Const", 1, 2)], [[("Const", 2, 1)]])
    x = comp.x0.clone().requires_grad_(True)
    (out,) = comp(x)
    assert out.tolist() == [6.0] and not out.requires_grad


def test_values_leave_out_what_cannot_be_compiled_off_the_path(books) -> None:
    """Cached values: a formula off the variables' path with an unknown function, what depends on it, and a
    circular pair are left out (Excel recomputes them on load); the rest are there, at x."""
    comp = compile_cells(open_book(books["bad"]), [("Mixed", 1, 2)], [[("Mixed", 1, 1)]])
    values = comp.values(torch.tensor([2.0], dtype=torch.float64))
    mixed = {(r, c): v for (s, r, c), v in values.items() if s == "Mixed"}
    assert mixed == {(1, 1): 4.0, (4, 1): 6.0, (6, 1): "#DIV/0!", (7, 1): "#NUM!"}  # not finite at x: errors
    assert comp(torch.tensor([3.0], dtype=torch.float64))[0].tolist() == [6.0]


@pytest.mark.parametrize("formula, fill", [("=IF(ISNUMBER(B{r}),SQRT(A{r}),0)", 0.0),
                                           ("=IF(ISBLANK(B{r}),7,SQRT(A{r}))", 7.0)])
def test_an_if_branch_not_taken_sends_no_nan_gradient(tmp_path: Path, formula: str, fill: float) -> None:
    """IF(ISNUMBER(B), SQRT(A), 0) with A1 = -1 where B1 is blank: the branch not taken is NaN there (and its
    slope), yet A1's gradient is 0 and the others are SQRT's; the same on a batch and with A1 moved; and with the
    branches the other way round and another number in the one taken at A1."""
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "s"
    for r, (a, b) in enumerate([(-1.0, None), (4.0, 1), (9.0, 1)], start=1):
        ws.cell(r, 1, a), ws.cell(r, 2, b)
        ws.cell(r, 3, formula.format(r=r))
    ws["D1"] = "=SUM(C1:C3)"
    wb.save(tmp_path / "if.xlsx")
    comp = compile_cells(open_book(tmp_path / "if.xlsx"), [("s", r, 1) for r in (1, 2, 3)], [[("s", 1, 4)]])
    for x in ([-1.0, 4.0, 9.0], [-4.0, 1.0, 0.25]):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (out,) = comp(xt)
        (grad,) = torch.autograd.grad(out[0], xt)
        assert out.item() == fill + math.sqrt(x[1]) + math.sqrt(x[2])
        assert grad.tolist() == [0.0, 0.5 / math.sqrt(x[1]), 0.5 / math.sqrt(x[2])]
    xb = torch.tensor([[-1.0, 4.0, 9.0], [-4.0, 1.0, 0.25]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(comp(xb)[0].sum(), xb)
    assert torch.isfinite(grad).all() and grad[:, 0].tolist() == [0.0, 0.0]


def test_sources_read_as_runs_are_cut_once() -> None:
    """dotprod reads x as two runs (the user and the movie factors): the first evaluation narrows each and notes them,
    later ones cut x once (one split op); the values and gradients are the same either way, on a batch too."""
    from xlcollab.solver.graph import _plan_split

    book = open_book(COLLAB)
    names = book.names("dotprod")
    comp = compile_cells(book, parse_cells(names["solver_adj"], "dotprod"),
                         [parse_cells(names["solver_opt"], "dotprod")])
    prog = comp._program
    for x in (comp.x0[None], torch.stack([comp.x0, comp.x0 * 0.5])):
        got = []
        for _ in range(2):
            xt = x.clone().requires_grad_(True)
            env = prog.evaluate(xt)
            rmse = comp._first(env)
            got.append((rmse.detach(), torch.autograd.grad(rmse.sum(), xt)[0], set(env._pieces)))
        assert got[0][2] == (set() if x.shape[0] == 1 else got[1][2])  # the batch comes after: planned already
        assert got[1][2] == {(0, 0, 75), (0, 75, 75)}
        assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[0][1], got[1][1])
    assert _plan_split(0, 10, [(2, 3), (5, 2)]) == ([2, 3, 2, 3], [None, (0, 2, 3), (0, 5, 2), None])
    assert _plan_split(0, 10, [(0, 4), (3, 2)]) is None  # overlapping runs keep their narrows
    assert _plan_split(0, 10, [(0, 4)]) is None and _plan_split(0, 10, [(6, 2), (8, 3)]) is None  # one run; too wide


def test_filled_blocks_are_batched(books) -> None:
    """225 predictions of dotprod are one compiled group, not 225 (and the long-form rows a few groups)."""
    book = open_book(COLLAB)
    names = book.names("dotprod")
    comp = compile_cells(book, parse_cells(names["solver_adj"], "dotprod"), [parse_cells(names["solver_opt"], "dotprod")])
    sizes = sorted(len(g.rows) for g in comp._program.sources)
    assert sizes == [1, 225]
    case = next(c for c in CASES if c.name == "longform")
    comp = compile_cells(open_book(books[case.name]), case.variable_cells(), case.output_cells())
    assert len(comp._program.sources) <= 10 and max(len(g.rows) for g in comp._program.sources) == 40


# -- the bundled collab_filter tabs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tab", TABS)
def test_collab_tabs_compile_to_their_rmse(tab: str, books, oracle) -> None:
    """Each tab's objective `rmse`, compiled from its formulas, equals LibreOffice's recalculation and today's
    hand-written torch model of the tab; its predictions and errors too."""
    from collab_reference import read_model  # the tabs written by hand in torch: the reference
    book = open_book(books["collab_filter"])
    names = book.names(tab)
    variables = parse_cells(names["solver_adj"], tab)
    rmse_cell = parse_cells(names["rmse"], tab)
    comp = compile_cells(book, variables, [rmse_cell])
    (rmse,) = comp(comp.x0)
    truth = engine_values(oracle["collab_filter"])
    assert_same(float(rmse[0]), truth[rmse_cell[0]], f"{tab} rmse")
    assert math.isclose(float(rmse[0]), read_model(book, tab).evaluate()[0], rel_tol=1e-12)
    for cell, ours in comp.values(comp.x0).items():
        assert_same(ours, truth.get(cell), f"collab_filter {cell_label(cell)}")


@pytest.mark.parametrize("tab", ["basic SGD", "adam", "adamw"])
def test_graddesc_tabs_compile_row_by_row(tab: str, books, oracle) -> None:
    """A tab where each row depends on the row above (one SGD step per row): the filled blocks split into
    their cells, the epoch's loss and final (a, b) as functions of the start (a, b) equal LibreOffice's."""
    book = open_book(books["graddesc"])
    names = book.names(tab)
    variables = parse_cells(names["a"], tab) + parse_cells(names["b"], tab)
    outputs = [parse_cells(names[n], tab)[0] for n in ("loss", "end_a", "end_b")]
    comp = compile_cells(book, variables, [outputs])
    truth = engine_values(oracle["graddesc"])
    for cell, v in zip(outputs, comp(comp.x0)[0].tolist()):
        assert_same(v, truth[cell], f"graddesc {cell_label(cell)}")
    values = comp.values(comp.x0)
    assert len(values) > 300
    for cell, ours in values.items():
        assert_same(ours, truth.get(cell), f"graddesc {cell_label(cell)}")
    x = comp.x0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(comp(x)[0][0], x)
    h = 1e-5
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h
        fd = (comp(comp.x0 + e)[0][0] - comp(comp.x0 - e)[0][0]).item() / (2 * h)
        assert math.isclose(grad[i].item(), fd, rel_tol=1e-5), f"{tab}: autograd {grad[i].item()}, finite differences {fd}"
