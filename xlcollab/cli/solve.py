"""`xlcollab solve`: Excel Solver's job on any workbook, headless: the model the workbook stores (or the one the
flags give) compiled into torch and solved by GRG (L-BFGS/Adam), Simplex LP (HiGHS) or a batched multistart;
saved atomically. The collab_filter tabs go through the same path and also write their trace and "last run"."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from xlcollab.core.safeio import printable
from xlcollab.core.settings import SOLVE, SOLVE_ENGINES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="solve a workbook's Excel Solver model with torch / HiGHS and save it",
                       description="Read the Solver model a sheet stores (objective, variable cells, constraints), "
                                   "compile the formulas it depends on into torch, solve it with Excel's engines "
                                   "(GRG Nonlinear, Simplex LP, Evolutionary), write the variable cells and the "
                                   "formulas' cached values back and save atomically (everything else stays "
                                   "byte-identical). Infeasible/unbounded models and bad models exit 1 and write "
                                   "nothing.")
    p.add_argument("workbook", type=Path, help=".xlsx or .xlsm")
    p.add_argument("--sheet", action="append", metavar="NAME",
                   help="sheet whose model to solve, or all: every sheet that holds one (default all; repeat it or "
                        "give a comma list)")
    p.add_argument("--engine", choices=SOLVE_ENGINES,
                   help="auto (default, unless the sheet's settings cells say otherwise): Simplex LP when the "
                        "compiled model is linear, else the engine the sheet "
                        "stores (solver_eng); grg: L-BFGS/Adam + augmented Lagrangian; lp: HiGHS; evolutionary: "
                        "batched multistart polished by GRG")
    p.add_argument("--multistart", type=int, metavar="N",
                   help="N random starts in one batch, the best polished by GRG (any nonlinear engine)")
    model = p.add_argument_group("the model, for a workbook that stores none (or to override the stored one)")
    model.add_argument("--objective", metavar="CELL", help="objective cell, e.g. E10 or 'Other sheet'!B2")
    model.add_argument("--vars", metavar="RANGES", help="variable cells, e.g. B2:B5,D2")
    goal = model.add_mutually_exclusive_group()
    goal.add_argument("--max", dest="goal", action="store_const", const="max", help="maximise the objective")
    goal.add_argument("--min", dest="goal", action="store_const", const="min", help="minimise it")
    goal.add_argument("--value", type=float, metavar="V", help="make it equal V")
    model.add_argument("--constraint", action="append", default=[], metavar="C",
                       help="e.g. 'A1:A3<=B1:B3', 'B2>=0', 'C1:C4 int', 'D1:D3 bin', 'E1:E5 dif' (repeatable)")
    neg = model.add_mutually_exclusive_group()
    neg.add_argument("--nonnegative", dest="nonnegative", action="store_const", const=True,
                     help="variables without a lower bound of their own are >= 0 (Excel's default)")
    neg.add_argument("--free", dest="nonnegative", action="store_const", const=False,
                     help="variables without a bound of their own are free")
    grg = p.add_argument_group("GRG settings (defaults: the sheet's settings cells where it has them, then the "
                               "collab_filter tab's own, else L-BFGS)")
    for name, setting in SOLVE.items():  # one flag per solve setting, as core.settings states it
        in_cells = name == "device"  # None: not given, so the settings cells (else the default) decide
        (p if name == "device" else grg).add_argument(
            setting.flag, dest=name, type=setting.parse, choices=setting.choices,
            default=None if in_cells else setting.default,
            help=setting.help + ("" if setting.default is None else f" (default: {setting.default})"))
    p.add_argument("--node-limit", type=int, default=500, help="branch-and-bound nodes before giving up (default 500)")
    p.add_argument("--out", type=Path, help="write the solved workbook here instead of over WORKBOOK")
    p.add_argument("--json", action="store_true", help="print the outcome per sheet as JSON")
    p.add_argument("--force", action="store_true", help="run even when --epochs would take longer than the time "
                   "limit (XLCOLLAB_MAX_HOURS, default 24)")
    p.set_defaults(run=run_solve)


def run_solve(args: argparse.Namespace) -> int:
    from xlcollab.book.filebook import FileBook
    from xlcollab.core import budget
    from xlcollab.errors import SettingsError, SolveError, XlcollabError

    if args.sheet and not any(name.strip() for arg in args.sheet for name in arg.split(",")):
        raise SettingsError(f"--sheet {args.sheet[-1]!r} names no sheet: give a sheet name, a comma list or all")
    if args.epochs is not None:
        budget.check_solve(args.epochs, force=args.force)
    book = FileBook(args.workbook, out=args.out)
    try:
        results = solve(book, args)
    except XlcollabError as exc:
        if args.json:
            sheet = getattr(exc, "sheet", None)
            status = getattr(exc, "status", "error") if isinstance(exc, SolveError) else "error"
            print(json.dumps({"workbook": str(args.workbook), "sheets": {sheet or "": {"status": status,
                                                                                    "message": str(exc)}}}, indent=2))
        raise
    book.commit()
    saved = args.out or args.workbook
    if args.json:
        print(json.dumps({"workbook": str(saved), "sheets": results}, indent=2))
        return 0
    print(f"{'sheet':<16}{'engine':>16}{'status':>17}{'objective before':>18}{'after':>14}{'seconds':>9}  device")
    for sheet, r in results.items():
        before, after = r.get("objective_before"), r.get("objective_after")
        print(f"{printable(sheet):<16}{r['engine']:>16}{r['status']:>17}{_num(before):>18}{_num(after):>14}"
              f"{r['seconds']:>9.3f}  {r['device']}")
    print(f"saved {printable(saved)}")
    return 0


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.6g}"


def solve(book, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Solve every requested sheet (the collab tabs through their own thin layer), buffer all writes at the end.

    Each sheet's settings are what its Solve button runs: its settings cells (sheets.settings_cells),
    the flags winning."""
    from xlcollab.errors import WorkbookError
    from xlcollab.sheets.collab import is_tab, solve_book
    from xlcollab.sheets.settings_cells import merged as tab_settings
    from xlcollab.solver import solve as generic
    from xlcollab.solver.engines import grg
    from xlcollab.solver.model import has_model, read_model, with_options

    wanted = [name.strip() for arg in (args.sheet or ["all"]) for name in arg.split(",") if name.strip()]
    model_flags = any(v is not None for v in (args.objective, args.vars, args.goal, args.value, args.nonnegative)) \
        or bool(args.constraint)
    if "all" in wanted and model_flags:
        if len(book.sheet_names()) != 1:
            raise WorkbookError("--objective/--vars/--constraint describe one sheet's model: name it with --sheet",
                                path=book.name)
        sheets = book.sheet_names()
    elif "all" in wanted:
        sheets = [s for s in book.sheet_names() if has_model(book, s)]
        if not sheets:
            raise WorkbookError("no sheet holds a Solver model; give one with --sheet NAME --objective CELL "
                                "--vars RANGES", path=book.name)
    else:
        sheets = wanted
    for s in sheets:
        book.require_sheet(s)
    tabs = [s for s in sheets if not model_flags and is_tab(book, s)]
    given = {"optimizer": args.optimizer, "lr": args.lr, "epochs": args.epochs, "device": args.device,
             "multistart": args.multistart, "engine": args.engine}
    chosen = {sheet: tab_settings(book, sheet, given) for sheet in sheets}  # the cells, as the Solve button reads them
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for sheet in sheets:
        if sheet in tabs:
            continue
        c = chosen[sheet]
        book.status(f"xlcollab: solving {sheet}")
        s = grg.Settings(optimizer=c.get("optimizer", "lbfgs"), lr=c.get("lr", 1.0),
                         iterations=c.get("epochs", grg.Settings.iterations), wd=args.wd or 0.0)
        options = generic.Options(engine=c.get("engine", "auto"), device=c.get("device", "auto"),
                                  multistart=c.get("multistart", 0), node_limit=args.node_limit, grg=s)
        stored = read_model(book, sheet) if has_model(book, sheet) else None
        model = with_options(book, sheet, stored, objective=args.objective, variables=args.vars,
                             goal="value" if args.value is not None else args.goal, value=args.value,
                             constraints=args.constraint, nonnegative=args.nonnegative)
        outcome, writes = generic.solve_model(book, model, options)
        results[sheet] = outcome.as_json()
        pending.append(writes)
    for tab in tabs:
        c = chosen[tab]
        results.update(solve_book(book, [tab], optimizer=c.get("optimizer"), lr=c.get("lr"), epochs=c.get("epochs"),
                                  wd=args.wd, device=c.get("device", "auto"), multistart=c.get("multistart", 0)))
    for writes in pending:
        generic.apply(book, writes)
    return {s: results[s] for s in sheets}
