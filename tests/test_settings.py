"""The one settings schema (core.settings): the estimator, the CLI and the sheet solves all read it; and the settings
cells of the bundled tabs, which the buttons and `xlcollab solve` read alike."""
from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys

import openpyxl
import pytest

from xlcollab import excel
from xlcollab.book import libreoffice
from xlcollab.book.base import bounds, cell_name
from xlcollab.book.filebook import FileBook
from xlcollab.cli import build_parser, main
from xlcollab.core.fit import CollabFit
from xlcollab.core.settings import FIT, SOLVE, SOLVE_OPTIMIZERS, SolveSettings, check_fit, check_solve
from xlcollab.errors import SettingsError, WorkbookError
from xlcollab.sheets import collab, graddesc
from xlcollab.sheets.collab.layout import DEFAULTS
from xlcollab.sheets.collab.parts import SETTINGS_LABELS
from xlcollab.sheets.common import SETTING_CHOICES


def test_every_setting_is_a_constructor_parameter_with_the_schemas_default():
    params = inspect.signature(CollabFit).parameters
    assert list(params) == list(FIT)
    for name, setting in FIT.items():
        assert params[name].default is setting.default, name
    assert CollabFit().get_params() == {name: s.default for name, s in FIT.items()}
    for name, setting in FIT.items():  # the help line reaches the estimator's docstring
        assert f"{name} : {setting.help}" in CollabFit.__doc__


def test_check_fit_fills_the_defaults_that_depend_on_others():
    s = check_fit({})
    assert s["wd_bias"] == 0.01 and s["wd_mode"] == "l2"
    s = check_fit({"optimizer": "adamw", "wd_bias": None, "wd": 0.3, "n_factors": 8.0})
    assert s["wd_bias"] == 0.3 and s["wd_mode"] == "decoupled"
    assert s["n_factors"] == 8 and type(s["n_factors"]) is int  # a whole float reads as the int
    assert check_fit({"y_range": [1, 6]})["y_range"] == (1.0, 6.0)
    with pytest.raises(SettingsError, match="unknown setting 'lrate'"):
        check_fit({"lrate": 0.1})


@pytest.mark.parametrize("name,value,words", [
    ("model", "svd", "model must be one of dotbias, dot, nn, bmf, svdpp, blend, found 'svd'"),
    ("epochs", True, "epochs must be a whole number >= 1, found True"),
    ("seed", -1, "seed must be a whole number >= 0, found -1"),
    ("clip", "yes", "clip must be True or False, found 'yes'"),
    ("progress", 1, "progress must be True or False, found 1"),
    ("wd_bias", float("inf"), "wd_bias must be a number >= 0, found inf"),
    ("device", "cuda:x", "device must be auto, cpu, cuda or cuda:N, found 'cuda:x'"),
    ("y_range", (1, 1), "y_range must be 'auto', None or (low, high) with low < high, found (1, 1)"),
    ("hidden", (10, 0), "hidden must be a whole number >= 1, found 0"),
    ("hidden", (), "hidden must be one or more whole numbers >= 1, found none"),
    ("dropout", (0.5, 1.0), "dropout must be a number in [0, 1), found 1.0"),
    ("dropout", 0.5, "dropout must be two probabilities (embeddings, hidden layers), found 0.5"),
    ("init", "he", "init must be one of trunc-normal, kaiming, found 'he'"),
    ("cycle_mult", 1.5, "cycle_mult must be a whole number >= 1, found 1.5"),
    ("user_factors", 0, "user_factors must be a whole number >= 1, found 0"),
])
def test_check_fit_refuses_naming_setting_and_value(name, value, words):
    with pytest.raises(SettingsError) as err:
        check_fit({name: value})
    assert str(err.value) == words


def test_cli_flags_are_the_schema_and_reach_the_estimator(capsys):
    args = build_parser().parse_args(["fit", "--factors", "8", "--y-range", "1", "6", "--no-clip", "--batch-size",
                                      "full", "--wd-bias", "none", "--progress", "--hidden", "30", "3", "--beta2", "0.9",
                                      "--dropout", "0.1", "0.25", "--user-factors", "4", "--item-factors", "6",
                                      "--init", "kaiming", "--schedule", "sgdr", "--cycle-len", "2",
                                      "--cycle-mult", "3"])
    params = {name: getattr(args, name) for name in FIT}
    assert params == {**CollabFit().get_params(), "n_factors": 8, "y_range": (1.0, 6.0), "clip": False,
                      "batch_size": None, "wd_bias": None, "progress": True, "hidden": (30, 3), "beta2": 0.9,
                      "dropout": (0.1, 0.25), "user_factors": 4, "item_factors": 6, "init": "kaiming",
                      "schedule": "sgdr", "cycle_len": 2, "cycle_mult": 3}
    for words, value in ((["auto"], "auto"), (["none"], None), (["NONE"], None), (["-1", "5"], (-1.0, 5.0))):
        assert build_parser().parse_args(["fit", "--y-range", *words]).y_range == value
    defaults = build_parser().parse_args(["fit"])
    assert {name: getattr(defaults, name) for name in FIT} == CollabFit().get_params()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for setting in FIT.values():
        assert setting.flag in text and " ".join(setting.help.split()) in text


def test_sizes_default_to_factors_and_a_dot_product_needs_them_equal():
    s = check_fit({"model": "nn", "n_factors": 8, "item_factors": 3, "hidden": 5})
    assert (s["user_factors"], s["item_factors"], s["hidden"]) == (8, 3, (5,))
    s = check_fit({"user_factors": 16, "item_factors": 16})  # dotbias: the two equal sizes are its factors
    assert s["n_factors"] == s["user_factors"] == s["item_factors"] == 16
    for model in ("dot", "dotbias"):
        with pytest.raises(SettingsError) as err:
            check_fit({"model": model, "user_factors": 32})
        assert str(err.value) == (f"user_factors 32 and item_factors 64 differ: model {model} takes the dot product "
                                  "of a user's and a movie's factors, so both need the same size (give --factors; "
                                  "different sizes are for --model nn)")


def test_sgdr_runs_whole_cycles():
    for cycle_len, cycle_mult, epochs in ((1, 2, 7), (1, 2, 1), (2, 1, 6), (1, 3, 13), (3, 2, 9)):
        check_fit({"schedule": "sgdr", "cycle_len": cycle_len, "cycle_mult": cycle_mult, "epochs": epochs})
    with pytest.raises(SettingsError) as err:
        check_fit({"schedule": "sgdr", "cycle_mult": 2, "epochs": 8})
    assert str(err.value) == ("epochs 8 ends inside an SGDR cycle: with cycle_len 1 and cycle_mult 2 the cycles end "
                              "after 1, 3, 7, 15 epochs; give epochs 7 or 15")
    with pytest.raises(SettingsError, match="cycles end after 4 epochs; give epochs 4$"):
        check_fit({"schedule": "sgdr", "cycle_len": 4, "epochs": 3})
    check_fit({"schedule": "annealed", "cycle_mult": 2, "epochs": 8})  # only sgdr has cycles


def test_help_needs_no_torch():
    code = "import sys; from xlcollab.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_check_solve_takes_the_tabs_default_or_the_optimizers():
    tab = ("lbfgs", 1.0, 200)
    assert check_solve(tab) == SolveSettings("lbfgs", 1.0, 200, SOLVE["wd"].default, "auto")
    assert check_solve(tab, optimizer="ADAM") == SolveSettings("adam", *SOLVE_OPTIMIZERS["adam"], 0.0, "auto")
    assert check_solve(tab, optimizer="sgd", lr=0.2, epochs=5.0, wd=0.01, device="cpu") == \
        SolveSettings("sgd", 0.2, 5, 0.01, "cpu")
    assert check_solve(("adam", 0.1, 1000), optimizer="adam") == SolveSettings("adam", 0.1, 1000, 0.0, "auto")


@pytest.mark.parametrize("given,words", [
    ({"optimizer": "rmsprop"}, "the optimizer must be one of adam, adamw, sgd, momentum, lbfgs, found 'rmsprop'"),
    ({"lr": -1}, "the learning rate must be a number > 0, found -1"),
    ({"epochs": 0}, "epochs must be a whole number >= 1, found 0"),
    ({"wd": float("nan")}, "the weight decay must be a number >= 0, found nan"),
    ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N, found 'tpu'"),
])
def test_check_solve_refuses_naming_setting_and_value(given, words):
    with pytest.raises(SettingsError) as err:
        check_solve(("lbfgs", 1.0, 200), **given)
    assert str(err.value) == words


# -- the bundled tabs' settings cells (sheets.settings_cells reads them; the buttons and `solve` obey them) --
@pytest.fixture
def fresh(bundled, tmp_path):
    return lambda kind, name=None: shutil.copy(bundled[kind], tmp_path / (name or bundled[kind].name))


def _cell(book, sheet, label):
    """The value cell of the settings row `label` ("F7")."""
    ref = book.ref_of(sheet, "settings")
    r0, _, _, c1 = bounds(ref)
    return cell_name(r0 + [r[0] for r in book.read(sheet, ref)].index(label), c1)


def _set(book, sheet, **values):
    for label, value in values.items():
        book.write(sheet, _cell(book, sheet, label), value)
    book.commit()


def _last_run(book, sheet):
    return dict(zip(("optimizer", "lr", "epochs", "wd", "device"), (r[0] for r in book.read_name(sheet, "last_run"))))


def test_every_bundled_tab_has_a_blank_validated_settings_block(bundled):
    wb = openpyxl.load_workbook(bundled["collab"])
    for sheet in collab.SHEETS:
        ws = wb[sheet]
        (_, ref), = ws.defined_names["settings"].destinations
        rows = [[c.value for c in row] for row in ws[ref.replace("$", "")]]
        assert [r[0] for r in rows] == list(SETTINGS_LABELS) and all(r[1] is None for r in rows), sheet
        lists = {dv.formula1: str(dv.sqref) for dv in ws.data_validations.dataValidation if dv.type == "list"}
        for label in ("optimizer", "device"):
            want = _cell(FileBook(bundled["collab"]), sheet, label)
            assert lists['"' + ",".join(SETTING_CHOICES[label]) + '"'] == want
        assert ws[_cell(FileBook(bundled["collab"]), sheet, "lr")].fill.fgColor.rgb.endswith("FFF2CC")  # input yellow
    wb = openpyxl.load_workbook(bundled["graddesc"])
    for sheet in graddesc.SPECS:
        (_, ref), = wb[sheet].defined_names["settings"].destinations
        assert [[c.value for c in row] for row in wb[sheet][ref.replace("$", "")]] == [["epochs", None]], sheet


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice not installed")
def test_the_default_column_shows_what_a_blank_cell_runs(fresh, tmp_path):
    """LibreOffice computes the grey default beside lr and epochs for every optimizer typed in the optimizer cell:
    it equals what the solve runs (core.settings.check_solve) on every tab."""
    paths = []
    for opt in (None, *SOLVE_OPTIMIZERS):
        path = fresh("collab", f"{opt or 'blank'}.xlsx")
        book = FileBook(path)
        for sheet in collab.SHEETS:
            if opt:
                book.write(sheet, _cell(book, sheet, "optimizer"), opt)
        book.commit()
        paths.append((opt, path))
    recalculated = libreoffice.recalc([p for _, p in paths], tmp_path / "lo")
    for (opt, path), out in zip(paths, recalculated):
        wb, book = openpyxl.load_workbook(out, data_only=True), FileBook(path)
        for sheet in collab.SHEETS:
            ws, want = wb[sheet], check_solve(DEFAULTS[sheet], optimizer=opt)
            shown = {label: ws[_cell(book, sheet, label)].offset(column=1).value for label in SETTINGS_LABELS}
            assert shown == {"optimizer": DEFAULTS[sheet][0], "lr": want.lr, "epochs": want.epochs, "device": "auto",
                             "multistart": 1}, (sheet, opt)


def test_edited_cells_are_what_solve_runs_by_button_and_by_cli(fresh, capsys):
    """optimizer sgd and epochs 5 typed in dotprod's cells: the Solve macro on the file and `xlcollab solve` both
    run exactly that (lr blank: sgd's own), and the last run block records it; a flag wins over a cell."""
    path, twin = fresh("collab"), fresh("collab", "twin.xlsx")
    for p in (path, twin):
        _set(FileBook(p), "dotprod", optimizer="sgd", epochs=5, device="cpu")
    result = excel.solve(FileBook(path), "dotprod")
    ran = _last_run(FileBook(path), "dotprod")
    assert ran == {"optimizer": "sgd", "lr": SOLVE_OPTIMIZERS["sgd"][0], "epochs": 5, "wd": 0, "device": "cpu"}
    assert (result["optimizer"], result["lr"], result["epochs"]) == ("sgd", 0.5, 5)
    assert main(["solve", str(twin), "--sheet", "dotprod"]) == 0
    assert _last_run(FileBook(twin), "dotprod") == ran
    assert FileBook(twin).read_name("dotprod", "user_factors") == FileBook(path).read_name("dotprod", "user_factors")
    assert main(["solve", str(twin), "--sheet", "dotprod", "--epochs", "3", "--optimizer", "adam"]) == 0
    assert _last_run(FileBook(twin), "dotprod") == {**ran, "optimizer": "adam", "lr": 0.05, "epochs": 3}
    capsys.readouterr()


def test_blank_cells_solve_as_the_tabs_defaults(fresh):
    """The block as built changes nothing: each tab runs layout.DEFAULTS (the README's table comes from these)."""
    path = fresh("collab")
    out = excel.solve(FileBook(path), "movielens_1hot")
    assert (out["optimizer"], out["lr"], out["epochs"]) == DEFAULTS["movielens_1hot"]


def test_run_reads_its_epochs_cell(fresh):
    path = fresh("graddesc")
    _set(FileBook(path), "momentum", epochs=3)
    assert excel.run(FileBook(path), "momentum")["epoch"] == 3
    assert excel.run(FileBook(path), "momentum", epochs=2)["epoch"] == 5  # the caller's epochs win
    _set(FileBook(path), "momentum", epochs=None)
    assert excel.run(FileBook(path), "momentum")["epoch"] == 5 + graddesc.layout.RUN_EPOCHS


def test_the_run_command_reads_each_tabs_epochs_cell_as_the_button_does(fresh, capsys):
    path = fresh("graddesc")
    _set(FileBook(path), "momentum", epochs=3)
    assert main(["run", str(path), "--json"]) == 0  # every tab
    done = json.loads(capsys.readouterr().out)
    assert (done["momentum"]["epoch"], done["adam"]["epoch"]) == (3, graddesc.layout.RUN_EPOCHS)
    assert main(["run", str(path), "--sheet", "momentum", "--epochs", "2", "--json"]) == 0  # the flag wins
    assert json.loads(capsys.readouterr().out)["momentum"]["epoch"] == 5


@pytest.mark.parametrize("sheet, label, value, words", [
    ("dotprod", "lr", -1, "the learning rate must be a number > 0, found -1"),
    ("bias", "optimizer", "foo", "the optimizer must be one of adam, adamw, sgd, momentum, lbfgs, found 'foo'"),
    ("nnet", "epochs", 2.5, "epochs must be a whole number in [1, 1000000], found 2.5"),
    ("movielens_emb", "device", "gpu", "the device must be one of auto, cpu, cuda, found 'gpu'"),
])
def test_a_bad_cell_is_named_and_nothing_is_written(fresh, capsys, sheet, label, value, words):
    path = fresh("collab")
    _set(FileBook(path), sheet, **{label: value})
    cell, before = _cell(FileBook(path), sheet, label), path.read_bytes()
    message = f"file {path}, sheet '{sheet}', cell {cell}: {words}"
    with pytest.raises(WorkbookError) as err:
        excel.solve(FileBook(path), sheet)
    assert str(err.value) == message
    assert main(["solve", str(path), "--sheet", sheet]) == 1
    assert capsys.readouterr().err == f"xlcollab: error: {message}\n"
    assert main(["solve", str(path)]) == 1  # every tab: the bad one stops all before anything is written
    assert path.read_bytes() == before


def test_a_bad_run_epochs_cell_is_named(fresh):
    path = fresh("graddesc")
    _set(FileBook(path), "adam", epochs=0)
    before = path.read_bytes()
    with pytest.raises(WorkbookError, match=r"sheet 'adam', cell B13: epochs must be a whole number in \[1, "):
        excel.run(FileBook(path), "adam")
    assert path.read_bytes() == before


@pytest.mark.libreoffice
def test_edited_cells_drive_the_macros_in_a_live_libreoffice(office, fresh):
    """The same through UNO: cells typed into a running Calc, the same macro code, the book from the caller."""
    path, twin = fresh("collab"), fresh("collab", "twin.xlsx")
    _set(FileBook(twin), "bias", optimizer="momentum", lr=0.05, epochs=7, device="cpu")
    excel.solve(FileBook(twin), "bias")
    book = office.open(path)
    try:
        book.activate("bias")
        _set(book, "bias", optimizer="momentum", lr=0.05, epochs=7, device="cpu")
        result = excel.solve(book)
        assert _last_run(book, "bias") == {"optimizer": "momentum", "lr": 0.05, "epochs": 7, "wd": 0, "device": "cpu"}
        assert _last_run(book, "bias") == _last_run(FileBook(twin), "bias")
        assert result["final_rmse"] == pytest.approx(FileBook(twin).read_name("bias", "last_run")[-1][0], rel=1e-9)
        _set(book, "bias", epochs=2.5)
        with pytest.raises(WorkbookError, match=r"sheet 'bias', cell \w+\d+: epochs must be a whole number"):
            excel.solve(book)
        assert book.alerts[-1].startswith("xlcollab Solve failed: ") and _last_run(book, "bias")["epochs"] == 7
    finally:
        book.close()
    gd = office.open(fresh("graddesc"))
    try:
        gd.activate("rmsprop")
        _set(gd, "rmsprop", epochs=4)
        assert excel.run(gd)["epoch"] == 4
    finally:
        gd.close()


def test_a_foreign_workbooks_settings_block_drives_cli_and_button_alike(tmp_path, capsys):
    """Any sheet with a Solver model may carry the block: engine, multistart and device typed in its cells reach the
    solver by `xlcollab solve` and by the Solve macro, and a flag wins over a cell."""
    from openpyxl.workbook.defined_name import DefinedName
    from test_solver_workbooks import CASES

    wb = CASES["rosenbrock"].build()  # min 1 + (1-x)^2 + 100 (y-x^2)^2 = 1 at (1, 1), on sheet Model
    ws = wb["Model"]
    for i, (label, value) in enumerate((("engine", "evolutionary"), ("multistart", 4), ("device", "cpu")), start=1):
        ws.cell(i, 8, label), ws.cell(i, 9, value)
    ws.defined_names["settings"] = DefinedName("settings", attr_text="Model!$H$1:$I$3")
    path, twin = tmp_path / "model.xlsx", tmp_path / "twin.xlsx"
    wb.save(path)
    wb.save(twin)
    assert main(["solve", str(path), "--json"]) == 0
    by_cli = json.loads(capsys.readouterr().out)["sheets"]["Model"]
    by_button = excel.solve(FileBook(twin), "Model")
    for got in (by_cli, by_button):
        assert got["engine"].startswith("multistart(4)+") and got["device"] == "cpu"
        assert got["objective_after"] == pytest.approx(1.0, abs=1e-6)
    assert main(["solve", str(path), "--json", "--multistart", "2", "--engine", "grg"]) == 0
    assert json.loads(capsys.readouterr().out)["sheets"]["Model"]["engine"].startswith("multistart(2)+")
