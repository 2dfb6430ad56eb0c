"""`xlcollab solve`: torch in place of Excel Solver on the collab_filter workbook, headless, saved atomically."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from xlcollab.core.settings import SOLVE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="fit the collab_filter tabs with torch (instead of Excel Solver) and save them",
                       description="Read each tab's ratings and parameters from the cells, fit them full-batch in "
                                   "float64 on the tab's own RMSE formula, write parameters, trace and 'last run' "
                                   "back and save atomically (everything else in the file stays byte-identical).")
    p.add_argument("workbook", type=Path, help="collab_filter.xlsx (or .xlsm)")
    p.add_argument("--sheet", action="append", metavar="NAME",
                   help="tab to solve: dotprod, bias, movielens_emb, movielens_1hot, nnet or all (default all; "
                        "repeat it or give a comma list)")
    for name, setting in SOLVE.items():  # one flag per solve setting, as core.settings states it
        p.add_argument(setting.flag, dest=name, type=setting.parse, choices=setting.choices, default=setting.default,
                       help=setting.help + ("" if setting.default is None else " (default: %(default)s)"))
    p.add_argument("--out", type=Path, help="write the solved workbook here instead of over WORKBOOK")
    p.add_argument("--json", action="store_true", help="print the results per tab as JSON")
    p.set_defaults(run=run_solve)


def run_solve(args: argparse.Namespace) -> int:
    from xlcollab.book.filebook import FileBook
    from xlcollab.sheets.collab import solve_book

    sheets = [name.strip() for arg in (args.sheet or ["all"]) for name in arg.split(",") if name.strip()]
    book = FileBook(args.workbook, out=args.out)
    results = solve_book(book, "all" if "all" in sheets else sheets, optimizer=args.optimizer, lr=args.lr,
                         epochs=args.epochs, wd=args.wd, device=args.device)
    book.commit()
    saved = args.out or args.workbook
    if args.json:
        print(json.dumps({"workbook": str(saved), "sheets": results}, indent=2))
        return 0
    print(f"{'sheet':<16}{'optimizer':>10}{'lr':>7}{'epochs':>7}{'start RMSE':>12}{'final RMSE':>12}{'seconds':>9}  device")
    for sheet, r in results.items():
        print(f"{sheet:<16}{r['optimizer']:>10}{r['lr']:>7g}{r['epochs']:>7}{r['start_rmse']:>12.6f}"
              f"{r['final_rmse']:>12.6f}{r['seconds']:>9.3f}  {r['device']}")
    print(f"saved {saved}")
    return 0
