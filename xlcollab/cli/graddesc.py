"""`xlcollab run` and `xlcollab reset`: the graddesc workbook's Run and Reset buttons, headless."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run graddesc optimizer tabs for N epochs: append the trace, write the new state")
    _common_flags(p)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs to run (default: each tab's epochs setting cell, as the Run button; blank: 5)")
    p.set_defaults(run=run_cmd)

    p = sub.add_parser("reset", help="reset graddesc optimizer tabs: a, b to their start values, state 0, trace cleared")
    _common_flags(p)
    p.set_defaults(run=reset_cmd)


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("workbook", type=Path, help="the graddesc workbook (.xlsx/.xlsm)")
    p.add_argument("--sheet", default="all", help="optimizer tab name, or all (default)")
    p.add_argument("--out", type=Path, help="write the result here instead of over the workbook")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _apply(args: argparse.Namespace, action: Callable[..., dict[str, Any]], show: Callable[[dict[str, Any]], None],
           *extra: Any) -> int:
    """Run `action(book, sheet, *extra)` on the workbook, commit, and print the results (JSON, or `show`'s table)."""
    from xlcollab.book.filebook import FileBook

    book = FileBook(args.workbook, out=args.out)
    results = action(book, args.sheet, *extra)
    book.commit()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)
    return 0


def _run_tabs(book: Any, sheet: str, epochs: int | None) -> dict[str, Any]:
    """run_book with each tab's epochs: `epochs`, else the tab's settings cell (as the Run button reads it)."""
    from xlcollab.sheets.settings_cells import run_epochs
    from xlcollab.sheets.graddesc import run_book, tabs

    by_epochs: dict[int, list[str]] = {}
    for tab in tabs(sheet, path=book.name):
        by_epochs.setdefault(run_epochs(book, tab, epochs), []).append(tab)
    results: dict[str, Any] = {}
    for n, names in by_epochs.items():
        results.update(run_book(book, names, n))
    return {tab: results[tab] for tab in tabs(sheet, path=book.name)}


def run_cmd(args: argparse.Namespace) -> int:
    def show(results: dict[str, Any]) -> None:
        w = max(len("sheet"), *map(len, results)) + 2
        print(f"{'sheet':<{w}}{'epochs':>8}{'a':>12}{'b':>12}{'last loss':>13}{'lr':>10}")
        for sheet, r in results.items():
            print(f"{sheet:<{w}}{r['epoch']:>8}{r['a']:>12.6f}{r['b']:>12.6f}{r['loss']:>13.6g}{r['lr']:>10.3g}")
        print(f"wrote {args.out or args.workbook} (epochs = epochs done in total; the rows now show the next epoch)")
    return _apply(args, _run_tabs, show, args.epochs)


def reset_cmd(args: argparse.Namespace) -> int:
    from xlcollab.sheets.graddesc import reset_book

    def show(results: dict[str, Any]) -> None:
        for sheet, r in results.items():
            print(f"{sheet}: a = {r['a']:g}, b = {r['b']:g}, {r['cleared']} trace rows cleared")
        print(f"wrote {args.out or args.workbook}")
    return _apply(args, reset_book, show)
