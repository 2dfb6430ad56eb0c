"""LibreOffice headless as a recalculation engine: the independent oracle our tests and benchmarks trust.

`recalc` opens each workbook in LibreOffice Calc with a private profile that forces a full recalculation
on load (OOXMLRecalcMode = 0, "always"), so every formula is computed by LibreOffice from the sheet's own
formulas, then saves .xlsx copies whose cached values openpyxl reads back with `data_only=True`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from xlcollab.errors import XlcollabError

INSTALL_HINT = ("install LibreOffice Calc headless: apt-get install --no-install-recommends "
                "libreoffice-calc-nogui python3-uno (Debian/Ubuntu)")

_PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


def soffice_path() -> str | None:
    """The LibreOffice executable, or None when LibreOffice is not installed."""
    return os.environ.get("XLCOLLAB_SOFFICE") or shutil.which("soffice") or shutil.which("libreoffice")


def available() -> bool:
    return soffice_path() is not None


def profile_dir(root: str | Path | None = None) -> Path:
    """A LibreOffice user profile that always recalculates on load (made once, reused)."""
    base = Path(root) if root else Path(tempfile.gettempdir()) / f"xlcollab-lo-profile-{os.getuid()}"
    settings = base / "user" / "registrymodifications.xcu"
    if not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(_PROFILE_SETTINGS, encoding="utf-8")
    return base


def recalc(paths: Iterable[str | Path], outdir: str | Path, *, timeout: float = 300) -> list[Path]:
    """Recalculate every formula of each workbook in LibreOffice; return the recalculated .xlsx copies.

    One soffice start for all files (each start costs about a second). Inputs must have distinct stems,
    since each copy is written as `outdir/<stem>.xlsx`.
    """
    paths = [Path(p).resolve() for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise XlcollabError(f"recalc needs distinct file names, got {stems}")
    exe = soffice_path()
    if exe is None:
        raise XlcollabError(f"LibreOffice (soffice) not found: {INSTALL_HINT}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, f"-env:UserInstallation={profile_dir().resolve().as_uri()}", "--headless", "--norestore",
           "--nologo", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(outdir), *map(str, paths)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise XlcollabError(f"LibreOffice did not finish recalculating within {timeout:.0f} s") from None
    results = [outdir / f"{stem}.xlsx" for stem in stems]
    missing = [str(p) for p in results if not p.exists()]
    if missing:
        raise XlcollabError(f"LibreOffice wrote no result for {missing}: {done.stderr.strip() or done.stdout.strip()}")
    return results
