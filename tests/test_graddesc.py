"""The graddesc workbook: its formulas compute what torch's rules compute, step by step; run/reset; bad input."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from openpyxl import load_workbook
from openpyxl.utils.cell import absolute_coordinate

from xlcollab.book import libreoffice
from xlcollab.cli import main
from xlcollab.errors import SettingsError
from xlcollab.book.filebook import FileBook
from xlcollab.sheets import graddesc as gd
from xlcollab.sheets.graddesc import FIRST, SPECS, Layout, Start


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return gd.build_workbook(tmp_path_factory.mktemp("graddesc") / "graddesc.xlsx")


@pytest.fixture
def book_path(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(built, tmp_path / "graddesc.xlsx"))


def torch_rows(spec, start: Start, xs, ys, epochs: int = 1) -> list[list[dict]]:
    """Per-step values of `epochs` epochs computed by the rules on float64 tensors (torch's values)."""
    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    a, b = t(start.a), t(start.b)
    sa = {k: (v if k == "step" else t(v)) for k, v in start.state_a.items()}
    sb = {k: (v if k == "step" else t(v)) for k, v in start.state_b.items()}
    out = []
    for k in range(start.epoch, start.epoch + epochs):
        rows: list[dict] = []
        settings = gd.rule_settings(spec, start.inputs, gd.epoch_lr(spec, start.inputs, k))
        a, b, _ = gd.run_epoch(spec, settings, a, b, sa, sb, xs, ys, rows)
        out.append([{key: float(v) for key, v in row.items()} for row in rows])
    return out


def float_rows(spec, start: Start, xs, ys, epochs: int = 1) -> list[list[dict]]:
    a, b, sa, sb = start.a, start.b, dict(start.state_a), dict(start.state_b)
    out = []
    for k in range(start.epoch, start.epoch + epochs):
        rows: list[dict] = []
        settings = gd.rule_settings(spec, start.inputs, gd.epoch_lr(spec, start.inputs, k))
        a, b, _ = gd.run_epoch(spec, settings, a, b, sa, sb, xs, ys, rows)
        out.append(rows)
    return out


# -- the workbook ---------------------------------------------------------------------------------
def test_build_is_reproducible_and_names_every_block(built: Path, tmp_path: Path) -> None:
    again = gd.build_workbook(tmp_path / "again.xlsx")
    assert sha(again) == sha(built)
    book = FileBook(built)
    assert book.sheet_names() == ["data", *SPECS, "compare"]
    xs, ys = gd.read_data(book)
    assert len(xs) == 29 and all(1 <= x <= 100 and x == int(x) for x in xs)
    assert ys == [2 * x + 30 for x in xs]
    for sheet, spec in SPECS.items():
        lay = Layout(spec, 29)
        names = book.names(sheet)
        for name, cell in {**lay.inputs, **lay.state, **lay.outputs}.items():
            assert names[name] == f"'{sheet}'!{absolute_coordinate(cell)}"
        assert book.ref_of(sheet, "steps") == lay.steps and book.ref_of(sheet, "trace") == lay.trace
        start = gd.read_start(book, sheet)
        assert (start.a, start.b, start.epoch) == (1.0, 1.0, 0)
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
    for bad in ({"n_points": 0}, {"n_points": 2.5}, {"noise": -1.0}):
        with pytest.raises(SettingsError):
            gd.build_workbook(tmp_path / "bad.xlsx", **bad)
    assert not (tmp_path / "bad.xlsx").exists()


# -- the rules on the sheet problem ---------------------------------------------------------------
@pytest.mark.parametrize("sheet", list(SPECS))
def test_floats_and_tensors_are_bit_identical_on_the_sheet(sheet: str) -> None:
    spec = SPECS[sheet]
    xs, ys = gd.make_data()
    by_float = float_rows(spec, Start.fresh(spec), xs, ys, 3)
    by_tensor = torch_rows(spec, Start.fresh(spec), xs, ys, 3)
    assert by_float == by_tensor  # every column of every row, exactly


@pytest.mark.parametrize("sheet", list(SPECS))
def test_gradient_columns_are_autograd_gradients(sheet: str) -> None:
    spec = SPECS[sheet]
    xs, ys = gd.make_data()
    start = Start.fresh(spec)
    wd = start.inputs.get("wd", 0.0) if spec.l2 else 0.0
    for row in float_rows(spec, start, xs, ys, 2)[1]:
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


@pytest.mark.parametrize("sheet,torch_cls", [("basic SGD", torch.optim.SGD), ("adagrad", torch.optim.Adagrad),
                                             ("rmsprop", torch.optim.RMSprop), ("adamw", torch.optim.AdamW),
                                             ("l2", torch.optim.Adam)])
def test_tabs_that_are_torch_optim_take_its_steps(sheet: str, torch_cls) -> None:
    """Where a tab's rule is torch.optim's maths, torch.optim itself takes the same steps on the tab's data."""
    spec = SPECS[sheet]
    xs, ys = gd.make_data()
    start = Start.fresh(spec)
    settings = gd.rule_settings(spec, start.inputs, start.inputs["lr"])
    if spec.rule == "sgd":
        settings = {"lr": settings["lr"]}
    a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    names = {"beta1": None, "beta2": None, "decoupled": None, "bias_correction": None, "dampening": None}
    theirs = {k: v for k, v in settings.items() if k not in names}  # torch.optim's names for the rest
    if "beta1" in settings:
        theirs["betas"] = (settings["beta1"], settings["beta2"])
    opt = torch_cls([a, b], **theirs)
    steps = [row for epoch in float_rows(spec, start, xs, ys, 2) for row in epoch]
    for row, x, y in zip(steps, xs * 2, ys * 2):
        opt.zero_grad()
        ((a * x + b - y) ** 2).backward()  # torch.optim adds the L2 term itself (weight_decay)
        opt.step()
        assert math.isclose(a.item(), row["new_a"], rel_tol=1e-12) and math.isclose(b.item(), row["new_b"], rel_tol=1e-12)


@pytest.mark.parametrize("sheet", list(SPECS))
def test_epoch_loss_falls_from_the_defaults(sheet: str) -> None:
    spec = SPECS[sheet]
    xs, ys = gd.make_data()
    trace = gd.simulate(spec, Start.fresh(spec), xs, ys, 60)
    losses = [row[3] for row in trace]
    assert sum(losses[-10:]) / 10 < 0.7 * losses[0]
    assert min(losses) < 0.7 * losses[0] and losses[1] < losses[0] * 1.5


def test_adaptive_rules_reach_the_true_line() -> None:
    """Closed-form target: the data are exactly y = 2x + 30, so (a, b) must come within 1 % of (2, 30)."""
    xs, ys = gd.make_data()
    for sheet in ("adagrad", "adam_ann"):
        trace = gd.simulate(SPECS[sheet], Start.fresh(SPECS[sheet]), xs, ys, 100)
        assert abs(trace[-1][1] - 2) < 0.02 and abs(trace[-1][2] - 30) < 0.3, sheet


# -- LibreOffice recalculates the sheets' own formulas ----------------------------------------------
def _assert_sheet_matches(wb, book: FileBook, sheet: str, xs, ys) -> int:
    """Every step cell LibreOffice computed equals torch's value (1e-9 relative); returns cells checked."""
    spec = SPECS[sheet]
    start = gd.read_start(book, sheet)
    rows = torch_rows(spec, start, xs, ys)[0]
    ws, lay = wb[sheet], Layout(spec, len(xs))
    checked = 0
    for i, row in enumerate(rows):
        for j, key in enumerate(spec.columns, start=1):
            got = ws.cell(FIRST + i, j).value
            assert isinstance(got, (int, float)), (sheet, FIRST + i, key, got)
            assert math.isclose(got, row[key], rel_tol=1e-9, abs_tol=1e-12), (sheet, FIRST + i, key, got, row[key])
            checked += 1
    loss = sum(r["loss"] for r in rows) / len(rows)
    assert math.isclose(ws[lay.outputs["loss"]].value, loss, rel_tol=1e-9)
    assert math.isclose(ws[lay.outputs["end_a"]].value, rows[-1]["new_a"], rel_tol=1e-9)
    if spec.anneal:
        assert math.isclose(ws[lay.outputs["lr_now"]].value, gd.epoch_lr(spec, start.inputs, start.epoch), rel_tol=1e-12)
    return checked


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_computes_torchs_steps_before_and_after_run(built: Path, tmp_path: Path) -> None:
    fresh = Path(shutil.copy(built, tmp_path / "fresh.xlsx"))
    ran = Path(shutil.copy(built, tmp_path / "ran.xlsx"))
    reset = Path(shutil.copy(built, tmp_path / "reset.xlsx"))
    assert main(["run", str(ran), "--epochs", "2"]) == 0          # the rows now show epoch 3
    assert main(["run", str(reset), "--sheet", "adam", "--epochs", "4"]) == 0
    assert main(["reset", str(reset), "--sheet", "adam"]) == 0    # back to epoch 1
    out = libreoffice.recalc([fresh, ran, reset], tmp_path / "lo")
    xs, ys = gd.make_data()
    checked = 0
    for path, recalced, sheets in ((fresh, out[0], SPECS), (ran, out[1], SPECS), (reset, out[2], ["adam"])):
        wb, book = load_workbook(recalced, data_only=True), FileBook(path)
        for sheet in sheets:
            checked += _assert_sheet_matches(wb, book, sheet, xs, ys)
    assert checked == 29 * (2 * sum(len(s.columns) for s in SPECS.values()) + len(SPECS["adam"].columns))
    # the trace `run` wrote holds epochs 1 and 2 of the same computation, and compare reads the tabs' state
    wb, book = load_workbook(out[1], data_only=True), FileBook(ran)
    for i, (sheet, spec) in enumerate(SPECS.items()):
        trace = gd.simulate(spec, Start.fresh(spec), xs, ys, 2)
        got = book.read(sheet, book.ref_of(sheet, "trace"))[:3]
        assert got[:2] == trace and all(v is None for v in got[2])
        assert wb["compare"].cell(5 + i, 2).value == 2
        assert math.isclose(wb["compare"].cell(5 + i, 3).value, trace[-1][1], rel_tol=1e-14)


@pytest.mark.libreoffice
def test_run_book_on_a_live_libreoffice_book(built: Path, tmp_path: Path) -> None:
    """The same run_book on another Book backend (a live Calc over UNO, as the add-in runs it in Excel):
    after its commit, Calc's own recalculation of the rows equals torch's next epoch, in full precision."""
    from xlcollab.book import unobook

    if not unobook.available():
        pytest.skip("LibreOffice or python3-uno not installed")
    path = Path(shutil.copy(built, tmp_path / "live.xlsx"))
    xs, ys = gd.make_data()
    with unobook.Office() as office:
        book = office.open(path)
        try:
            results = gd.run_book(book, ["adam_ann", "l2"], 2)
            book.commit()
            for sheet in ("adam_ann", "l2"):
                spec, start = SPECS[sheet], gd.read_start(book, sheet)
                assert start.epoch == 2 and start.a == results[sheet]["a"]
                rows = torch_rows(spec, start, xs, ys)[0]
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
    expected_start = Start.fresh(spec)
    expected = gd.simulate(spec, expected_start, *xs_ys, 5)
    trace = book.read("adamw", book.ref_of("adamw", "trace"))
    assert trace[:5] == expected and [row[0] for row in trace[:5]] == [1, 2, 3, 4, 5]
    assert all(v is None for row in trace[5:] for v in row)
    start = gd.read_start(book, "adamw")
    assert (start.epoch, start.a, start.b) == (5, expected_start.a, expected_start.b)
    assert start.state_a == expected_start.state_a and start.state_a["step"] == 5 * 29
    assert gd.read_start(book, "adam").epoch == 0  # other tabs untouched


def test_run_on_one_tab_changes_only_that_tab(book_path: Path) -> None:
    import zipfile

    def parts(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as zf:
            return {name: zf.read(name) for name in zf.namelist()}

    before = parts(book_path)
    assert main(["run", str(book_path), "--sheet", "rmsprop", "--epochs", "2"]) == 0
    after = parts(book_path)
    index = ["data", *SPECS, "compare"].index("rmsprop") + 1
    assert set(after) == set(before)
    assert {name for name in after if after[name] != before[name]} <= {f"xl/worksheets/sheet{index}.xml", "xl/workbook.xml"}


def test_run_json_and_reset(book_path: Path, capsys) -> None:
    assert main(["run", str(book_path), "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == set(SPECS) and all(r["epoch"] == 2 for r in result.values())
    assert main(["reset", str(book_path)]) == 0
    book = FileBook(book_path)
    for sheet, spec in SPECS.items():
        start = gd.read_start(book, sheet)
        fresh = Start.fresh(spec)
        assert (start.epoch, start.a, start.b, start.state_a) == (0, 1.0, 1.0, fresh.state_a)
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
    assert book.read("momentum", book.ref_of("momentum", "trace"))[0] == gd.simulate(spec, Start.fresh(spec), *data, 1)[0]
    assert main(["reset", str(book_path), "--sheet", "momentum"]) == 0
    start = gd.read_start(FileBook(book_path), "momentum")
    assert (start.a, start.b, start.epoch) == (1.5, -4.0, 0)
    assert main(["run", str(book_path), "--sheet", "momentum", "--epochs", "1"]) == 0
    book = FileBook(book_path)
    first = book.read("momentum", book.ref_of("momentum", "trace"))[0]
    assert first == gd.simulate(spec, Start.fresh(spec, gd.read_inputs(book, "momentum")), *data, 1)[0]
    assert first[1:3] != gd.simulate(spec, Start.fresh(spec), *data, 1)[0][1:3]


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


BAD = {
    "non-numeric lr": (lambda p: _set(p, "adam", "B7", "fast"), ["--sheet", "adam"], ["'adam'", "B7", "number"]),
    "negative lr": (lambda p: _set(p, "rmsprop", "B7", -0.01), ["--sheet", "all"], ["'rmsprop'", "B7", "> 0"]),
    "beta of 1": (lambda p: _set(p, "adamw", "B8", 1), ["--sheet", "adamw"], ["'adamw'", "B8", "[0, 1)"]),
    "edited formula row": (lambda p: _set(p, "l2", "H20", "=2*F20*A20"), ["--sheet", "l2"], ["'l2'", "H20", "formula"]),
    "formula typed over a row": (lambda p: _set(p, "adam", "C17", 2.5), ["--sheet", "adam"], ["'adam'", "C17"]),
    "edited annealing formula": (lambda p: _set(p, "adam_ann", "J8", 0.5), ["--sheet", "adam_ann"], ["'adam_ann'", "J8"]),
    "deleted sheet": (lambda p: _edit(p, lambda wb: wb.remove(wb["adagrad"])), ["--sheet", "all"], ["'adagrad'"]),
    "missing trace block": (lambda p: _edit(p, lambda wb: _del_name(wb, "momentum", "trace")), ["--sheet", "momentum"],
                            ["'momentum'", "'trace'"]),
    "non-numeric data": (lambda p: _set(p, "data", "A9", "n/a"), ["--sheet", "adam"], ["'data'", "A9"]),
    "negative epochs": (None, ["--sheet", "adam", "--epochs", "-3"], ["epochs", "-3"]),
    "zero epochs": (None, ["--sheet", "adam", "--epochs", "0"], ["epochs"]),
    "huge epochs": (None, ["--sheet", "adam", "--epochs", "1000000000"], ["'adam'", "Y2015", "2,000"]),
    "unknown sheet": (None, ["--sheet", "nesterov"], ["nesterov"]),
    "state not a number": (lambda p: _set(p, "adam", "F8", None), ["--sheet", "adam"], ["'adam'", "F8"]),
    "trace with a gap": (lambda p: _set(p, "adam", "Q20", 4), ["--sheet", "adam"], ["'adam'", "Q20", "gap"]),
    "diverging lr": (lambda p: _set(p, "basic SGD", "B7", 0.01), ["--sheet", "basic SGD"], ["'basic SGD'", "B7"]),
}


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
    _set(book_path, "adagrad", "B5", "one")
    before = sha(book_path)
    assert main(["reset", str(book_path), "--sheet", "all"]) == 1
    err = capsys.readouterr().err
    assert "'adagrad'" in err and "B5" in err and sha(book_path) == before


def test_reset_clears_a_trace_with_gaps(book_path: Path) -> None:
    _set(book_path, "adam", "Q20", 4)
    assert main(["reset", str(book_path), "--sheet", "adam"]) == 0
    book = FileBook(book_path)
    assert all(v is None for row in book.read("adam", book.ref_of("adam", "trace"))[:10] for v in row)
