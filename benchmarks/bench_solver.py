"""Benchmark: `xlcollab solve` beside LibreOffice's own solvers on the generated acceptance workbooks.

Each workbook of tests/test_solver_workbooks.py that has an optimum (not the refusals) is solved by ours (in
process: read the stored model, compile, solve, buffer the write-back) and by LibreOffice over UNO on the same
stored model: its linear solver (CoinMP, else lp_solve) where our engine found the model linear, its swarm (DE)
and, when the NLPSolver extension is there (bench_collab.py's --nlpsolver-oxt), DEPS and SCO where it is not. The
objective is the cell as each computes it at its answer, beside the optimum known independently (closed form,
brute force or scipy). Seconds: ours from reading the file to the buffered write-back (compile included);
LibreOffice's, its solve() call on the loaded document. Models LibreOffice's solver API cannot state (value-of, no objective, a formula right side,
all-different) are solved by ours only.

    .venv/bin/python benchmarks/bench_solver.py [--timeout 10] [--cases lp_max_wyndor,rosenbrock] [--bounds -10,10]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from bench_collab import LO_SOLVERS, NLP_KEYS, Office, Task, libreoffice_solve, nlp_solve  # noqa: E402

LINEAR = ("coinmp", "lpsolve")
OPS = {"<=": "LESS_EQUAL", "=": "EQUAL", ">=": "GREATER_EQUAL", "int": "INTEGER", "bin": "BINARY"}


def ours(path: Path, sheet: str, args: tuple[str, ...]) -> dict:
    """Our solve of one workbook, in process (imports done): outcome as `solve --json` reports it."""
    from xlcollab.book.filebook import FileBook
    from xlcollab.cli import build_parser
    from xlcollab.cli.solve import solve

    ns = build_parser().parse_args(["solve", str(path), "--sheet", sheet, *args])
    start = time.perf_counter()
    result = solve(FileBook(path), ns)[sheet]
    return result | {"wall": time.perf_counter() - start}


def task_of(path: Path, sheet: str, bound: tuple[float, float] | None) -> Task | None:
    """The stored model as LibreOffice's solver takes it; None when its API cannot state it."""
    from xlcollab.book.filebook import FileBook
    from xlcollab.solver.model import checked, read_model

    book = FileBook(path)
    model = checked(book, read_model(book, sheet))
    cells = {c[0] for c in model.variables} | ({model.objective[0]} if model.objective else set())
    if model.objective is None or model.goal == "value" or cells != {sheet}:
        return None
    task = Task(sheet, model.objective[1:], [(r, c) for _, r, c in model.variables], maximize=model.goal == "max")
    for c in model.constraints:
        if c.rel == "dif" or (c.rhs is not None and not isinstance(c.rhs, (float, tuple))):
            return None
        rhs = c.rhs if isinstance(c.rhs, (tuple, type(None))) else [c.rhs] * len(c.lhs)
        rhs = rhs if rhs is None or len(rhs) == len(c.lhs) else list(rhs) * len(c.lhs)
        for i, (_, r, col) in enumerate(c.lhs):
            right = 0.0 if rhs is None else rhs[i] if not isinstance(rhs[i], tuple) else rhs[i][1:]
            task.constraints.append(((r, col), OPS[c.rel], right))
    if model.nonnegative:
        task.constraints += [(v, "GREATER_EQUAL", 0.0) for v in task.variables]
    if bound:
        task.constraints += [(v, op, b) for v in task.variables
                             for op, b in (("GREATER_EQUAL", bound[0]), ("LESS_EQUAL", bound[1]))]
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="time limit per LibreOffice run, seconds")
    parser.add_argument("--cases", help="comma list of workbooks (default: every one with an optimum)")
    parser.add_argument("--bounds", default="-10,10", help="LOW,HIGH on every variable for the swarm solvers")
    parser.add_argument("--solvers", default="coinmp,de,deps,sco", help="LibreOffice solvers to try")
    parser.add_argument("--nlpsolver-oxt", type=Path, default=os.environ.get("XLCOLLAB_NLPSOLVER_OXT") or None)
    args = parser.parse_args()
    import torch  # noqa: F401  imports done before timing ours

    from test_solver_workbooks import CASES

    names = args.cases.split(",") if args.cases else [n for n, c in CASES.items() if not c.refused]
    low, high = (float(v) for v in args.bounds.split(","))
    keys = [k for k in args.solvers.split(",") if k]
    work = Path(tempfile.mkdtemp(prefix="bench_solver_"))
    overlay = args.nlpsolver_oxt.parent / "program" if args.nlpsolver_oxt else None
    office = Office(work, overlay) if keys else None
    rows = []
    try:
        if office is not None and args.nlpsolver_oxt:
            office.add_extension(args.nlpsolver_oxt)
        for name in names:
            c = CASES[name]
            src = work / f"{name}.xlsx"
            c.build().save(src)
            mine = ours(shutil.copy(src, work / f"{name}_ours.xlsx"), c.sheet, c.args)
            rows.append((name, c.objective, "xlcollab " + mine["engine"], mine["objective_after"], mine["wall"]))
            linear = mine["engine"] == "lp"
            for key in keys:
                if (key in LINEAR) != linear or c.args or (key in NLP_KEYS and not args.nlpsolver_oxt):
                    continue  # DEPS/SCO only where the NLPSolver extension was given
                task = task_of(src, c.sheet, None if linear else (low, high))
                if task is None:
                    rows.append((name, c.objective, LO_SOLVERS[key][2], None, None))
                    continue
                run = nlp_solve if key in NLP_KEYS else libreoffice_solve
                r = run(office, src, work, key, args.timeout, task)
                if r.get("missing") and key == "coinmp":
                    r = libreoffice_solve(office, src, work, "lpsolve", args.timeout, task)
                rows.append((name, c.objective, r["label"], "(not installed)" if r.get("missing") else r.get("value"),
                             r.get("seconds")))
    finally:
        if office is not None:
            office.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ngenerated workbooks ({len(names)}); machine: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; LibreOffice time limit {args.timeout:g} s, swarm bounds {low:g}..{high:g}\n")
    print(f"| {'workbook':<34} | {'known optimum':>14} | {'solver':<44} | {'objective':>14} | {'seconds':>8} |")
    print(f"|{'-' * 36}|{'-' * 15}:|{'-' * 46}|{'-' * 15}:|{'-' * 9}:|")
    for name, known, label, value, seconds in rows:
        k = "-" if known is None else f"{known:.6g}"
        v = (value if isinstance(value, str) else "(cannot state it)" if value is None and seconds is None
             else "-" if value is None else f"{value:.6g}")
        s = "-" if seconds is None else f"{seconds:.3f}"
        print(f"| {name:<34} | {k:>14} | {label:<44} | {v:>14} | {s:>8} |")


if __name__ == "__main__":
    main()
