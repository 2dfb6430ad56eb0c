"""The one settings schema (core.settings): the estimator, the CLI and the sheet solves all read it."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from xlcollab.cli import build_parser
from xlcollab.core.fit import CollabFit
from xlcollab.core.settings import FIT, SOLVE, SOLVE_OPTIMIZERS, SolveSettings, check_fit, check_solve
from xlcollab.errors import SettingsError


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
