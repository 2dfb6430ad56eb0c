"""Benchmark: this checkout's `solve` against an earlier commit's, on collab_filter tabs, in alternating processes.

Issue 9's speed target, "the whole solve of a dotprod tab no slower than today's dedicated path", compares the generic
Solver path with the code before it (by default commit 9097c63^, the last one with the hand-written per-tab models).
The commit is checked out into a temporary git worktree and each side builds its own workbook with its own
`xlcollab build`; then rounds alternate the two sides, each measurement a fresh process of this venv's Python (the
same torch and numpy for both):

- warm: `solve_book(FileBook(book), [tab])` `--runs` times after 2 warm-ups in one process: the fastest CPU time
  (least disturbed by other load) and the median;
- cli: a whole `python -m xlcollab solve BOOK --sheet TAB --out x.xlsx` process (imports, read, solve, write): wall
  seconds, each side's package byte-compiled first (as an installed package is).

Alternating cancels this machine's slow drifts in speed; the table gives the median over rounds of each figure.

    .venv/bin/python benchmarks/bench_vs_rev.py [--rev 9097c63^] [--tabs dotprod,bias] [--rounds 5] [--runs 15]
                                                [--cli-rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import load, table

REPO = Path(__file__).resolve().parents[1]
DEDICATED = "9097c63^"  # the last commit whose collab tabs were solved by hand-written torch models

WARM = """
import statistics, sys, time, torch
torch.set_num_threads(1)
from xlcollab.sheets.collab import solve_book
try:
    from xlcollab.book.filebook import FileBook
except ImportError:  # before the package was split into layers
    from xlcollab.filebook import FileBook
src, tab, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cpu = []
for i in range(n + 2):
    t = time.process_time()
    rmse = solve_book(FileBook(src), [tab])[tab]["final_rmse"]
    if i >= 2:
        cpu.append(time.process_time() - t)
print(min(cpu), statistics.median(cpu), rmse)
"""


def run(tree: Path, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """This venv's Python on `tree`'s package (its folder first on the path), in `tree`; an error names the side."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{tree}: {' '.join(args[:3])} failed:\n{done.stderr[-2000:]}")
    return done


def build(tree: Path, out: Path) -> Path:
    run(tree, ["-m", "xlcollab", "build", "--out", str(out), "--no-xlsm"])
    return out / "collab_filter.xlsx"


def byte_compile(tree: Path) -> None:
    """Bytecode for the tree's package, as pip writes it when it installs one: each process then reads .pyc files,
    not source, whatever PYTHONDONTWRITEBYTECODE says (set on some machines, where every process would otherwise
    compile the source of each module changed since its .pyc was written)."""
    run(tree, ["-m", "compileall", "-q", "xlcollab"])


def warm(tree: Path, book: Path, tab: str, runs: int) -> tuple[float, float, float]:
    """(fastest CPU s, median CPU s, RMSE) of `runs` warm solves of `tab` in one process."""
    fastest, median, rmse = run(tree, ["-c", WARM, str(book), tab, str(runs)]).stdout.split()
    return float(fastest), float(median), float(rmse)


def cli(tree: Path, book: Path, tab: str, out: Path) -> float:
    """Wall seconds of one whole `xlcollab solve` process."""
    start = time.perf_counter()
    run(tree, ["-m", "xlcollab", "solve", str(book), "--sheet", tab, "--out", str(out)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default=DEDICATED, help=f"the commit to compare with (default {DEDICATED})")
    parser.add_argument("--tabs", default="dotprod,bias", help="collab_filter tabs, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the warm measurement")
    parser.add_argument("--runs", type=int, default=15, help="warm solves per process (after 2 warm-ups)")
    parser.add_argument("--cli-rounds", type=int, default=5, help="alternating rounds of whole solve processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sides = {args.rev: work / "rev", "this checkout": REPO}
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(sides[args.rev]), args.rev],
                       check=True, capture_output=True)
        try:
            books = {name: build(tree, work / f"book{i}") for i, (name, tree) in enumerate(sides.items())}
            for tree in sides.values():
                byte_compile(tree)
            rows = []
            for tab in args.tabs.split(","):
                got: dict[str, dict[str, list[float]]] = {name: {"fast": [], "median": [], "cli": []} for name in sides}
                rmse = {}
                for _ in range(args.rounds):
                    for name, tree in sides.items():
                        fastest, median, rmse[name] = warm(tree, books[name], tab, args.runs)
                        got[name]["fast"].append(fastest)
                        got[name]["median"].append(median)
                for _ in range(args.cli_rounds):
                    for name, tree in sides.items():
                        got[name]["cli"].append(cli(tree, books[name], tab, work / "solved.xlsx"))
                m = {name: {k: statistics.median(v) for k, v in g.items()} for name, g in got.items()}
                old, new = m[args.rev], m["this checkout"]
                rows.append({"tab": tab, "fastest CPU s, rev": f"{old['fast']:.4f}",
                             "fastest CPU s, here": f"{new['fast']:.4f}",
                             "here / rev": f"{new['fast'] / old['fast']:.2f}",
                             "median CPU s, rev / here": f"{old['median']:.4f} / {new['median']:.4f}",
                             "process wall s, rev / here": f"{old['cli']:.2f} / {new['cli']:.2f}",
                             "process here / rev": f"{new['cli'] / old['cli']:.2f}",
                             "RMSE rev / here": f"{rmse[args.rev]:.6f} / {rmse['this checkout']:.6f}"})
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(sides[args.rev])],
                           capture_output=True)
    print(f"\nthis checkout against {args.rev}: warm solve_book CPU s (the fastest of {args.runs} after 2 warm-ups, "
          f"median over {args.rounds} alternating rounds; one torch thread) and whole `xlcollab solve` processes "
          f"(wall s, median over {args.cli_rounds} alternating rounds); {os.cpu_count()} CPUs, load {load()} after\n")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
