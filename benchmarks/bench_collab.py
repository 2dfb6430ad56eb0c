"""Benchmark: `xlcollab solve` vs LibreOffice's own nonlinear Solver on the dotprod tab of collab_filter.xlsx.

Both start from the same built workbook (seed 42) and minimise the same RMSE cell over the same 150
factor cells. LibreOffice's solver is driven over UNO (python3-uno): soffice headless, started by xlcollab's
one launcher (`xlcollab.book.unobook.Office`) with a private profile, the workbook loaded hidden,
`com.sun.star.comp.Calc.SwarmSolver` (Differential Evolution and Particle Swarm, LibreOffice's built-in
nonlinear solvers) and, when the Java NLPSolver extension is installed (Debian: libreoffice-nlpsolver),
DEPS and SCO too — each with a time limit. LibreOffice's RMSE is the objective cell as LibreOffice itself
computes it after writing its solution.

Ours is timed two ways: the solve itself in-process (read, fit, write, save; imports done, as in a warm
Excel session) and the whole `python -m xlcollab solve` process.

    .venv/bin/python benchmarks/bench_collab.py [--timeout 120] [--solvers de,pso,deps,sco] [--bounds -3,3]

The README's table of the collab_filter tabs ("RMSE after `solve`") is this script's too: `--markdown` builds
the workbooks fresh (`xlcollab build`), solves every tab with no flags (`xlcollab solve --json`) and prints the
table in the README's Markdown, to paste over the old one; tests/test_readme.py checks the README against it.

    .venv/bin/python benchmarks/bench_collab.py --markdown

DEPS and SCO without installing libreoffice-nlpsolver (on Debian it replaces libreoffice-*-nogui by the GUI
suite): `benchmarks/get_nlpsolver.sh DIR` downloads and unpacks it and the Java-UNO runtime (ure-java, the UNO
jars) into DIR, and

    .venv/bin/python benchmarks/bench_collab.py --nlpsolver-oxt DIR/nlpsolver.oxt --solvers deps,sco --timeout 180

adds the extension to this benchmark's private profile (the ExtensionManager's "user" repository, over UNO; never
--shared) and runs soffice with DIR/program first on LD_LIBRARY_PATH, so that LibreOffice's UNO runtime finds the
Java bridge, jvmfwk3rc and unorc beside the libraries it loaded (nothing under /usr is written; other soffice
processes are untouched). The JRE is JAVA_HOME's, else that of `java` on PATH; jvmfwk writes its choice into the
private profile's javasettings. The NLPSolver solvers have no time limit of their own (only LearningCycles and a
stagnation test), so --timeout is turned into a cycle budget: two short runs time one learning cycle, and the
measured run gets (timeout - start-up) / (seconds per cycle) cycles; a watchdog kills soffice at 2 x timeout + 120 s.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from xlcollab.book.unobook import Office as UnoOffice

SHEET = "dotprod"
REFERENCE = [  # published figures, for context (other data: fast.ai's sheet / a reference 15x15x5 problem)
    ("Excel Solver GRG Nonlinear (fast.ai's dotprod sheet)", 0.393, None),
    ("LibreOffice DEPS (reference 15x15x5 problem)", 0.257, 172.0),
    ("LibreOffice Swarm DE (reference 15x15x5 problem)", 0.315, 300.0),
]
LO_SOLVERS = {
    "de": ("com.sun.star.comp.Calc.SwarmSolver", {"Algorithm": 0}, "LibreOffice Swarm: Differential Evolution"),
    "pso": ("com.sun.star.comp.Calc.SwarmSolver", {"Algorithm": 1}, "LibreOffice Swarm: Particle Swarm"),
    "deps": ("com.sun.star.comp.Calc.NLPSolver.DEPSSolverImpl", {}, "LibreOffice NLPSolver: DEPS"),
    "sco": ("com.sun.star.comp.Calc.NLPSolver.SCOSolverImpl", {}, "LibreOffice NLPSolver: SCO (social cognitive)"),
    "coinmp": ("com.sun.star.comp.Calc.CoinMPSolver", {}, "LibreOffice linear solver: CoinMP"),
    "lpsolve": ("com.sun.star.comp.Calc.LpsolveSolver", {}, "LibreOffice linear solver: lp_solve"),
}
NLP_KEYS = ("deps", "sco")  # Java NLPSolver: no time limit property; the limit becomes a LearningCycles budget
NLP_QUIET = {"EnhancedSolverStatus": False}  # its status dialog would wait for a click at the end
CALIBRATION_CYCLES = (5, 45)


# The README's table of the tabs: what each shows and what its RMSE compares with (the numbers come from a solve).
TABS = {
    "dotprod": ("rating ≈ user factors · movie factors (5 factors, 150 variables); "
                "`=IF(ISNUMBER(r),MMULT(user_row,movie_col),0)` per cell", "Excel Solver: 0.393 on fast.ai's sheet"),
    "bias": ("+ movie-bias row, user-bias column, sigmoid squash into (0, 5.5) switched on/off by a cell "
             "(180 variables)", "Excel Solver: 0.319"),
    "movielens_emb": ("the same ratings in long form; INDEX/MATCH look-ups, SUMPRODUCT, `=SQRT(AVERAGE(errors))`",
                      "same model as dotprod"),
    "movielens_1hot": ("one-hot rows × the embedding matrices (MMULT array formulas) = the look-up; predictions "
                       "equal movielens_emb's", ""),
    "nnet": ("the lesson's mini net in cells: 4+4 embeddings → 7 ReLU units (MMULT, MAX(0,·)) → output → sigmoid "
             "(191 variables)", ""),
}
OPTIMIZER_NAMES = {"lbfgs": "L-BFGS", "adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "momentum": "SGD with momentum"}


def fresh_solve(work: Path) -> dict:
    """`xlcollab build --out work` then `xlcollab solve work/collab_filter.xlsx --json`, as the README runs them:
    the JSON's per-tab results."""
    import json

    run = lambda *argv: subprocess.run([sys.executable, "-m", "xlcollab", *argv], capture_output=True,  # noqa: E731
                                       text=True, check=True).stdout
    run("build", "--out", str(work))
    return json.loads(run("solve", str(work / "collab_filter.xlsx"), "--json"))["sheets"]


def readme_table(sheets: dict) -> str:
    """The README's Markdown table of the collab_filter tabs from `xlcollab solve --json`'s per-tab results."""
    from xlcollab.sheets.collab.layout import SCHEDULES

    lines = ["| tab | what it shows | default solve | RMSE after `solve` |", "|---|---|---|---|"]
    for tab, r in sheets.items():
        shows, compare = TABS.get(tab, ("(not described: add it to TABS in benchmarks/bench_collab.py)", ""))
        if r["optimizer"] == "lbfgs":
            how = f"L-BFGS, {r['epochs']} iterations"
        else:
            schedule = "" if SCHEDULES.get(tab, "constant") == "constant" else f" {SCHEDULES[tab]}"
            how = f"{OPTIMIZER_NAMES[r['optimizer']]} lr {r['lr']:g}{schedule}, {r['epochs']} epochs"
        rmse = f"{r['final_rmse']:.4f}" + (f" ({compare})" if compare else "")
        lines.append(f"| `{tab}` | {shows} | {how} | {rmse} |")
    return "\n".join(lines)


@dataclass
class Task:
    """One Solver model as LibreOffice's solvers take it: 1-based (row, col) cells of one sheet; each constraint
    (left cell, operator name of com.sun.star.sheet.SolverConstraintOperator, a number or a right cell)."""
    sheet: str
    objective: tuple[int, int]
    variables: list[tuple[int, int]]
    constraints: list[tuple[tuple[int, int], str, float | tuple[int, int]]] = field(default_factory=list)
    maximize: bool = False


def dotprod_task(src: Path, bound: tuple[float, float]) -> Task:
    """The dotprod tab's stored model (RMSE cell, factor cells) with low <= x <= high on every variable: the swarm
    solvers sample their start population inside bounds (without any they draw from the whole double range and
    never come back to sensible factors)."""
    from xlcollab.book.filebook import FileBook
    from xlcollab.solver.model import read_model

    model = read_model(FileBook(src), SHEET)
    variables = [(r, c) for _, r, c in model.variables]
    return Task(SHEET, model.objective[1:], variables,
                [(v, op, value) for v in variables for op, value in (("GREATER_EQUAL", bound[0]), ("LESS_EQUAL", bound[1]))])


def ours_in_process(src: Path, work: Path) -> dict:
    from xlcollab.book.filebook import FileBook
    from xlcollab.sheets.collab import solve_book

    path = work / "ours.xlsx"
    shutil.copy(src, path)
    start, cpu = time.perf_counter(), time.process_time()
    book = FileBook(path)
    result = solve_book(book, [SHEET])[SHEET]
    book.commit()
    return {"rmse": result["final_rmse"], "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "note": f"{result['optimizer']} lr {result['lr']:g}, {result['epochs']} epochs, {result['device']}"}


def solve_only(src: Path, sheet: str = SHEET) -> dict:
    """`solve_book` alone on one tab (read, check, compile, the tab's steps, buffered writes): seconds of wall clock
    and of this process's CPU (the fairer measure on a loaded machine)."""
    from xlcollab.book.filebook import FileBook
    from xlcollab.sheets.collab import solve_book

    start, cpu = time.perf_counter(), time.process_time()
    rmse = solve_book(FileBook(src), [sheet])[sheet]["final_rmse"]
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rmse": rmse}


def dedicated(src: Path, sheet: str = SHEET) -> dict:
    """The former dedicated path, for the speed target: the tab written by hand as torch code (kept as the tests'
    oracle, tests/collab_reference.py), read from the cells, fitted by the same core.train loop with the tab's own
    settings (optimizer, lr, epochs, schedule: L-BFGS 200 steps on dotprod), its parameters, trace and "last run"
    block buffered as the former solve wrote them."""
    import torch

    from xlcollab.book.base import bounds
    from xlcollab.book.filebook import FileBook
    from xlcollab.core import optim
    from xlcollab.core.device import torch_threads
    from xlcollab.core.train import schedule_lr, train
    from xlcollab.sheets.collab.layout import PARAMS, SCHEDULES
    from xlcollab.sheets.collab.solve import settings_for, trace_rows

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from collab_reference import read_model

    start, cpu = time.perf_counter(), time.process_time()
    book = FileBook(src)
    s = settings_for(sheet, optimizer=None, lr=None, epochs=None, wd=None, device="cpu")
    model = read_model(book, sheet)
    shapes = {k: v.shape for k, v in model.params.items()}
    x = torch.cat([torch.as_tensor(v).reshape(-1) for v in model.params.values()]).requires_grad_(True)

    def unflat() -> dict[str, torch.Tensor]:
        p, i = {}, 0
        for k, shape in shapes.items():
            n = shape[0] * shape[1]
            p[k], i = x[i:i + n].view(shape), i + n
        return p

    def objective(_batch):
        rmse = model.forward(unflat())[0]
        return rmse, rmse

    if s.optimizer == "lbfgs":
        update = optim.LBFGS([x], lr=s.lr)
    else:
        update = optim.Rule([x], "adam", lr=s.lr, weight_decay=s.wd)
    schedule = SCHEDULES.get(sheet, "constant")
    lr_at = None if schedule == "constant" else (lambda step: schedule_lr(schedule, step / s.epochs, s.lr))
    with torch_threads(1):
        rows = train(update, objective, s.epochs, lr_at=lr_at)
        with torch.no_grad():
            final = float(model.forward(unflat())[0])
    trace = [row["loss"] for row in rows] + [final]
    for name, value in unflat().items():
        if name in PARAMS[sheet]:
            book.write_name(sheet, name, value.detach().numpy().tolist())
    r0, _, r1, _ = bounds(book.ref_of(sheet, "trace"))
    book.write_name(sheet, "trace", trace_rows(trace, r1 - r0 + 1))
    book.write_name(sheet, "last_run", [[v] for v in [s.optimizer, s.lr, s.epochs, s.wd, s.device, 0.0, trace[0],
                                                       final]])
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rmse": final}


def former_vs_generic(src: Path, sheets: list[str], repeats: int) -> list[tuple[str, float, float, float, float]]:
    """Per tab: the former dedicated path and `solve_book` in this one process, interleaved `repeats` times after a
    warm-up of each: (tab, median CPU s former, median CPU s generic, RMSE former, RMSE generic)."""
    out = []
    for sheet in sheets:
        dedicated(src, sheet), solve_only(src, sheet)
        former, generic = [], []
        for _ in range(repeats):
            former.append(dedicated(src, sheet))
            generic.append(solve_only(src, sheet))
        out.append((sheet, statistics.median(r["cpu"] for r in former), statistics.median(r["cpu"] for r in generic),
                    former[0]["rmse"], generic[0]["rmse"]))
    return out


SPEED_COLUMNS = (
    ("tab", "the collab_filter tab solved (its own default settings: optimizer, lr, epochs)"),
    ("former CPU s", "the former dedicated path rebuilt on today's code: the tab's model hand-written in torch "
                     "(tests/collab_reference.py), read from the cells, fitted by core.train with the same settings, "
                     "parameters, trace and last-run block buffered; CPU seconds, median"),
    ("generic CPU s", "the one Solver path, `solve_book`: read and check the tab, compile its formulas, GRG engine, "
                      "write-back with every formula's cached value buffered; CPU seconds, median"),
    ("generic / former", "generic CPU s divided by former CPU s (1.00: as fast; below 1: faster)"),
    ("RMSE former", "the RMSE the former path ends at"),
    ("RMSE generic", "the RMSE the generic path ends at (the same objective cell)"),
)


def print_speed(rows: list[tuple[str, float, float, float, float]], repeats: int, load: float) -> None:
    print(f"\nformer dedicated path vs the generic Solver path, CPU seconds of this process (time.process_time, one "
          f"torch thread), median of {repeats} interleaved runs after one warm-up of each; machine: {os.cpu_count()} "
          f"CPUs, load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (1-min)\n")
    widths = [max(15, len(name)) for name, _ in SPEED_COLUMNS]
    print("| " + " | ".join(f"{name:>{w}}" if i else f"{name:<{w}}" for i, ((name, _), w) in
                            enumerate(zip(SPEED_COLUMNS, widths))) + " |")
    print("|" + "|".join("-" * (w + 1) + ("-" if not i else ":") for i, w in enumerate(widths)) + "|")
    for sheet, former, generic, r_former, r_generic in rows:
        cells = [f"{former:.3f}", f"{generic:.3f}", f"{generic / former:.2f}", f"{r_former:.6f}", f"{r_generic:.6f}"]
        print(f"| {sheet:<{widths[0]}} | " + " | ".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:])) + " |")
    print()
    for name, what in SPEED_COLUMNS:
        print(f"{name}: {what}")


def ours_process(src: Path, work: Path) -> dict:
    path = work / "ours_cli.xlsx"
    shutil.copy(src, path)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "xlcollab", "solve", str(path), "--sheet", SHEET, "--json"],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    import json

    return {"rmse": json.loads(done.stdout)["sheets"][SHEET]["final_rmse"], "seconds": seconds}


def torch_import_process() -> float:
    """Seconds for `python -c "import torch"` alone: the floor under any torch-based command on this machine."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def java_home() -> str | None:
    """JAVA_HOME, else the JRE of `java` on PATH (…/bin/java resolved)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else None


class Office(UnoOffice):
    """xlcollab's one LibreOffice launcher (unobook.Office) with this benchmark's extras; its profile in `work`.

    java_overlay: a folder made by get_nlpsolver.sh (symlinks to LibreOffice's program/ plus the Java-UNO
    runtime), put first on soffice's LD_LIBRARY_PATH so that Java components load without ure-java installed."""

    def __init__(self, work: Path, java_overlay: Path | None = None) -> None:
        env = dict(os.environ)
        if java_overlay is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [str(java_overlay.resolve())] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
            if java_home():
                env["JAVA_HOME"] = java_home()
        super().__init__(profile=work / "profile", env=env)

    def add_extension(self, oxt: Path) -> str:
        """Install an .oxt into this profile's "user" extensions (what `unopkg add` does without --shared; unopkg
        itself refuses to run as root without --shared), approving the install prompt; returns its identifier."""
        import uno
        import unohelper
        from com.sun.star.task import XInteractionHandler
        from com.sun.star.ucb import XCommandEnvironment, XProgressHandler

        approve = uno.getTypeByName("com.sun.star.task.XInteractionApprove")

        class Approve(unohelper.Base, XInteractionHandler):
            def handle(self, request):
                for choice in request.getContinuations():
                    if choice.queryInterface(approve) is not None:
                        choice.select()
                        return

        class Quiet(unohelper.Base, XProgressHandler):
            def push(self, status):
                pass

            def update(self, status):
                pass

            def pop(self):
                pass

        class Env(unohelper.Base, XCommandEnvironment):
            def getInteractionHandler(self):
                return Approve()

            def getProgressHandler(self):
                return Quiet()

        manager = self.ctx.getValueByName("/singletons/com.sun.star.deployment.ExtensionManager")
        package = manager.addExtension(uno.systemPathToFileUrl(str(oxt.resolve())), (), "user", None, Env())
        return package.getIdentifier().Value

    def jre(self) -> str:
        """The JRE jvmfwk chose, from the private profile's javasettings (once Java has started)."""
        for f in (self.profile / "user" / "config").glob("javasettings_*.xml"):
            found = re.search(r"<location>([^<]*)</location>.*?<version>([^<]*)</version>", f.read_text(), re.S)
            if found:
                return f"{found.group(1).removeprefix('file://')} ({found.group(2)})"
        return "unknown"


def libreoffice_solve(office: Office, src: Path, work: Path, key: str, timeout_s: float, task: Task,
                      extra: dict | None = None, tag: str = "", watchdog_s: float | None = None) -> dict:
    """Run one LibreOffice solver on a copy of `src`; the objective cell as LibreOffice computes it at its answer."""
    import uno
    from com.sun.star.sheet import SolverConstraint
    from com.sun.star.table import CellAddress

    service, props, label = LO_SOLVERS[key]
    solver = office.smgr.createInstanceWithContext(service, office.ctx)
    if solver is None:
        return {"label": label, "missing": True}
    path = work / f"lo_{key}{tag}{src.suffix}"
    shutil.copy(src, path)
    doc = office.load(path)
    sheet_index = [doc.Sheets.getByIndex(i).Name for i in range(doc.Sheets.Count)].index(task.sheet)
    ws = doc.Sheets.getByIndex(sheet_index)

    def address(cell: tuple[int, int]) -> CellAddress:
        a = CellAddress()
        a.Sheet, a.Column, a.Row = sheet_index, cell[1] - 1, cell[0] - 1
        return a

    objective, variables = address(task.objective), [address(v) for v in task.variables]
    constraints = []
    for left, op, right in task.constraints:
        c = SolverConstraint()
        c.Left, c.Operator = address(left), uno.Enum("com.sun.star.sheet.SolverConstraintOperator", op)
        c.Right = address(right) if isinstance(right, tuple) else float(right)
        constraints.append(c)
    doc.calculateAll()
    start_value = ws.getCellByPosition(objective.Column, objective.Row).getValue()
    solver.Document = doc
    solver.Objective = objective
    solver.Variables = tuple(variables)
    solver.Constraints = tuple(constraints)
    solver.Maximize = task.maximize
    info = {p.Name for p in solver.getPropertySetInfo().getProperties()}
    for name, value in {**props, **(extra or {})}.items():
        if isinstance(value, int) and not isinstance(value, bool):  # pyuno would pass a small int as BYTE/SHORT
            uno.invoke(solver, "setPropertyValue", (name, uno.Any("long", value)))
        else:
            solver.setPropertyValue(name, value)
    if "Timeout" in info:  # SwarmSolver: milliseconds
        solver.setPropertyValue("Timeout", int(timeout_s * 1000))
    elif "MaxTime" in info:
        solver.setPropertyValue("MaxTime", int(timeout_s))
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        office.kill()

    timer = threading.Timer(watchdog_s, kill) if watchdog_s else None
    begin = time.perf_counter()
    if timer is not None:
        timer.start()
    try:
        solver.solve()
    except Exception:
        if killed.is_set():
            return {"label": label, "killed": True, "seconds": time.perf_counter() - begin}
        raise
    finally:
        if timer is not None:
            timer.cancel()
    seconds = time.perf_counter() - begin
    for a, value in zip(variables, solver.Solution):
        ws.getCellByPosition(a.Column, a.Row).setValue(value)
    doc.calculateAll()
    value = ws.getCellByPosition(objective.Column, objective.Row).getValue()
    doc.close(True)
    return {"label": label, "value": value, "seconds": seconds, "start": start_value, "success": bool(solver.Success),
            "reported": solver.ResultValue,
            "settings": {p.Name: solver.getPropertyValue(p.Name) for p in solver.getPropertySetInfo().getProperties()}}


def nlp_solve(office: Office, src: Path, work: Path, key: str, timeout_s: float, task: Task) -> dict:
    """A Java NLPSolver run held to timeout_s through its LearningCycles: two short runs (stagnation test off)
    time a learning cycle and the fixed start-up (library set-up, first evaluations); the measured run gets the
    cycles that fit, with every other setting at LibreOffice's defaults."""
    times = {}
    for cycles in CALIBRATION_CYCLES:
        r = libreoffice_solve(office, src, work, key, timeout_s, task, tag=f"_cal{cycles}",
                              extra={**NLP_QUIET, "LearningCycles": cycles, "StagnationLimit": 10**6},
                              watchdog_s=2 * timeout_s + 120)
        if r.get("missing") or r.get("killed"):
            return r
        times[cycles] = r["seconds"]
    (c0, c1) = CALIBRATION_CYCLES
    per_cycle = max((times[c1] - times[c0]) / (c1 - c0), 1e-3)
    startup = max(times[c0] - c0 * per_cycle, 0.0)
    budget = max(1, int((timeout_s - startup) / per_cycle))
    r = libreoffice_solve(office, src, work, key, timeout_s, task, extra={**NLP_QUIET, "LearningCycles": budget},
                          watchdog_s=2 * timeout_s + 120)
    r.update(per_cycle=per_cycle, startup=startup, cycles=budget, calibration=times)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="time limit per LibreOffice solver run, seconds (default 120)")
    parser.add_argument("--solvers", default="de,pso,deps,sco", help="LibreOffice solvers to run (de, pso, deps, sco)")
    parser.add_argument("--bounds", default="-3,3", help="LOW,HIGH: bounds on LibreOffice's variables (default -3,3; "
                                                        "the swarms draw their first population inside them)")
    parser.add_argument("--nlpsolver-oxt", type=Path, default=os.environ.get("XLCOLLAB_NLPSOLVER_OXT") or None,
                        help="the NLPSolver extension (.oxt) to add to the private profile, for deps/sco; its Java-UNO "
                             "overlay is the program/ folder beside it (both made by benchmarks/get_nlpsolver.sh); "
                             "default $XLCOLLAB_NLPSOLVER_OXT")
    parser.add_argument("--lo-java", type=Path, default=None,
                        help="the Java-UNO overlay folder (default: program/ beside --nlpsolver-oxt)")
    parser.add_argument("--markdown", action="store_true",
                        help="only print the README's table of the tabs (fresh build, `xlcollab solve`), in Markdown")
    parser.add_argument("--speed", metavar="TABS", default=None,
                        help="only the speed table: former dedicated path vs generic Solver path on these tabs "
                             "(comma list, or all)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved runs per path for the speed table (median)")
    args = parser.parse_args()
    if args.markdown:
        with tempfile.TemporaryDirectory(prefix="bench_collab_") as work:
            print(readme_table(fresh_solve(Path(work))))
        return
    if args.speed:
        from xlcollab.sheets.collab import build_workbook
        from xlcollab.sheets.collab.layout import SHEETS

        with tempfile.TemporaryDirectory(prefix="bench_collab_") as work:
            src = build_workbook(Path(work) / "collab_filter.xlsx", seed=42)
            load = os.getloadavg()[0]
            tabs = list(SHEETS) if args.speed == "all" else args.speed.split(",")
            print_speed(former_vs_generic(src, tabs, args.repeats), args.repeats, load)
        return
    overlay = args.lo_java or (args.nlpsolver_oxt.parent / "program" if args.nlpsolver_oxt else None)
    for need in ([args.nlpsolver_oxt, overlay / "libjava_uno.so"] if args.nlpsolver_oxt else []):
        if not need.exists():
            parser.error(f"{need} does not exist: run benchmarks/get_nlpsolver.sh first")
    low, high = (float(v) for v in args.bounds.split(","))

    import torch  # noqa: F401  imports done before timing ours, as in a warm Excel session

    from xlcollab.sheets.collab import build_workbook

    work = Path(tempfile.mkdtemp(prefix="bench_collab_"))
    try:
        src = build_workbook(work / "collab_filter.xlsx", seed=42)
        load = os.getloadavg()[0]
        task = dotprod_task(src, (low, high))
        ours = ours_in_process(src, work)
        cli = ours_process(src, work)
        speed = former_vs_generic(src, [SHEET], args.repeats)
        _, former_cpu, generic_cpu, former_rmse, generic_rmse = speed[0]
        rows = [(f"xlcollab solve, in-process ({ours['note']})", ours["rmse"], ours["seconds"],
                 f"read+compile+fit+write+save; CPU {ours['cpu']:.2f} s"),
                (f"xlcollab solve_book alone (median of {args.repeats})", generic_rmse, None,
                 f"read, check, compile the tab's formulas, 200 L-BFGS steps, writes buffered; CPU {generic_cpu:.3f} s"),
                (f"former dedicated path (median of {args.repeats})", former_rmse, None,
                 f"the tab hand-written in torch, read + the same 200 L-BFGS steps; CPU {former_cpu:.3f} s "
                 f"(generic / former {generic_cpu / former_cpu:.2f})"),
                ("xlcollab solve, whole process", cli["rmse"], cli["seconds"], "python start + imports included"),
                ("(python -c 'import torch', for comparison)", None, torch_import_process(), "")]
        keys = [k.strip() for k in args.solvers.split(",") if k.strip()]
        office = Office(work, overlay) if keys else None
        extension, jre = None, None
        try:
            if office is not None and args.nlpsolver_oxt and any(k in NLP_KEYS for k in keys):
                extension = office.add_extension(args.nlpsolver_oxt)
            for key in keys:
                if key in NLP_KEYS:
                    r = nlp_solve(office, src, work, key, args.timeout, task)
                else:
                    r = libreoffice_solve(office, src, work, key, args.timeout, task)
                if r.get("missing"):
                    rows.append((r["label"], None, None, "not installed here (Java NLPSolver extension; see "
                                                         "--nlpsolver-oxt)"))
                elif r.get("killed"):
                    rows.append((r["label"], None, r["seconds"], "killed by the watchdog"))
                    break
                elif key in NLP_KEYS:
                    st = r["settings"]
                    rows.append((r["label"], r["value"], r["seconds"],
                                 f"limit {args.timeout:g} s as {r['cycles']} learning cycles "
                                 f"({r['per_cycle']:.3f} s/cycle + {r['startup']:.1f} s start-up, timed); swarm "
                                 f"{st['SwarmSize']}, stagnation {st['StagnationLimit']} x {st['Tolerance']:g}, "
                                 f"{low:g} <= x <= {high:g}; start RMSE {r['start']:.4f}, "
                                 f"solver's own {r['reported']:.4f}, success {r['success']}"))
                else:
                    rows.append((r["label"], r["value"], r["seconds"],
                                 f"limit {args.timeout:g} s, {low:g} <= x <= {high:g}"))
            if extension:
                jre = office.jre()
        finally:
            if office is not None:
                office.close()
        print(f"\ncollab_filter.xlsx, tab '{SHEET}' (15 users x 15 movies, 211 ratings, 150 variables), seed 42")
        print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
              f"(1-min); torch threads for the fit: 1")
        if extension:
            print(f"NLPSolver: {args.nlpsolver_oxt} as '{extension}' in the private profile; Java-UNO overlay "
                  f"{overlay}; JRE {jre}")
        print()
        print(f"{'solver':<62}{'RMSE':>10}{'seconds':>10}  notes")
        for label, rmse, seconds, note in rows:
            rmse_s = f"{rmse:10.4f}" if rmse is not None else f"{'-':>10}"
            sec_s = f"{seconds:10.2f}" if seconds is not None else f"{'-':>10}"
            print(f"{label:<62}{rmse_s}{sec_s}  {note}")
        print_speed(speed, args.repeats, load)
        print("\nfor reference (published, other data):")
        for label, rmse, seconds in REFERENCE:
            print(f"{label:<62}{rmse:10.3f}{(f'{seconds:10.0f}' if seconds else f'{chr(45):>10}')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
