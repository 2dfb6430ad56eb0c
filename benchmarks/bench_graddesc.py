"""Benchmark of the graddesc workbook: epochs each optimizer needs to reach (2, 30), and the speed of `run`.

    .venv/bin/python benchmarks/bench_graddesc.py [--horizon 10000] [--repeats 3]

Prints two Markdown tables for the README: (1) for every optimizer tab with its defaults, from
(a, b) = (1, 1), the first epoch whose end-of-epoch (a, b) lies within 1 % of (2, 30) (|a-2| <= 0.02
and |b-30| <= 0.3), the epoch from which it stays within 1 % up to the horizon, and (a, b) at the
horizon; (2) wall time of `xlcollab run graddesc.xlsx --sheet all --epochs 1000` as a fresh process
on a freshly built workbook (process start, imports, reading, 232,000 steps, writing 8,000 trace rows).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xlcollab.sheets import graddesc as gd


def within(a: float, b: float) -> bool:
    return abs(a - gd.TRUE_A) <= 0.01 * gd.TRUE_A and abs(b - gd.TRUE_B) <= 0.01 * gd.TRUE_B


def convergence(horizon: int) -> list[dict]:
    xs, ys = gd.make_data()
    rows = []
    for sheet, spec in gd.SPECS.items():
        start = gd.Start.fresh(spec, data=(xs, ys))
        clock = time.perf_counter()
        trace = gd.simulate(spec, start, xs, ys, horizon)
        seconds = time.perf_counter() - clock
        ok = [within(r[1], r[2]) for r in trace]
        first = ok.index(True) + 1 if True in ok else None
        stays = None
        if ok[-1]:
            stays = len(ok) - next(i for i, v in enumerate(reversed(ok)) if not v) + 1 if False in ok else 1
        settings = ", ".join(f"{inp.name} {inp.default:g}" for inp in spec.inputs if not inp.name.startswith("start"))
        rows.append({"sheet": sheet, "settings": settings, "first": first, "stays": stays, "a": start.a, "b": start.b,
                     "loss1": trace[0][3], "loss": trace[-1][3], "us_per_step": seconds / (horizon * len(xs)) * 1e6})
    return rows


def time_run(repeats: int, epochs: int = 1000) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + sys of the child: what other jobs on the machine cannot inflate)."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            path = gd.build_workbook(Path(tmp) / f"graddesc{i}.xlsx")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            clock = time.perf_counter()
            subprocess.run([sys.executable, "-m", "xlcollab", "run", str(path), "--sheet", "all", "--epochs", str(epochs)],
                           check=True, capture_output=True)
            walls.append(time.perf_counter() - clock)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=10_000, help="epochs to simulate per optimizer (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the command (default 3)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start\n")
    print(f"Epochs to come within 1 % of (a, b) = (2, 30) from (1, 1), {len(gd.make_data()[0])} points, "
          "one step per point, each tab's defaults:\n")
    print("| tab | defaults | first within 1 % | within 1 % from | a, b after "
          f"{args.horizon:,} | loss epoch 1 → {args.horizon:,} | µs/step |")
    print("|---|---|---:|---:|---|---|---:|")
    never = f"not within {args.horizon:,}"
    for r in convergence(args.horizon):
        print(f"| {r['sheet']} | {r['settings']} | {r['first'] or never} | {r['stays'] or 'leaves again'} "
              f"| {r['a']:.4f}, {r['b']:.4f} | {r['loss1']:.4g} → {r['loss']:.3g} | {r['us_per_step']:.2f} |")
    walls, cpus = time_run(args.repeats)
    print(f"\n`xlcollab run graddesc.xlsx --sheet all --epochs 1000` ({len(gd.SPECS)} tabs x 1,000 epochs x 29 steps, "
          f"fresh process and workbook each time, load average {os.getloadavg()[0]:.2f} after):\n")
    print("| runs | wall s: median (min-max) | CPU s (user+sys): median (min-max) |")
    print("|---:|---|---|")
    print(f"| {len(walls)} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) "
          f"| {statistics.median(cpus):.2f} ({min(cpus):.2f}-{max(cpus):.2f}) |")


if __name__ == "__main__":
    main()
