"""The `xlcollab` command: one sub-command module per area, each adding its parser with `register`.

Sub-command modules import torch and friends inside their run functions, so `xlcollab --help`
stays quick. Every XlcollabError (and an OSError or MemoryError) becomes one line on stderr, control
characters escaped, and exit status 1.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from xlcollab.core.safeio import os_words, printable
from xlcollab.errors import XlcollabError

# Each module defines `register(subparsers)`, which adds its commands with set_defaults(run=fn).
COMMAND_MODULES = ("fit", "evaluate", "workbook", "solve", "graddesc", "addin")


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
        print(f"xlcollab: error: {printable(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`xlcollab ... | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice: no second error at exit
        return 141
    except MemoryError:
        print("xlcollab: error: out of memory (try a smaller data set, fewer factors or a smaller --batch-size)",
              file=sys.stderr)
        return 1
    except OSError as exc:  # an OS failure outside the checked paths: still one line
        where = f": {printable(exc.filename)}" if exc.filename else ""
        print(f"xlcollab: error: {os_words(exc)}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xlcollab: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The `xlcollab` program (its console script and `python -m xlcollab`): main(), then exit without the final
    garbage collections over every object torch created. They cost ~0.3 s of each command that imported torch, a
    sixth of a whole `xlcollab solve`; exiting still runs atexit handlers, closes files and frees modules. Not once
    Triton is loaded (torch loads it for some commands): its objects print leak warnings unless collected."""
    code = main()
    if "triton" not in sys.modules:
        gc.freeze()  # no object left now is collected by the exit's collections (the process ends: the OS frees them)
    sys.exit(code)


if __name__ == "__main__":
    run()
