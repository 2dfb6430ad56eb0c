"""`xlcollab cv` and `xlcollab tune`: the numbers equal core.evaluate / core.tune's, bad input is one line."""
from __future__ import annotations

import json

import pytest

from xlcollab.cli import main
from xlcollab.core import evaluate, fit, tune
from tests.test_evaluate import small_ratings


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cv") / "ratings.csv"
    small_ratings(50, 30).frame.to_csv(path, index=False)
    return path


def test_cv_json_equals_cross_validate(ratings_csv, capsys):
    assert main(["cv", str(ratings_csv), "--folds", "3", "--cv-seed", "4", "--epochs", "4", "--factors", "3",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = evaluate.cross_validate(fit.fit_predict(epochs=4, n_factors=3), str(ratings_csv), folds=3,
                                   seed=4)
    assert len(out["per_fold"]) == 3
    for m in evaluate.METRICS:
        assert out[m]["mean"] == pytest.approx(want.mean(m), rel=1e-6)
        assert out[m]["std"] == pytest.approx(want.std(m), rel=1e-6, abs=1e-12)
    assert out["settings"]["n_factors"] == 3


def test_cv_table(ratings_csv, capsys):
    assert main(["cv", str(ratings_csv), "--folds", "2", "--epochs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["fold", "RMSE", "MAE", "prec@10"]
    assert [line.split()[0] for line in lines[2:6]] == ["1", "2", "mean", "std"]
    assert lines[-1].startswith("RMSE ") and "±" in lines[-1]


def test_tune_grid_json_equals_core_tune(ratings_csv, capsys):
    assert main(["tune", str(ratings_csv), "--grid", "wd=0.01,0.3", "--grid", "factors=2", "--epochs", "3",
                 "--folds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = tune.tune(lambda c: fit.fit_predict(**{"epochs": 3, **c}), str(ratings_csv),
                     tune.grid({"wd": [0.01, 0.3], "n_factors": [2]}), folds=2)
    assert out["best"] == want.best
    assert [c["rmse"]["mean"] for c in out["candidates"]] == pytest.approx([r["rmse"]["mean"] for r in want.rows])
    assert out["held_out"]["rmse"] == pytest.approx(want.held_out["rmse"])


def test_tune_random_draws_from_ranges(ratings_csv, capsys):
    assert main(["tune", str(ratings_csv), "--random", "2", "--grid", "lr=0.001:0.05", "--epochs", "2",
                 "--folds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["candidates"]) == 2
    assert all(0.001 <= c["settings"]["lr"] <= 0.05 for c in out["candidates"])


@pytest.mark.parametrize("argv, words", [
    (["tune"], "tune needs --grid"),
    (["tune", "--grid", "bogus=1"], "--grid 'bogus=1': expected NAME=V1,V2"),
    (["tune", "--grid", "wd=a,b"], "cannot read the values of wd"),
    (["tune", "--grid", "wd=-1,0.1"], "wd must be a number >= 0"),
    (["cv", "--folds", "1"], "folds must be a whole number >= 2"),
    (["cv", "--lr", "-1"], "lr must be a number > 0"),
])
def test_bad_input_is_one_line(argv, words, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
