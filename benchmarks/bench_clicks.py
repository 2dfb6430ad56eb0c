"""Benchmark of a button click in one warm Python, on the file backend: the floor under a click in Excel.

    .venv/bin/python benchmarks/bench_clicks.py [--clicks 5]

With the add-in's "Use UDF Server" on, Excel runs every click in one persistent Python (xlwings' COM server): the
first click pays for starting Python and importing xlcollab and torch, later ones only for the macro. This runs the
same macros in one process, as the COM server would, on freshly built workbook files (FileBook: read, compute,
atomic write of the file), and prints a Markdown table: the import, the first click and the median of the later
ones per macro. Excel adds its own COM and recalculation time on top; these numbers are the floor.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def in_a_fresh_process(clicks: int) -> list[tuple[str, float, float]]:
    """Run the measurement in a new Python so that the import is cold, as at Excel's first click."""
    done = subprocess.run([sys.executable, __file__, "--inside", "--clicks", str(clicks)], capture_output=True,
                          text=True, check=True)
    rows = []
    for line in done.stdout.splitlines():
        name, first, later = line.split("\t")
        rows.append((name, float(first), float(later)))
    return rows


def measure(clicks: int) -> None:
    clock = time.perf_counter()
    import xlcollab.excel as x  # what the first click's `import xlcollab.excel as x` costs
    from xlcollab.book.filebook import FileBook
    from xlcollab.sheets import collab, graddesc
    imported = time.perf_counter() - clock
    with tempfile.TemporaryDirectory() as tmp:
        g = graddesc.build_workbook(Path(tmp) / "graddesc.xlsx")
        c = collab.build_workbook(Path(tmp) / "collab_filter.xlsx")
        print(f"import xlcollab.excel\t{imported:.4f}\t{imported:.4f}")
        for name, click in (("Run (adam, 5 epochs)", lambda: x.run(FileBook(g), "adam")),
                            ("Reset (adam)", lambda: x.reset(FileBook(g), "adam")),
                            ("Solve (dotprod)", lambda: x.solve(FileBook(c), "dotprod"))):
            times = []
            for _ in range(clicks):
                start = time.perf_counter()
                click()
                times.append(time.perf_counter() - start)
            print(f"{name}\t{times[0]:.4f}\t{statistics.median(times[1:]) if len(times) > 1 else times[0]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=5, help="clicks per macro (default 5)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        measure(args.clicks)
        return
    rows = in_a_fresh_process(args.clicks)
    print(f"One warm Python, file backend, {args.clicks} clicks per macro (seconds):\n")
    print("| step | first | later (median) |\n|---|---:|---:|")
    for name, first, later in rows:
        print(f"| {name} | {first:.3f} | {later:.3f} |")


if __name__ == "__main__":
    main()
