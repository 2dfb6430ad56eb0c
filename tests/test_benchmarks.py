"""The benchmark scripts still run end to end (tiny sizes; they assert nothing about time, only that each
path produces its row): the GPU section in particular can only be measured on a lent GPU, so it must not rot."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def rows_of(stdout: str) -> dict[str, list[str]]:
    """A printed markdown table's rows by their first cell."""
    rows = [line.split("|")[1:-1] for line in stdout.splitlines() if line.startswith("| ") and "---" not in line]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}


def test_gpu_speed_section_runs_on_the_cpu_at_tiny_scale() -> None:
    """bench_fit --gpu-only is bench_gpu's speed section; on a CPU the fused rows run in Triton's interpreter
    (torch.compile's row is left out: compiling takes a minute here, and it is (a)'s loop under torch.compile)."""
    pytest.importorskip("triton")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_fit.py"), "--gpu-only", "--scale", "0.0003",
                           "--gpu-epochs", "1", "--device", "cpu"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TRITON_INTERPRET": "1", "BENCH_GPU_PATHS": "acdefg"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(done.stdout)
    for key in "acdefg":
        row = next(v for k, v in rows.items() if k.startswith(f"({key})"))
        assert float(row[0]) > 0, (key, row)
    assert "e vs d:" in done.stdout and "g vs f:" in done.stdout


def test_gpu_accuracy_and_crossover_sections_run_on_the_cpu() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--sections", "accuracy,crossover",
                           "--accuracy-scale", "0.0002", "--crossover-sizes", "3000", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(done.stdout)
    plain = rows["1,000"]  # a fifth of 5,000: the plain path (the fused one needs CUDA or the interpreter)
    assert plain[0] == "plain" and 0.5 < float(plain[1]) < 1.5 and float(plain[2]) > 0.5  # valid RMSE, noise floor
    assert float(rows["3,000"][0]) > 0  # the CPU's whole-fit seconds


def test_graddesc_benchmark_prints_both_tables() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_graddesc.py"), "--horizon", "50",
                           "--repeats", "1"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    for tab in ("basic SGD", "momentum", "adagrad", "rmsprop", "adam", "adamw", "l2", "adam_ann"):
        assert f"| {tab} |" in done.stdout
    assert "--sheet all --epochs 1000" in done.stdout


@pytest.mark.libreoffice
def test_collab_benchmark_runs_ours_and_a_libreoffice_solver() -> None:
    from xlcollab.book import libreoffice, unobook
    if not (libreoffice.available() and unobook.available()):
        pytest.skip("LibreOffice or python3-uno not installed")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_collab.py"), "--solvers", "pso",
                           "--timeout", "2", "--bounds", "0,1.5"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = next(line for line in done.stdout.splitlines() if line.startswith("xlcollab solve, whole process"))
    assert float(ours.split()[4]) < 0.34  # the RMSE column: L-BFGS lands at 0.3344 on the seed-42 sheet
    assert "LibreOffice Swarm: Particle Swarm" in done.stdout


@pytest.mark.libreoffice
def test_solver_benchmark_puts_ours_beside_libreoffices_solvers() -> None:
    from xlcollab.book import libreoffice, unobook
    if not (libreoffice.available() and unobook.available()):
        pytest.skip("LibreOffice or python3-uno not installed")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_solver.py"), "--cases",
                           "lp_max_wyndor,rosenbrock", "--solvers", "coinmp,de", "--timeout", "1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in done.stdout.splitlines()
            if line.startswith("| lp_max") or line.startswith("| rosenbrock")]
    assert [r[2] for r in rows] == ["xlcollab lp", "LibreOffice linear solver: CoinMP", "xlcollab grg",
                                    "LibreOffice Swarm: Differential Evolution"]
    assert float(rows[0][3]) == 36 and float(rows[2][3]) == pytest.approx(1.0, rel=1e-6)  # ours: the known optima


def test_fit_benchmark_table_has_holdout_ranking_and_cv_columns(tmp_path) -> None:
    from tests.test_evaluate import small_ratings

    csv = tmp_path / "ratings.csv"
    small_ratings(40, 30).frame.to_csv(csv, index=False)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_fit.py"), "--ratings", str(csv), "--runs",
                           "1", "--cv-folds", "2", "--skip-surprise", "--import-runs", "1", "--models", "bmf"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| xlcollab fit")]
    assert [r[0].split(" (")[0].strip() for r in rows] == ["xlcollab fit defaults"] * 2 + ["xlcollab fit --model bmf"]
    assert rows[1][0].strip().endswith("the model alone")  # --session-gap 0 beside the defaults
    for r in rows:
        assert 0 < float(r[1]) < 2  # valid RMSE
        assert len(r[2].split("/")) == 3 and "±" in r[5] and "±" in r[6]


def test_defaults_study_runs_small() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "study_defaults.py"), "--sets", "small-ratings40",
                           "--only", "1", "--folds", "2", "--cache", ""], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    # 40 % of the 80,668 ratings of ml-latest-small's seed-42 training part: its validation part never takes part
    assert "| candidate | small-ratings40 | mean excess |" in done.stdout and "small-ratings40: 32," in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "candidate" not in line]
    assert rows and float(rows[0].split("|")[2]) > 0  # the one candidate's CV RMSE on the set


def test_session_study_ranks_every_gap_and_shrink() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "study_defaults.py"), "--sessions", "--sets",
                           "small-ratings40", "--folds", "2"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ") and "cand" not in line]
    labels = [r[0].strip() for r in rows]
    assert len(labels) == 41 and "no session effects" in labels  # 8 gaps x 5 shrinks, and none
    rmse = {r[0].strip(): float(r[1]) for r in rows}
    assert rmse["sessions: gap 2 min, shrink 1"] < rmse["no session effects"]


def test_vs_rev_benchmark_compares_two_checkouts_in_alternating_processes() -> None:
    """bench_vs_rev against HEAD itself (a worktree of the same commit): each side builds its workbook, solves it warm
    and as a whole process, and both land on the same RMSE."""
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout: nothing to check out a second side from")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_vs_rev.py"), "--rev", "HEAD", "--tabs",
                           "dotprod", "--rounds", "1", "--runs", "1", "--cli-rounds", "1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    row = rows_of(done.stdout)["dotprod"]
    assert all(float(v) > 0 for v in row[:3])
    old, new = row[-1].split(" / ")
    assert float(old) == float(new) == pytest.approx(0.3344, abs=1e-4)
    listed = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert "/rev " not in listed  # the temporary worktree is gone
