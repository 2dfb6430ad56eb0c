"""The graddesc workbook: its formulas compute what torch's rules compute, step by step; run/reset; bad input."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from openpyxl import load_workbook
from openpyxl.utils.cell import absolute_coordinate

from helpers import sha
from xlcollab.book import libreoffice
from xlcollab.cli import main
from xlcollab.errors import SettingsError
from xlcollab.book.filebook import FileBook
from xlcollab.sheets import graddesc as gd
from xlcollab.core.optim import sheet_adam
from xlcollab.sheets.graddesc import FIRST, SPECS, TRACE_ROWS, Layout, Start


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return gd.build_workbook(tmp_path_factory.mktemp("graddesc") / "graddesc.xlsx")


@pytest.fixture
def book_path(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(built, tmp_path / "graddesc.xlsx"))


def epoch_rows(spec, start: Start, xs, ys, epochs: int = 1, *, tensors: bool = False) -> list[list[dict]]:
    """Every column of every step row for `epochs` epochs from `start` (updated), on floats or float64 tensors."""
    t = (lambda v: torch.tensor(float(v), dtype=torch.float64)) if tensors else (lambda v: v)  # noqa: E731
    out = []
    for _ in range(epochs):
        sa, sb = start.rule_states(spec)
        scalars = ("step", "beta1_power", "beta2_power")  # counters: Python numbers whatever the parameters are
        sa = {k: (v if k in scalars else t(v)) for k, v in sa.items()}
        sb = {k: (v if k in scalars else t(v)) for k, v in sb.items()}
        rows: list[dict] = []
        epoch = gd.run_epoch(spec, gd.rule_settings(spec, start), t(start.a), t(start.b), sa, sb, xs, ys, rows)
        start.take(spec, epoch, sa, sb, len(xs))
        start.state = {k: float(v) if k not in ("epoch", "step") else v for k, v in start.state.items()}
        out.append([{key: float(v) for key, v in row.items()} for row in rows])
    return out


def fresh(sheet: str, data=None) -> Start:
    return Start.fresh(SPECS[sheet], data=data or gd.make_data())


def cell_of(sheet: str, name: str) -> str:
    """Where the input or state cell `name` of `sheet` is (29 data points)."""
    lay = Layout(SPECS[sheet], 29)
    return {**lay.inputs, **lay.state, **lay.outputs}[name]


# -- the workbook ---------------------------------------------------------------------------------
def test_build_is_reproducible_and_names_every_block(built: Path, tmp_path: Path) -> None:
    again = gd.build_workbook(tmp_path / "again.xlsx")
    assert sha(again) == sha(built)
    book = FileBook(built)
    assert book.sheet_names() == ["Intro", "data", *SPECS, "compare"]
    xs, ys = gd.read_data(book)
    assert len(xs) == 29 and all(1 <= x <= 100 and x == int(x) for x in xs)
    assert ys == [2 * x + 30 for x in xs]
    for sheet, spec in SPECS.items():
        lay = Layout(spec, 29)
        names = book.names(sheet)
        for name, cell in {**lay.inputs, **lay.state, **lay.outputs}.items():
            assert names[name] == f"'{sheet}'!{absolute_coordinate(cell)}"
        assert book.ref_of(sheet, "steps") == lay.steps and book.ref_of(sheet, "trace") == lay.trace
        assert book.ref_of(sheet, "buttons") == gd.BUTTONS_CELL
        start = gd.read_start(book, sheet)
        assert start.state == fresh(sheet).state and (start.a, start.b, start.epoch) == (1.0, 1.0, 0)
        gd.check_formulas(book, sheet, 29)
    assert gd.read_inputs(book, "adam") == {"start_a": 1, "start_b": 1, "lr": 1, "beta1": 0.7, "beta2": 0.9}
    assert gd.read_inputs(book, "basic SGD")["lr"] == 1e-4


def test_build_options_change_the_data(tmp_path: Path) -> None:
    path = gd.build_workbook(tmp_path / "g.xlsx", seed=7, n_points=10, noise=2.0)
    book = FileBook(path)
    xs, ys = gd.read_data(book)
    assert len(xs) == 10 and xs != gd.make_data(42, 10)[0]
    residuals = [y - (2 * x + 30) for x, y in zip(xs, ys)]
    assert 0.5 < max(map(abs, residuals)) < 10
    assert book.ref_of("adam", "steps") == Layout(SPECS["adam"], 10).steps
    assert gd.read_start(book, "adagrad_fastai").state["rms_b"] == fresh("adagrad_fastai", (xs, ys)).state["rms_b"]
    for bad in ({"n_points": 0}, {"n_points": 2.5}, {"noise": -1.0}):
        with pytest.raises(SettingsError):
            gd.build_workbook(tmp_path / "bad.xlsx", **bad)
    assert not (tmp_path / "bad.xlsx").exists()


# -- the rules on the sheet problem ---------------------------------------------------------------
@pytest.mark.parametrize("sheet", list(SPECS))
def test_floats_and_tensors_are_bit_identical_on_the_sheet(sheet: str) -> None:
    xs, ys = gd.make_data()
    by_float = epoch_rows(SPECS[sheet], fresh(sheet), xs, ys, 3)
    by_tensor = epoch_rows(SPECS[sheet], fresh(sheet), xs, ys, 3, tensors=True)
    assert by_float == by_tensor  # every column of every row, exactly


@pytest.mark.parametrize("sheet", list(SPECS))
def test_gradient_columns_are_autograd_gradients(sheet: str) -> None:
    spec = SPECS[sheet]
    xs, ys = gd.make_data()
    start = fresh(sheet)
    wd = start.inputs.get("wd", 0.0) if spec.l2 else 0.0
    for row in epoch_rows(spec, start, xs, ys, 2)[1]:
        a = torch.tensor(row["a"], dtype=torch.float64, requires_grad=True)
        b = torch.tensor(row["b"], dtype=torch.float64, requires_grad=True)
        loss = (a * row["x"] + b - row["y"]) ** 2 + wd / 2 * (a * a + b * b)
        loss.backward()
        assert math.isclose(loss.item(), row["loss"], rel_tol=1e-12)
        assert math.isclose(a.grad.item(), row["ga"], rel_tol=1e-12)
        assert math.isclose(b.grad.item(), row["gb"], rel_tol=1e-12)
        if spec.fd:  # the finite-difference estimates are 2·err·x + 0.01·x² and 2·err + 0.01
            assert math.isclose(row["fd_a"], row["ga"] + 0.01 * row["x"] ** 2, rel_tol=1e-6, abs_tol=1e-6)
            assert math.isclose(row["fd_b"], row["gb"] + 0.01, rel_tol=1e-6, abs_tol=1e-6)


TORCH_TWINS = {  # tab -> torch.optim class and its settings from the tab's inputs
    "basic SGD": (torch.optim.SGD, lambda i: {"lr": i["lr"]}),
    "adagrad": (torch.optim.Adagrad, lambda i: {"lr": i["lr"], "eps": i["eps"]}),
    "rmsprop": (torch.optim.RMSprop, lambda i: {"lr": i["lr"], "alpha": i["beta"], "eps": i["eps"]}),
    "adamw": (torch.optim.AdamW, lambda i: {"lr": i["lr"], "betas": (i["beta1"], i["beta2"]), "eps": i["eps"],
                                            "weight_decay": i["wd"]}),
    "l2": (torch.optim.Adam, lambda i: {"lr": i["lr"], "betas": (i["beta1"], i["beta2"]), "eps": i["eps"],
                                        "weight_decay": i["wd"]}),
}


@pytest.mark.parametrize("sheet", list(TORCH_TWINS))
def test_tabs_that_are_torch_optim_take_its_steps(sheet: str) -> None:
    """Where a tab's rule is torch.optim's maths, torch.optim itself takes the same steps on the tab's data."""
    spec, (cls, settings) = SPECS[sheet], TORCH_TWINS[sheet]
    xs, ys = gd.make_data()
    start = fresh(sheet)
    a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    opt = cls([a, b], **settings(start.inputs))
    steps = [row for epoch in epoch_rows(spec, start, xs, ys, 2) for row in epoch]
    for row, x, y in zip(steps, xs * 2, ys * 2):
        opt.zero_grad()
        ((a * x + b - y) ** 2).backward()  # torch.optim adds the L2 term itself (weight_decay)
        opt.step()
        assert math.isclose(a.item(), row["new_a"], rel_tol=1e-12) and math.isclose(b.item(), row["new_b"], rel_tol=1e-12)


def test_sheet_adam_is_torch_adam_with_its_powers_carried() -> None:
    """sheet_adam (β^t as running products) takes torch.optim.Adam's and AdamW's steps over 200 random gradients,
    on floats exactly as on tensors; fast.ai's form (no ε) takes no step while v is 0."""
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(4, generator=gen, dtype=torch.float64) * 5 for _ in range(200)]
    for cls, decoupled in ((torch.optim.Adam, False), (torch.optim.AdamW, True)):
        p = torch.linspace(-1, 1, 4, dtype=torch.float64).requires_grad_(True)
        ours, state = p.detach().clone(), {}
        opt = cls([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
        for g in grads:
            p.grad = g.clone()
            opt.step()
            ours = sheet_adam(ours, g, state, lr=0.01, weight_decay=0.1, decoupled=decoupled)
        torch.testing.assert_close(ours, p.detach(), rtol=1e-12, atol=1e-14)
    floats, tensors = [0.5, {}], [torch.tensor(0.5, dtype=torch.float64), {}]
    for g in [0.0, 0.0, 3.0, -1.0, 0.0]:
        for pair, grad in ((floats, g), (tensors, torch.tensor(g, dtype=torch.float64))):
            pair[0] = sheet_adam(pair[0], grad, pair[1], lr=1.0, beta1=0.7, beta2=0.9, eps=0.0, bias_correction=False)
        assert floats[0] == tensors[0].item() and math.isfinite(floats[0])
    assert sheet_adam(0.5, 0.0, {}, lr=1.0, beta1=0.7, beta2=0.9, eps=0.0, bias_correction=False) == 0.5


@pytest.mark.parametrize("sheet", list(SPECS))
def test_epoch_loss_falls_from_the_defaults(sheet: str) -> None:
    xs, ys = gd.make_data()
    trace = gd.simulate(SPECS[sheet], fresh(sheet), xs, ys, 60)
    losses = [row[3] for row in trace]
    assert sum(losses[-10:]) / 10 < 0.7 * losses[0]
    assert min(losses) < 0.7 * losses[0] and losses[1] < losses[0] * 1.5


def test_adaptive_and_annealed_rules_reach_the_true_line() -> None:
    """Closed-form target: the data are exactly y = 2x + 30, so (a, b) must come within 1 % of (2, 30)."""
    xs, ys = gd.make_data()
    for sheet, epochs in (("adagrad", 100), ("adam_ann", 100), ("adam_ann_vba", 100), ("adagrad_ann", 100),
                          ("adagrad_fastai", 400)):
        trace = gd.simulate(SPECS[sheet], fresh(sheet), xs, ys, epochs)
        assert abs(trace[-1][1] - 2) < 0.02 and abs(trace[-1][2] - 30) < 0.3, sheet


def test_fastai_schedules_follow_their_rules() -> None:
    """adagrad_fastai: each epoch's lr is lr / the RMS of every gradient so far (the step rows' own gradients);
    adam_ann_vba: the lr is divided by `divisor` exactly after the epochs whose gradient RMS rose by more than `jump`."""
    xs, ys = gd.make_data()
    start = fresh("adagrad_fastai")
    rows = epoch_rows(SPECS["adagrad_fastai"], start, xs, ys, 3)
    seen = [r["ga"] for epoch in rows for r in epoch]
    assert math.isclose(start.state["rms_a"], math.sqrt(sum(g * g for g in seen) / len(seen)), rel_tol=1e-12)
    first = rows[0][0]  # epoch 1 steps by lr / the RMS measured at the start values
    rms0 = math.sqrt(sum((2 * (x + 1 - y) * x) ** 2 for x, y in zip(xs, ys)) / len(xs))
    assert math.isclose(first["new_a"], 1 - start.inputs["lr"] / rms0 * first["ga"], rel_tol=1e-14)
    spec, start = SPECS["adam_ann_vba"], fresh("adam_ann_vba")
    trace = gd.simulate(spec, start, xs, ys, 40)
    g_rms = [row[spec.trace_columns.index("g_rms")] for row in trace]
    lrs = [row[4] for row in trace] + [start.lr]
    for k in range(1, 40):
        jumped = g_rms[k] > 1.5 * g_rms[k - 1]
        assert lrs[k + 1] == (lrs[k] / 4 if jumped else lrs[k]), k
    assert 0 < sum(lrs[k + 1] < lrs[k] for k in range(40)) < 40


def test_fastai_adagrad_stays_on_the_answer_for_a_whole_trace() -> None:
    """Its steps grow back as the gradients' mean square shrinks: with the default lr it still never leaves the
    answer within a whole trace (with lr 0.1 it leaves by epoch 300, which the tab's note says)."""
    xs, ys = gd.make_data()
    trace = gd.simulate(SPECS["adagrad_fastai"], fresh("adagrad_fastai"), xs, ys, TRACE_ROWS)
    near = [abs(a - 2) <= 0.02 and abs(b - 30) <= 0.3 for _, a, b, *_ in trace]
    assert near.index(True) < 400 and all(near[near.index(True):])
    fast = Start.fresh(SPECS["adagrad_fastai"], {**fresh("adagrad_fastai").inputs, "lr": 0.1}, (xs, ys))
    assert max(row[3] for row in gd.simulate(SPECS["adagrad_fastai"], fast, xs, ys, 400)[200:]) > 1e3


def test_long_runs_stay_finite_where_powers_would_underflow() -> None:
    """After 3,000 epochs (87,000 steps) β1^t has shrunk to the smallest doubles without an error (a power would
    underflow); every value of every tab is finite."""
    xs, ys = gd.make_data()
    for sheet, spec in SPECS.items():
        start = fresh(sheet)
        trace = gd.simulate(spec, start, xs, ys, TRACE_ROWS)
        assert all(math.isfinite(v) for row in trace for v in row), sheet
        if spec.counter:
            assert start.state["b1t"] < 1e-300 and start.state["step"] == TRACE_ROWS * 29  # 0.9^87000


def test_a_start_on_the_answer_takes_no_step() -> None:
    """fast.ai's Adam has no ε: at the exact answer every gradient is 0, and the rows take no step instead of 0/0."""
    xs, ys = gd.make_data()
    for sheet in ("adam", "adam_ann_vba", "adagrad_fastai"):
        start = Start.fresh(SPECS[sheet], {**fresh(sheet).inputs, "start_a": 2.0, "start_b": 30.0}, (xs, ys))
        trace = gd.simulate(SPECS[sheet], start, xs, ys, 3)
        assert [row[1:4] for row in trace] == [[2.0, 30.0, 0.0]] * 3, sheet


# -- LibreOffice recalculates the sheets' own formulas ----------------------------------------------
def _assert_sheet_matches(wb, book: FileBook, sheet: str, xs, ys) -> int:
    """Every step cell and output LibreOffice computed equals Python's value (1e-9 relative); returns cells checked."""
    spec = SPECS[sheet]
    start = gd.read_start(book, sheet)
    rows = epoch_rows(spec, start, xs, ys)[0]  # start: now the state Run would carry into the next epoch
    ws, lay = wb[sheet], Layout(spec, len(xs))
    checked = 0
    for i, row in enumerate(rows):
        for j, key in enumerate(spec.columns, start=1):
            got = ws.cell(FIRST + i, j).value
            assert isinstance(got, (int, float)), (sheet, FIRST + i, key, got)
            assert math.isclose(got, row[key], rel_tol=1e-9, abs_tol=1e-12), (sheet, FIRST + i, key, got, row[key])
            checked += 1
    expected = {"loss": sum(r["loss"] for r in rows) / len(rows), "end_a": rows[-1]["new_a"],
                "end_b": rows[-1]["new_b"], "rms_a_next": start.state.get("rms_a"), "rms_b_next": start.state.get("rms_b"),
                "g_rms_now": start.state.get("g_rms"), "lr_next": start.state.get("lr_now")}
    for name in spec.output_names:
        if name in expected:
            assert math.isclose(ws[lay.outputs[name]].value, expected[name], rel_tol=1e-9), (sheet, name)
    return checked


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_computes_pythons_steps_before_and_after_run(built: Path, tmp_path: Path) -> None:
    fresh_path = Path(shutil.copy(built, tmp_path / "fresh.xlsx"))
    ran = Path(shutil.copy(built, tmp_path / "ran.xlsx"))
    reset = Path(shutil.copy(built, tmp_path / "reset.xlsx"))
    assert main(["run", str(ran), "--epochs", "2"]) == 0          # the rows now show epoch 3
    assert main(["run", str(reset), "--sheet", "adam", "--epochs", "4"]) == 0
    assert main(["reset", str(reset), "--sheet", "adam"]) == 0    # back to epoch 1
    out = libreoffice.recalc([fresh_path, ran, reset], tmp_path / "lo")
    xs, ys = gd.make_data()
    checked = 0
    for path, recalced, sheets in ((fresh_path, out[0], SPECS), (ran, out[1], SPECS), (reset, out[2], ["adam"])):
        wb, book = load_workbook(recalced, data_only=True), FileBook(path)
        for sheet in sheets:
            checked += _assert_sheet_matches(wb, book, sheet, xs, ys)
    assert checked == 29 * (2 * sum(len(s.columns) for s in SPECS.values()) + len(SPECS["adam"].columns))
    # the trace `run` wrote holds epochs 1 and 2 of the same computation, and compare reads the tabs' state
    wb, book = load_workbook(out[1], data_only=True), FileBook(ran)
    for i, (sheet, spec) in enumerate(SPECS.items()):
        trace = gd.simulate(spec, fresh(sheet), xs, ys, 2)
        got = book.read(sheet, book.ref_of(sheet, "trace"))[:3]
        assert got[:2] == trace and all(v is None for v in got[2])
        assert wb["compare"].cell(6 + i, 2).value == 2
        assert math.isclose(wb["compare"].cell(6 + i, 3).value, trace[-1][1], rel_tol=1e-14)


@pytest.mark.libreoffice
def test_run_book_on_a_live_libreoffice_book(built: Path, tmp_path: Path) -> None:
    """The same run_book on another Book backend (a live Calc over UNO, as the add-in runs it in Excel):
    after its commit, Calc's own recalculation of the rows equals Python's next epoch, in full precision."""
    from xlcollab.book import unobook

    if not unobook.available():
        pytest.skip("LibreOffice or python3-uno not installed")
    path = Path(shutil.copy(built, tmp_path / "live.xlsx"))
    xs, ys = gd.make_data()
    with unobook.Office() as office:
        book = office.open(path)
        try:
            results = gd.run_book(book, ["adam_ann", "l2", "adagrad_fastai"], 2)
            book.commit()
            for sheet in ("adam_ann", "l2", "adagrad_fastai"):
                spec, start = SPECS[sheet], gd.read_start(book, sheet)
                assert start.epoch == 2 and start.a == results[sheet]["a"]
                rows = epoch_rows(spec, start, xs, ys)[0]
                got = book.values(sheet, Layout(spec, len(xs)).steps)
                for i, row in enumerate(rows):
                    for j, key in enumerate(spec.columns):
                        assert math.isclose(got[i][j], row[key], rel_tol=1e-13, abs_tol=1e-15), (sheet, i, key)
        finally:
            book.close()


# -- run and reset ---------------------------------------------------------------------------------
def test_run_appends_the_trace_and_writes_the_state(book_path: Path) -> None:
    assert main(["run", str(book_path), "--sheet", "adamw", "--epochs", "3"]) == 0
    assert main(["run", str(book_path), "--sheet", "adamw", "--epochs", "2"]) == 0
    book = FileBook(book_path)
    spec, xs_ys = SPECS["adamw"], gd.make_data()
    expected_start = fresh("adamw")
    expected = gd.simulate(spec, expected_start, *xs_ys, 5)
    trace = book.read("adamw", book.ref_of("adamw", "trace"))
    assert trace[:5] == expected and [row[0] for row in trace[:5]] == [1, 2, 3, 4, 5]
    assert all(v is None for row in trace[5:] for v in row)
    start = gd.read_start(book, "adamw")
    assert start.state == expected_start.state and start.state["step"] == 5 * 29
    assert start.state["b1t"] == pytest.approx(0.9 ** (5 * 29), rel=1e-12)
    assert gd.read_start(book, "adam").epoch == 0  # other tabs untouched
    ws, c0 = load_workbook(book_path)["adamw"], Layout(spec, 29).trace_col0  # the values took their columns' formats
    assert [ws.cell(FIRST + 4, c0 + j).number_format for j in range(4)] == ["0", "0.0000", "0.0000", "0.000E+00"]


def test_run_on_one_tab_changes_only_that_tab(book_path: Path) -> None:
    import zipfile

    def parts(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as zf:
            return {name: zf.read(name) for name in zf.namelist()}

    before = parts(book_path)
    assert main(["run", str(book_path), "--sheet", "rmsprop", "--epochs", "2"]) == 0
    after = parts(book_path)
    names = FileBook(book_path).sheet_names()
    index, compare = names.index("rmsprop") + 1, names.index("compare") + 1  # compare's formulas read the tab
    assert set(after) == set(before)
    assert {name for name in after if after[name] != before[name]} <= {f"xl/worksheets/sheet{index}.xml",
                                                                        f"xl/worksheets/sheet{compare}.xml", "xl/workbook.xml"}


def test_run_json_and_reset(book_path: Path, capsys) -> None:
    assert main(["run", str(book_path), "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == set(SPECS) and all(r["epoch"] == 2 for r in result.values())
    assert main(["reset", str(book_path)]) == 0
    book = FileBook(book_path)
    for sheet in SPECS:
        assert gd.read_start(book, sheet).state == fresh(sheet).state
        assert all(v is None for row in book.read(sheet, book.ref_of(sheet, "trace"))[:3] for v in row)


def test_reset_uses_the_edited_start_values(book_path: Path) -> None:
    """Start values are what reset restores; run starts from the current a, b in the state cells."""
    book = FileBook(book_path)
    book.write("momentum", book.ref_of("momentum", "start_a"), 1.5)
    book.write("momentum", book.ref_of("momentum", "start_b"), -4)
    book.commit()
    spec, data = SPECS["momentum"], gd.make_data()
    assert main(["run", str(book_path), "--sheet", "momentum", "--epochs", "1"]) == 0
    book = FileBook(book_path)
    assert book.read("momentum", book.ref_of("momentum", "trace"))[0] == gd.simulate(spec, fresh("momentum"), *data, 1)[0]
    assert main(["reset", str(book_path), "--sheet", "momentum"]) == 0
    start = gd.read_start(FileBook(book_path), "momentum")
    assert (start.a, start.b, start.epoch) == (1.5, -4.0, 0)
    assert main(["run", str(book_path), "--sheet", "momentum", "--epochs", "1"]) == 0
    book = FileBook(book_path)
    first = book.read("momentum", book.ref_of("momentum", "trace"))[0]
    assert first == gd.simulate(spec, Start.fresh(spec, gd.read_inputs(book, "momentum")), *data, 1)[0]
    assert first[1:3] != gd.simulate(spec, fresh("momentum"), *data, 1)[0][1:3]


# -- bad input: a clear error naming sheet and cell, exit 1, the file byte-identical ------------------
def _set(path: Path, sheet: str, cell: str, value) -> None:
    wb = load_workbook(path)
    wb[sheet][cell] = value
    wb.save(path)


def _edit(path: Path, fn) -> None:
    wb = load_workbook(path)
    fn(wb)
    wb.save(path)


def _del_name(wb, sheet: str, name: str) -> None:
    del wb[sheet].defined_names[name]


_ADAM = Layout(SPECS["adam"], 29)
_TRACE_LAST = _ADAM.trace.split(":")[1]
_TRACE_ROW5 = f"{_ADAM.trace[0]}20"
BAD = {
    "non-numeric lr": (lambda p: _set(p, "adam", cell_of("adam", "lr"), "fast"), ["--sheet", "adam"],
                       ["'adam'", cell_of("adam", "lr"), "number"]),
    "negative lr": (lambda p: _set(p, "rmsprop", cell_of("rmsprop", "lr"), -0.01), ["--sheet", "all"],
                    ["'rmsprop'", cell_of("rmsprop", "lr"), "> 0"]),
    "beta of 1": (lambda p: _set(p, "adamw", cell_of("adamw", "beta1"), 1), ["--sheet", "adamw"],
                  ["'adamw'", cell_of("adamw", "beta1"), "[0, 1)"]),
    "jump of 1": (lambda p: _set(p, "adam_ann_vba", cell_of("adam_ann_vba", "jump"), 1), ["--sheet", "adam_ann_vba"],
                  ["'adam_ann_vba'", cell_of("adam_ann_vba", "jump"), "> 1"]),
    "edited formula row": (lambda p: _set(p, "l2", "H20", "=2*F20*A20"), ["--sheet", "l2"], ["'l2'", "H20", "formula"]),
    "formula typed over a row": (lambda p: _set(p, "adam", "C17", 2.5), ["--sheet", "adam"], ["'adam'", "C17"]),
    "negative lr state": (lambda p: _set(p, "adam_ann", cell_of("adam_ann", "lr_now"), -1), ["--sheet", "adam_ann"],
                          ["'adam_ann'", cell_of("adam_ann", "lr_now"), ">= 0"]),
    "deleted sheet": (lambda p: _edit(p, lambda wb: wb.remove(wb["adagrad"])), ["--sheet", "all"], ["'adagrad'"]),
    "missing trace block": (lambda p: _edit(p, lambda wb: _del_name(wb, "momentum", "trace")), ["--sheet", "momentum"],
                            ["'momentum'", "'trace'"]),
    "non-numeric data": (lambda p: _set(p, "data", "A9", "n/a"), ["--sheet", "adam"], ["'data'", "A9"]),
    "negative epochs": (None, ["--sheet", "adam", "--epochs", "-3"], ["epochs", "-3"]),
    "zero epochs": (None, ["--sheet", "adam", "--epochs", "0"], ["epochs"]),
    "huge epochs": (None, ["--sheet", "adam", "--epochs", "1000000000"], ["'adam'", _TRACE_LAST, f"{TRACE_ROWS:,}"]),
    "unknown sheet": (None, ["--sheet", "nesterov"], ["nesterov", "Run and Reset work on"]),
    "state not a number": (lambda p: _set(p, "adam", cell_of("adam", "m_b"), None), ["--sheet", "adam"],
                           ["'adam'", cell_of("adam", "m_b")]),
    "trace with a gap": (lambda p: _set(p, "adam", _TRACE_ROW5, 4), ["--sheet", "adam"], ["'adam'", _TRACE_ROW5, "gap"]),
    "diverging lr": (lambda p: _set(p, "basic SGD", cell_of("basic SGD", "lr"), 0.01), ["--sheet", "basic SGD"],
                     ["'basic SGD'", cell_of("basic SGD", "lr")]),
    "division by zero": (lambda p: _edit(p, _on_the_answer_without_eps), ["--sheet", "adagrad"],
                         ["'adagrad'", "divided 0 by 0", "ε"]),
}


def _on_the_answer_without_eps(wb) -> None:
    for name, value in (("eps", 0), ("a", 2), ("b", 30)):
        wb["adagrad"][cell_of("adagrad", name)] = value


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_nothing_written(case: str, book_path: Path, capsys) -> None:
    mutate, args, expected = BAD[case]
    if mutate:
        mutate(book_path)
    before = sha(book_path)
    argv = ["run", str(book_path), *args] + ([] if "--epochs" in args else ["--epochs", "3"])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("xlcollab: error:") and err.count("\n") == 1
    for text in expected:
        assert text in err, (text, err)
    assert sha(book_path) == before


def test_out_leaves_the_original_alone_and_other_workbooks_are_refused(book_path: Path, tmp_path: Path, capsys) -> None:
    before = sha(book_path)
    out = tmp_path / "after.xlsx"
    assert main(["run", str(book_path), "--sheet", "adam", "--epochs", "2", "--out", str(out)]) == 0
    assert sha(book_path) == before and gd.read_start(FileBook(out), "adam").epoch == 2
    _edit(book_path, lambda wb: setattr(wb["data"], "title", "points"))
    assert main(["run", str(book_path)]) == 1
    assert "no 'data' tab" in capsys.readouterr().err


def test_reset_refuses_a_bad_start_value(book_path: Path, capsys) -> None:
    _set(book_path, "adagrad", cell_of("adagrad", "start_a"), "one")
    before = sha(book_path)
    assert main(["reset", str(book_path), "--sheet", "all"]) == 1
    err = capsys.readouterr().err
    assert "'adagrad'" in err and cell_of("adagrad", "start_a") in err and sha(book_path) == before


def test_reset_clears_a_trace_with_gaps(book_path: Path) -> None:
    _set(book_path, "adam", _TRACE_ROW5, 4)
    assert main(["reset", str(book_path), "--sheet", "adam"]) == 0
    book = FileBook(book_path)
    assert all(v is None for row in book.read("adam", book.ref_of("adam", "trace"))[:10] for v in row)
