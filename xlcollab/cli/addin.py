"""`xlcollab addin`: build the xlcollab.xlam add-in, say where Excel loads add-ins from, install it where Excel is.

The add-in (see `xlcollab.excel.addin`) gives every workbook the xlcollab ribbon tab and the XC_* functions and runs
them in this Python. Built here, it records this Python as its interpreter; on a machine without Excel it is only
built, to be copied to the machine that has Excel. Every instruction printed works as written without our source
tree: xlcollab is installed from its folder or wheel, not from PyPI (it is not published there).
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
# Where Excel opens add-ins from at every start (its XLSTART / Startup folder; xlwings installs there too).
STARTUP = {
    "win32": r"%APPDATA%\Microsoft\Excel\XLSTART",
    "darwin": "~/Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel",
}
INTERPRETER_KEY = {"win32": "Interpreter_Win", "darwin": "Interpreter_Mac"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("addin", help="build the xlcollab Excel add-in (ribbon tab + XC_* functions) and install it")
    p.add_argument("--out", type=Path, default=Path("."), help="folder to write xlcollab.xlam into (default: here)")
    p.add_argument("--workbook", type=Path, action="append", default=[],
                   help="an .xlsm to point at this Python too (writes its xlwings.conf sheet); repeatable")
    p.add_argument("--dry-run", action="store_true", help="build and print, install nothing")
    p.set_defaults(run=run_addin)


def _key(platform: str) -> str:
    return "win32" if platform.startswith("win") else platform


def find_excel(platform: str = sys.platform) -> Path | None:
    """Excel's executable or app bundle, or None (always None on Linux)."""
    for pattern in EXCEL_PATHS.get(_key(platform), []):
        for pf in (os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("ProgramFiles(x86)", "")):
            path = Path(pattern.format(pf=pf))
            if pf and path.exists():
                return path
    return None


def excel_python(platform: str = sys.platform, python: str = sys.executable) -> str:
    """The Python Excel should start: pythonw.exe beside python.exe on Windows (no console window), else this one."""
    if _key(platform) == "win32":
        windowless = Path(python).with_name("pythonw.exe")
        return str(windowless) if windowless.exists() else python
    return python


def install_hint() -> str:
    """How to install this very xlcollab into another Python: its source folder, else the wheel or folder pip
    installed it from (PEP 610's direct_url.json); never PyPI, where xlcollab is not published."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return f'"{root}"'
    source = installed_from()
    return f'"{source}"' if source else "<the xlcollab wheel or folder you installed from>"


def installed_from() -> Path | None:
    """The local wheel or folder pip installed xlcollab from, as its direct_url.json records it; None if unknown."""
    import importlib.metadata
    import json
    from urllib.parse import unquote, urlparse
    try:
        text = importlib.metadata.distribution("xlcollab").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    url = json.loads(text).get("url", "") if text else ""
    return Path(unquote(urlparse(url).path)) if url.startswith("file://") else None


def steps(platform: str = sys.platform, python: str = sys.executable, addin: str = "xlcollab.xlam") -> list[str]:
    """The set-up steps for this platform, as text."""
    key = _key(platform)
    out = [f"1. Install xlcollab into the Python Excel will run ({python}); it is not on PyPI, so from its folder or "
           f"wheel:\n     \"{python}\" -m pip install {install_hint()}",
           f"2. Put the add-in where Excel opens add-ins at start, then restart Excel:\n     {addin}  ->  "
           f"{STARTUP.get(key, STARTUP['win32'] + '   (Windows)   or   ' + STARTUP['darwin'] + '   (macOS)')}\n"
           "   (`xlcollab addin` does this itself on a machine with Excel; or Excel: File > Options > Add-ins > "
           "Manage Excel Add-ins > Browse.)",
           "3. Open any workbook: the xlcollab tab has Solve (the active sheet's Solver model), Run / Reset (graddesc "
           "tabs),\n   Fit MovieLens, the engine / optimizer / device / multistart choices and Restart Python; the "
           "XC_* functions\n   work in every cell (Windows). The bundled workbooks: `xlcollab build --out workbooks`; "
           "their buttons run\n   through the add-in too (click Enable Content when Excel asks)."]
    if key == "darwin":
        out.append("4. macOS: `xlwings runpython install` lets Excel start Python (done by `xlcollab addin` where Excel "
                   "is); xlwings has no worksheet functions on macOS, so the XC_* functions are Windows only.")
    return out


def set_interpreter(workbook: Path, python: str, platform: str = sys.platform) -> str:
    """Write Interpreter_Win / Interpreter_Mac = python into a built .xlsm's xlwings.conf sheet; returns the key."""
    from xlcollab.book.filebook import FileBook
    from xlcollab.errors import WorkbookError
    from xlcollab.excel.xlsm import CONF_SHEET

    key = INTERPRETER_KEY.get(_key(platform), "Interpreter_Win")
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
    from xlcollab.errors import XlcollabError
    from xlcollab.excel.addin import ADDIN, build_addin

    platform, excel = sys.platform, find_excel(sys.platform)
    key = INTERPRETER_KEY.get(_key(platform))
    python = excel_python(platform)
    if args.workbook and key is None:
        raise XlcollabError("--workbook writes this Python's path for Excel to run: do it on the Windows or macOS "
                            f"machine that runs Excel (this one runs {platform})")
    addin = build_addin(args.out / ADDIN, interpreters={key: python} if key else None)
    print(f"built {addin}" + (f" (it runs {python})" if key else " (no interpreter recorded: built off an Excel "
                                                                  "machine, Excel will run the default pythonw/python)"))
    print("\nxlcollab in Excel: set-up steps\n")
    for step in steps(platform, python):
        print(step + "\n")
    for workbook in args.workbook:
        if args.dry_run:
            print(f"(dry run) would write this Python into {workbook}'s xlwings.conf sheet")
        else:
            print(f"wrote {set_interpreter(workbook, python, platform)} = {python} into {workbook} (sheet xlwings.conf)")
    if excel is None:
        print("Excel is not installed here, so nothing was installed. On the machine with Excel, install xlcollab (step 1) "
              "and run `xlcollab addin` there:\nthe add-in it builds records that machine's Python and installs itself.")
        return 0
    if args.dry_run:
        print(f"Excel found at {excel}; --dry-run: nothing installed.")
        return 0
    commands = [["addin", "install", "--file", str(addin.resolve())]] + ([["runpython", "install"]] if platform == "darwin" else [])
    for command in commands:
        print("running: xlwings " + " ".join(command))
        done = subprocess.run([sys.executable, "-m", "xlwings.cli", *command], check=False)
        if done.returncode != 0:
            print(f"xlcollab: `xlwings {' '.join(command)}` failed (exit {done.returncode}); run it yourself",
                  file=sys.stderr)
            return 1
    print("Done: restart Excel; the xlcollab tab is on the ribbon of every workbook.")
    return 0
