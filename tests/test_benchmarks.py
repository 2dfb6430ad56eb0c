"""The benchmark scripts still run end to end (tiny sizes; they assert nothing about time, only that each
path produces its row): the GPU section in particular can only be measured on a lent GPU, so it must not rot."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_gpu_section_runs_on_the_cpu_at_tiny_scale() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_fit.py"), "--gpu-only", "--scale", "0.0005",
                           "--gpu-epochs", "1", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "s / epoch" not in line]
    paths = [row.split("|")[1].strip() for row in rows]
    assert any(p.startswith("plain PyTorch loop") for p in paths)
    assert sum(p.startswith("xlcollab minibatch") for p in paths) == 2
    assert any(p.startswith("xlcollab full batch") for p in paths)
    for row in rows:
        seconds = float(row.split("|")[2])
        assert seconds > 0


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
    assert [r[0].split(" (")[0].strip() for r in rows] == ["xlcollab fit defaults", "xlcollab fit --model bmf"]
    for r in rows:
        assert 0 < float(r[1]) < 2  # valid RMSE
        assert len(r[2].split("/")) == 3 and "±" in r[5] and "±" in r[6]


def test_defaults_study_runs_small() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "study_defaults.py"), "--sets", "small-ratings40",
                           "--only", "1", "--folds", "2", "--cache", ""], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| candidate | small-ratings40 | mean excess |" in done.stdout and "small-ratings40: 40," in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "candidate" not in line]
    assert rows and float(rows[0].split("|")[2]) > 0  # the one candidate's CV RMSE on the set
