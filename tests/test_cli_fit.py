"""`xlcollab fit / recommend / explain` end to end, through cli.main and once through a subprocess;
every bad input gives one line on stderr and exit status 1, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xlcollab.cli import main
from xlcollab.core.fit import CollabFit
from xlcollab.core.settings import MAX_EPOCHS


@pytest.fixture
def sample_dir(tmp_path, small_ratings) -> Path:
    """An ml-latest-style folder (ratings.csv + movies.csv) holding the 559-rating sample."""
    d = tmp_path / "sample"
    d.mkdir()
    f = small_ratings.frame.rename(columns={"user": "userId", "item": "movieId"})
    f[["userId", "movieId", "rating"]].to_csv(d / "ratings.csv", index=False)
    t = small_ratings.titles
    t.rename("title").rename_axis("movieId").reset_index().to_csv(d / "movies.csv", index=False)
    return d


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_save_recommend_explain(capsys, tmp_path, sample_dir, small_ratings):
    model = tmp_path / "m.pt"
    code, out, err = run(capsys, "fit", str(sample_dir), "--factors", "5", "--epochs", "3", "--batch-size", "128",
                         "--save", str(model))
    assert code == 0, err
    lines = out.splitlines()
    assert "559 ratings" in lines[0] and lines[1] == "447 train / 112 valid ratings (split seed 42)"
    assert lines[2].split() == ["epoch", "train_rmse", "valid_rmse", "lr", "seconds"]
    assert [ln.split()[0] for ln in lines[3:6]] == ["1", "2", "3"]
    saved = CollabFit.load(model)
    assert f"valid RMSE {saved.valid_rmse_:.4f}" in out and model.is_file()
    assert float(lines[5].split()[2]) == pytest.approx(saved.valid_rmse_, abs=1e-4)
    assert lines[6:8] == ["model dotbias: 5 factors, y_range 0 to 5.5",
                          "adam lr 0.005 annealed, 3 epochs, batches of 128, wd 0.1 (biases 0.01, l2)"]

    f = small_ratings.frame
    user = int(f["user"].value_counts().index[-1])  # the sample user with fewest ratings: most unseen movies
    code, out, err = run(capsys, "recommend", "--model", str(model), "--user", str(user), "-n", "4")
    assert code == 0, err
    rows = out.splitlines()[2:]
    assert len(rows) == 4
    seen = set(f.loc[f["user"] == user, "item"])
    movies = [int(r.split()[0]) for r in rows]
    assert not seen & set(movies)
    assert small_ratings.title(movies[0]) in rows[0]
    preds = [float(r.split()[1]) for r in rows]
    assert preds == sorted(preds, reverse=True)

    code, out, err = run(capsys, "recommend", "--model", str(model), "--user", str(user), "-n", "4", "--json")
    got = json.loads(out)
    assert [r["movie"] for r in got["recommendations"]] == movies

    code, out, err = run(capsys, "recommend", "--model", str(model), "--movie", str(movies[0]), "-n", "3")
    assert code == 0 and len(out.splitlines()) == 5

    code, out, err = run(capsys, "explain", "--model", str(model), "-n", "3", "--axes", "2")
    assert code == 0, err
    assert "highest movie bias" in out and "lowest movie bias" in out
    assert "principal axis 1" in out and "principal axis 2" in out and "principal axis 3" not in out
    code, out, err = run(capsys, "explain", "--model", str(model), "-n", "3", "--json")
    got = json.loads(out)
    assert len(got["best"]) == 3 and len(got["axes"]) == 3
    assert got["best"][0]["bias"] >= got["best"][-1]["bias"]


def test_fit_json_is_one_object(capsys, sample_dir):
    code, out, err = run(capsys, "fit", str(sample_dir), "--factors", "3", "--epochs", "2", "--json",
                         "--optimizer", "adamw", "--batch-size", "full")
    assert code == 0, err
    got = json.loads(out)  # the whole stdout is one JSON object
    assert got["n_ratings"] == 559 and got["epochs"] == 2 and got["device"] == "cpu"
    assert got["settings"]["batch_size"] is None and got["settings"]["wd_mode"] == "decoupled"
    assert len(got["trace"]) == 2 and got["valid_rmse"] == got["trace"][-1]["valid_rmse"]
    assert got["fit_seconds"] > 0


def test_fit_without_validation_set(capsys, sample_dir):
    code, out, err = run(capsys, "fit", str(sample_dir), "--factors", "3", "--epochs", "2", "--valid-pct", "0")
    assert code == 0, err
    assert "559 train / 0 valid" in out and "valid RMSE n/a (no validation set)" in out
    code, out, err = run(capsys, "fit", str(sample_dir), "--factors", "3", "--epochs", "1", "--valid-pct", "0", "--json")
    assert json.loads(out)["valid_rmse"] is None


def test_nn_and_dot_models_from_the_cli(capsys, tmp_path, sample_dir):
    for name in ("nn", "dot"):
        model = tmp_path / f"{name}.pt"
        code, out, err = run(capsys, "fit", str(sample_dir), "--model", name, "--factors", "4", "--epochs", "2",
                             "--save", str(model))
        assert code == 0, err
        code, out, err = run(capsys, "explain", "--model", str(model), "-n", "2")
        assert code == 0, err
        assert "has no movie biases" in out and "principal axis 1" in out


def test_the_lessons_flags_reach_the_saved_model(capsys, tmp_path, sample_dir):
    """The lesson's net and schedule from the command line: every flag lands in the saved model's settings."""
    model = tmp_path / "nn.pt"
    code, out, err = run(capsys, "fit", str(sample_dir), "--model", "nn", "--hidden", "8", "4", "--dropout", "0.1",
                         "0.3", "--user-factors", "3", "--item-factors", "5", "--init", "kaiming", "--schedule", "sgdr",
                         "--cycle-mult", "2", "--epochs", "3", "--y-range", "0.5", "5.5", "--save", str(model))
    assert code == 0, err
    s = CollabFit.load(model).settings_
    assert (s["hidden"], s["dropout"], s["user_factors"], s["item_factors"]) == ((8, 4), (0.1, 0.3), 3, 5)
    assert (s["init"], s["schedule"], s["cycle_len"], s["cycle_mult"], s["y_range"]) == ("kaiming", "sgdr", 1, 2,
                                                                                          (0.5, 5.5))
    assert ("model nn: 3 user / 5 movie factors, hidden 8 4, dropout 0.1 0.3\n"
            "  y_range 0.5 to 5.5, He (kaiming) start\n"
            "adam lr 0.005 sgdr (cycle_len 1, cycle_mult 2), 3 epochs, batches of 1024\n"
            "  wd 0.1 (biases 0.01, l2)\n") in out  # whole parts on lines of 80 columns at most


def test_fit_without_epochs_runs_the_rule(capsys, sample_dir):
    """No --epochs: the rule of the training set's size (447 ratings, one step an epoch: MAX_EPOCHS), checked against
    the time budget first; under sgdr the cycle end nearest it (cycles of 1, 2, 4, 8, 16 epochs end at 31)."""
    for extra, epochs in (([], MAX_EPOCHS), (["--schedule", "sgdr", "--cycle-mult", "2"], 31)):
        code, out, err = run(capsys, "fit", str(sample_dir), "--factors", "2", "--json", *extra)
        assert code == 0, err
        got = json.loads(out)
        assert got["epochs"] == epochs and len(got["trace"]) == epochs


def test_subprocess_end_to_end(tmp_path, sample_dir):
    model = tmp_path / "m.pt"
    proc = subprocess.run([sys.executable, "-m", "xlcollab", "fit", str(sample_dir), "--factors", "3", "--epochs", "1",
                           "--json", "--save", str(model)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["saved"] == str(model)
    proc = subprocess.run([sys.executable, "-m", "xlcollab", "recommend", "--model", str(model), "--user", "999999"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["xlcollab: error: unknown user 999999: not in the ratings this model "
                                                "was fitted on"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_FILES = {
    "missing column": ("userId,movieId,score_x\n1,2,3\n", "column"),
    "non-numeric rating": ("userId,movieId,rating\n1,2,3.5\n1,3,good\n", "row 3"),
    "NaN rating": ("userId,movieId,rating\n1,2,3.5\n1,3,\n", "row 3"),
    "duplicate pair": ("userId,movieId,rating\n1,2,3.5\n2,2,4\n1,2,1\n", "row"),
    "empty file": ("", "empty"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_ratings_files(capsys, tmp_path, case):
    text, needle = BAD_FILES[case]
    path = _write(tmp_path / "bad.csv", text)
    code, out, err = run(capsys, "fit", str(path), "--epochs", "1")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("xlcollab: error: ")
    assert "bad.csv" in err and needle in err.lower()
    assert "Traceback" not in err


@pytest.fixture
def saved_model(tmp_path, small_ratings) -> Path:
    return CollabFit(n_factors=3, epochs=1).fit(small_ratings).save(tmp_path / "m.pt")


@pytest.mark.parametrize("argv,needle", [
    (["fit", "{tmp}/nope.csv"], "nope.csv"),
    (["fit", "--epochs", "-3"], "epochs must be a whole number >= 1, found -3"),
    (["fit", "--factors", "0"], "n_factors must be a whole number >= 1, found 0"),
    (["fit", "--lr", "-1"], "lr must be a number > 0, found -1.0"),
    (["fit", "--wd", "-1"], "wd must be a number >= 0, found -1.0"),
    (["fit", "--valid-pct", "1.5"], "valid_pct must be a number in [0, 1), found 1.5"),
    (["fit", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N, found 'tpu'"),
    (["fit", "--batch-size", "-5"], "batch_size must be a whole number >= 1, found -5"),
    (["fit", "--y-range", "5", "1"], "y_range must be 'auto', None or (low, high) with low < high, found (5.0, 1.0)"),
    (["fit", "--momentum", "1"], "momentum must be a number in [0, 1), found 1.0"),
    (["fit", "--user-factors", "3", "--item-factors", "5"], "model dotbias takes the dot product of a user's and a "
                                                            "movie's factors, so both need the same size"),
    (["fit", "--schedule", "sgdr", "--cycle-mult", "2", "--epochs", "4"], "epochs 4 ends inside an SGDR cycle"),
    (["fit", "--dropout", "0.5", "1"], "dropout must be a number in [0, 1), found 1.0"),
    (["fit", "--hidden", "0"], "hidden must be a whole number >= 1, found 0"),
    (["recommend", "--model", "{model}", "--user", "999999"], "unknown user 999999"),
    (["recommend", "--model", "{model}", "--user", "abc"], "unknown user abc"),
    (["recommend", "--model", "{model}", "--movie", "424242"], "unknown movie 424242"),
    (["recommend", "--model", "{model}", "--user", "1", "-n", "0"], "-n must be a positive integer, got 0"),
    (["recommend", "--model", "{tmp}/missing.pt", "--user", "1"], "missing.pt does not exist"),
    (["recommend", "--model", "{tmp}/junk.pt", "--user", "1"], "junk.pt is not an xlcollab model file"),
    (["explain", "--model", "{tmp}/junk.pt"], "junk.pt is not an xlcollab model file"),
    (["explain", "--model", "{model}", "--axes", "0"], "--axes must be a positive integer, got 0"),
])
def test_bad_input_is_one_line(capsys, tmp_path, saved_model, argv, needle):
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    argv = [a.format(tmp=tmp_path, model=saved_model) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("xlcollab: error: ")
    assert needle in err


@pytest.mark.parametrize("argv", [["fit", "--epochs", "x"], ["fit", "--batch-size", "big"], ["fit", "--model", "svd"],
                                  ["recommend", "--model", "m.pt"], ["fit", "--y-range", "1", "2", "3"],
                                  ["fit", "--y-range", "1,5"], ["fit", "--hidden", "ten"], ["fit", "--dropout", "0.1"]])
def test_unparsable_flags_exit_2_without_traceback(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err


def test_a_reader_that_goes_away_stops_the_command_quietly(tmp_path):
    """`xlcollab fit --json | head -c 0`: the pipe closes before the JSON is printed; no traceback, no error line."""
    proc = subprocess.Popen([sys.executable, "-m", "xlcollab", "fit", "--epochs", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before the fit prints
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == ""
