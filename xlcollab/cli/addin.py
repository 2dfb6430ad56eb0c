"""`xlcollab addin`: the steps that make the .xlsm buttons and the XC_* functions work in Excel.

It prints the steps for this machine; where Excel is installed (Windows, macOS) it also performs the
ones that can be done from a terminal: installing xlwings' add-in (and, on macOS, its RunPython
helper), and writing this Python's path into a workbook's xlwings.conf sheet.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

EXCEL_PATHS = {
    "win32": [r"{pf}\Microsoft Office\root\Office16\EXCEL.EXE", r"{pf}\Microsoft Office\Office16\EXCEL.EXE"],
    "darwin": ["/Applications/Microsoft Excel.app"],
}
INTERPRETER_KEY = {"win32": "Interpreter_Win", "darwin": "Interpreter_Mac"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("addin", help="set up Excel for the .xlsm buttons and XC_* functions (xlwings add-in)")
    p.add_argument("--workbook", type=Path, action="append", default=[],
                   help="an .xlsm to point at this Python (writes its xlwings.conf sheet); repeatable")
    p.add_argument("--dry-run", action="store_true", help="only print the steps, change nothing")
    p.set_defaults(run=run_addin)


def find_excel(platform: str = sys.platform) -> Path | None:
    """Excel's executable or app bundle, or None (always None on Linux)."""
    key = "win32" if platform.startswith("win") else platform
    for pattern in EXCEL_PATHS.get(key, []):
        for pf in (os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("ProgramFiles(x86)", "")):
            path = Path(pattern.format(pf=pf))
            if pf and path.exists():
                return path
    return None


def steps(platform: str = sys.platform, python: str = sys.executable) -> list[str]:
    """The set-up steps, in order, as text for this platform."""
    mac = platform == "darwin"
    out = [
        f"1. Install xlcollab into the Python that Excel will run ({python}):\n"
        f"     \"{python}\" -m pip install xlcollab",
        "2. Install the xlwings add-in (adds the xlwings ribbon tab; the buttons call its RunPython):\n"
        "     xlwings addin install" + ("\n     xlwings runpython install   (macOS: lets Excel start Python)" if mac else ""),
        "3. Build the workbooks and open one with macros enabled:\n"
        "     xlcollab build --out workbooks\n"
        "     open workbooks/collab_filter.xlsm (Solve, Fit MovieLens) or workbooks/graddesc.xlsm (Run, Reset);\n"
        "     click 'Enable Content' when Excel asks.",
        f"4. Tell xlwings which Python to run: in the xlwings ribbon tab set Interpreter to {python}, or run\n"
        f"     xlcollab addin --workbook workbooks/collab_filter.xlsm   (writes it into the workbook's xlwings.conf sheet)",
    ]
    if mac:
        out.append("5. XC_* worksheet functions: xlwings' UDFs run on Windows only; on macOS use the buttons and the\n"
                   "   `xlcollab recommend` command.")
    else:
        out.append("5. XC_* worksheet functions (Windows): File > Options > Trust Center > Trust Center Settings >\n"
                   "   Macro Settings: tick 'Trust access to the VBA project object model'; in the VBA editor (Alt+F11)\n"
                   "   Tools > References: tick 'xlwings' (the imported functions call the add-in; the buttons do not\n"
                   "   need this); then in the xlwings tab click 'Import Functions' (the workbook's xlwings.conf sheet\n"
                   "   names UDF Modules = xlcollab.excel). XC_PREDICT / XC_RECOMMEND / XC_SIMILAR answer from\n"
                   "   <workbook>.xlcollab.pt beside the workbook, written by the Fit MovieLens button.")
    return out


def set_interpreter(workbook: Path, python: str, platform: str = sys.platform) -> str:
    """Write Interpreter_Win / Interpreter_Mac = python into the workbook's xlwings.conf sheet; returns the key."""
    from xlcollab.errors import WorkbookError
    from xlcollab.book.filebook import FileBook
    from xlcollab.excel.xlsm import CONF_SHEET

    key = INTERPRETER_KEY.get("win32" if platform.startswith("win") else platform, "Interpreter_Win")
    book = FileBook(workbook)
    if CONF_SHEET not in book.sheet_names():
        raise WorkbookError(f"has no '{CONF_SHEET}' sheet: use an .xlsm built by `xlcollab build`", path=str(workbook))
    column = [row[0] for row in book.read(CONF_SHEET, "A1:A4")]
    row = column.index(key) + 1 if key in column else column.index(None) + 1 if None in column else None
    if row is None:
        raise WorkbookError("the settings rows A1:A4 are full", sheet=CONF_SHEET, path=str(workbook))
    book.write(CONF_SHEET, f"A{row}:B{row}", [[key, python]])
    book.commit()
    return key


def run_addin(args: argparse.Namespace) -> int:
    platform = sys.platform
    excel = find_excel(platform)
    print("xlcollab in Excel: set-up steps\n")
    for step in steps(platform):
        print(step + "\n")
    if args.workbook and not (platform.startswith("win") or platform == "darwin"):
        from xlcollab.errors import XlcollabError
        raise XlcollabError("--workbook writes this Python's path for Excel to run: do it on the Windows or macOS "
                            "machine that runs Excel (this one runs " + platform + ")")
    for workbook in args.workbook:
        if args.dry_run:
            print(f"(dry run) would write this Python into {workbook}'s xlwings.conf sheet")
        else:
            key = set_interpreter(workbook, sys.executable, platform)
            print(f"wrote {key} = {sys.executable} into {workbook} (sheet xlwings.conf)")
    if excel is None:
        print("Excel is not installed here, so nothing was installed. Without Excel the same workbooks run headless\n"
              "(xlcollab solve / run / reset) and in LibreOffice, where the buttons show but need xlwings' Excel add-in.")
        return 0
    if args.dry_run:
        print(f"Excel found at {excel}; --dry-run: nothing installed.")
        return 0
    commands = [["xlwings", "addin", "install"]] + ([["xlwings", "runpython", "install"]] if platform == "darwin" else [])
    for command in commands:
        print("running: " + " ".join(command))
        done = subprocess.run([sys.executable, "-m", "xlwings.cli", *command[1:]], check=False)
        if done.returncode != 0:
            print(f"xlcollab: `{' '.join(command)}` failed (exit {done.returncode}); run it yourself", file=sys.stderr)
            return 1
    print("Done: restart Excel, then open a .xlsm and click its buttons.")
    return 0
