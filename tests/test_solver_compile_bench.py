"""The compiler benchmark runs end to end at a tiny size and prints its table (no time is asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_compile_benchmark_prints_its_table() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_compile.py"), "--rows", "60",
                           "--repeats", "2", "--no-formulas"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|") for line in done.stdout.splitlines() if line.startswith("| ")}
    dotprod = rows["dotprod tab (225 predictions)"]
    assert dotprod[2].strip() == "150" and dotprod[3].strip() == "226 (2)"
    long = rows["long-form tab, 60 rows"]
    assert float(long[5]) > 0 and "load average" in done.stdout
