"""The `xlcollab` command: one sub-command module per area, each adding its parser with `register`.

Sub-command modules import torch and friends inside their run functions, so `xlcollab --help`
stays quick. Every XlcollabError becomes one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from xlcollab.errors import XlcollabError

# Each module defines `register(subparsers)`, which adds its commands with set_defaults(run=fn).
COMMAND_MODULES = ("fit", "workbook", "solve", "graddesc", "addin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlcollab", description="Collaborative filtering and gradient descent in a "
                                     "spreadsheet: bundled workbooks solved by torch in place of Excel Solver.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"xlcollab.cli.{name}")
        except ModuleNotFoundError as exc:  # an area not built yet
            if exc.name != f"xlcollab.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except XlcollabError as exc:
        print(f"xlcollab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xlcollab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
