"""The benchmark scripts still run end to end (tiny sizes; they assert nothing about time, only that each
path produces its row): the GPU section in particular can only be measured on a lent GPU, so it must not rot."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
