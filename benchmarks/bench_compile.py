"""Benchmark of the formula compiler: compile time and evaluations per second (forward + backward) of the
compiled torch function, beside evaluating the same workbook with the `formulas` package (forward only).

    .venv/bin/python benchmarks/bench_compile.py [--rows 10000] [--repeats 50] [--formulas-rows 300]
                                                 [--no-formulas] [--threads 1]

Workbooks: the bundled collab_filter `dotprod` tab (225 predictions, 150 variables; alone in a copy, so
`formulas` reads one tab), and a generated long-form tab (`tests/solver_workbooks.long_form`: one rating per
row, INDEX/MATCH look-ups of 5 user and 5 item factors, SUMPRODUCT, squared error, RMSE) of --rows rows.
`formulas` (EUPL, the `bench` extra) takes minutes per evaluation on 10,000 rows, so it runs on a
--formulas-rows long-form tab instead (same layout, users and items scaled down; the table says so). Targets (issue 9): at most 2 ms per evaluation on
dotprod and 50 ms on 10,000 rows. Timings depend on the machine's load: the table prints it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from openpyxl import load_workbook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from solver_workbooks import long_form, open_book  # noqa: E402
from xlcollab.solver.compile import compile_cells  # noqa: E402
from xlcollab.solver.refs import a1, parse_cells  # noqa: E402


def model_of(path: Path, sheet: str) -> tuple[list, list]:
    """The sheet's Solver model as stored: variable cells (solver_adj) and objective (solver_opt)."""
    names = open_book(path).names(sheet)
    return parse_cells(names["solver_adj"], sheet), parse_cells(names["solver_opt"], sheet)


def ours(path: Path, sheet: str, repeats: int, batch: int) -> dict:
    variables, objective = model_of(path, sheet)
    clock = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compile_cells(open_book(path), variables, [objective])
    compile_s = time.perf_counter() - clock

    def step(x0: torch.Tensor) -> None:
        x = x0.clone().requires_grad_(True)
        comp(x)[0].sum().backward()
    for _ in range(3):
        step(comp.x0)
    clock = time.perf_counter()
    for _ in range(repeats):
        step(comp.x0)
    per_eval = (time.perf_counter() - clock) / repeats
    xs = comp.x0 + 0.01 * torch.randn(batch, len(variables), dtype=torch.float64)
    step(xs)
    clock = time.perf_counter()
    for _ in range(max(1, repeats // 5)):
        step(xs)
    per_batch = (time.perf_counter() - clock) / max(1, repeats // 5)
    cells = sum(len(g.rows) * g.extent[0] * g.extent[1] for g in comp._program.sources)
    return {"variables": len(variables), "cells": cells, "groups": len(comp._program.sources),
            "compile_s": compile_s, "ms": per_eval * 1e3, "batch_points_s": batch / per_batch,
            "value": float(comp(comp.x0)[0][0])}


def with_formulas(path: Path, sheet: str, repeats: int) -> dict:
    """Load, compile and evaluate with the `formulas` package (forward only: it has no gradients)."""
    import formulas
    variables, objective = model_of(path, sheet)
    book = f"'[{path.name}]{sheet.upper()}'!"
    clock = time.perf_counter()
    model = formulas.ExcelModel().loads(str(path)).finish()
    func = model.compile(inputs=[book + a1(r, c) for _, r, c in variables], outputs=[book + a1(*objective[0][1:])])
    load_s = time.perf_counter() - clock
    x = [float(v) for v in compile_cells(open_book(path), variables, []).x0]
    value = func(*x)
    clock = time.perf_counter()
    for _ in range(repeats):
        func(*x)
    per_eval = (time.perf_counter() - clock) / repeats
    return {"load_s": load_s, "ms": per_eval * 1e3, "value": float(value.value[0][0])}


def single_tab(src: Path, sheet: str, out: Path) -> Path:
    wb = load_workbook(src)
    for name in wb.sheetnames:
        if name != sheet:
            del wb[name]
    wb.save(out)
    return out


def make_long(n_rows: int, path: Path) -> Path:
    """A long-form tab of n_rows ratings by n/20 users and n/10 items (at most 200 and 300), 5 factors each."""
    long_form(n_rows, max(2, min(200, n_rows // 20)), max(2, min(300, n_rows // 10)), 5).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="rows of the long-form tab")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64, help="points per call in the batched column")
    ap.add_argument("--formulas-rows", type=int, default=300, help="rows of the long-form copy `formulas` evaluates")
    ap.add_argument("--no-formulas", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: sheet-sized tensors lose more to thread hand-offs than they gain, "
                         "most of all on a loaded machine; 0 keeps torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    dotprod = single_tab(REPO / "workbooks" / "collab_filter.xlsx", "dotprod", tmp / "dotprod.xlsx")
    long_path = make_long(args.rows, tmp / "long.xlsx")
    rows = [("dotprod tab (225 predictions)", dotprod, "dotprod", dotprod),
            (f"long-form tab, {args.rows:,} rows", long_path, "long", long_path)]
    if not args.no_formulas and args.formulas_rows < args.rows:
        n = args.formulas_rows
        rows[1] = rows[1][:3] + ((make_long(n, tmp / "long_small.xlsx"), n),)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| workbook | variables | formula cells on the path (groups) | compile s | forward+backward ms | "
          f"evaluations / s | points / s in batches of {args.batch} | `formulas`: load+compile s | "
          "`formulas`: ms / evaluation (forward) | evaluations / s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    checks: list[str] = []
    for label, path, sheet, other in rows:
        r = ours(path, sheet, args.repeats, args.batch)
        f_cols = "skipped | skipped | skipped"
        if not args.no_formulas:
            try:
                f_path, note = (other, "") if isinstance(other, Path) else (other[0], f" ({other[1]:,} rows)")
                f = with_formulas(f_path, sheet, max(1, args.repeats // 25))
                f_cols = f"{f['load_s']:.1f}{note} | {f['ms']:.1f}{note} | {1e3 / f['ms']:.1f}"
                if not note:
                    checks.append(f"{label}: objective {r['value']!r} compiled, {f['value']!r} by `formulas`")
            except ImportError:
                f_cols = "not installed | not installed | not installed"
        print(f"| {label} | {r['variables']} | {r['cells']:,} ({r['groups']}) | {r['compile_s']:.2f} | {r['ms']:.2f} | "
              f"{1e3 / r['ms']:,.0f} | {r['batch_points_s']:,.0f} | {f_cols} |")
    print("\ntargets: dotprod <= 2 ms, 10,000 rows <= 50 ms per forward+backward evaluation")
    for line in checks:
        print(line)


if __name__ == "__main__":
    main()
