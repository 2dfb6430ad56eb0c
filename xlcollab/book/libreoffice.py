"""The one LibreOffice launcher: find soffice, make its private profile, start it headless.

Two uses: `recalc` (one `--convert-to` run that recomputes every formula of some workbooks: the oracle our
tests and benchmarks trust) and `unobook.Office` (a long-running soffice driven over UNO). Both find the
executable with `soffice_path` (XLCOLLAB_SOFFICE first), run it through `soffice_command`, and give it a
private profile from `profile_dir` that recalculates every formula on load (OOXMLRecalcMode = 0, "always";
by default a file with cached values keeps them), so what LibreOffice shows comes from the sheet's formulas.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from xlcollab.errors import XlcollabError

INSTALL_HINT = ("install LibreOffice headless and its Python bridge: on Debian/Ubuntu "
                "`apt-get install --no-install-recommends libreoffice-calc-nogui python3-uno` "
                "(python3-uno must match this Python's version, here "
                f"{sys.version_info.major}.{sys.version_info.minor}); or point XLCOLLAB_SOFFICE at soffice")
ENV_VAR = "XLCOLLAB_SOFFICE"
_PLACES = ("/usr/lib/libreoffice/program/soffice", "/opt/libreoffice/program/soffice",
           "/Applications/LibreOffice.app/Contents/MacOS/soffice")

_PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


def soffice_path() -> str | None:
    """The LibreOffice executable: $XLCOLLAB_SOFFICE when set (None if it is not an executable), else found."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    found = shutil.which("soffice") or shutil.which("libreoffice")
    return found or next((p for p in _PLACES if os.path.exists(p)), None)


def available() -> bool:
    """True when soffice is there."""
    return soffice_path() is not None


def require_soffice() -> str:
    """The executable, or XlcollabError saying how to install LibreOffice (or what is wrong with $XLCOLLAB_SOFFICE)."""
    exe = soffice_path()
    if exe is None:
        chosen = os.environ.get(ENV_VAR)
        why = f"{ENV_VAR}={chosen} is not an executable file" if chosen else "soffice is not on PATH"
        raise XlcollabError(f"LibreOffice not found ({why}); {INSTALL_HINT}")
    return exe


def profile_dir(root: str | Path | None = None) -> Path:
    """A LibreOffice user profile that always recalculates on load (made once per folder, reused).

    Default: one per user in the temp folder. Two soffice processes must not share a profile at once
    (the second hands its work to the first), so a long-running instance gets a folder of its own.
    """
    base = Path(root) if root else Path(tempfile.gettempdir()) / f"xlcollab-lo-profile-{os.getuid()}"
    settings = base / "user" / "registrymodifications.xcu"
    if not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(_PROFILE_SETTINGS, encoding="utf-8")
    return base


def soffice_command(*args: str, profile: Path) -> list[str]:
    """The soffice command line: headless, no restore dialog, no logo, this private profile, then `args`."""
    return [require_soffice(), f"-env:UserInstallation={profile.resolve().as_uri()}", "--headless", "--norestore",
            "--nologo", *args]


def recalc(paths: Iterable[str | Path], outdir: str | Path, *, timeout: float = 300) -> list[Path]:
    """Recalculate every formula of each workbook in LibreOffice; return the recalculated .xlsx copies.

    One soffice start for all files (each start costs about a second). Inputs must have distinct stems,
    since each copy is written as `outdir/<stem>.xlsx`.
    """
    paths = [Path(p).resolve() for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise XlcollabError(f"recalc needs distinct file names, got {stems}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = soffice_command("--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(outdir), *map(str, paths),
                          profile=profile_dir())
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise XlcollabError(f"LibreOffice did not finish recalculating within {timeout:.0f} s") from None
    results = [outdir / f"{stem}.xlsx" for stem in stems]
    missing = [str(p) for p in results if not p.exists()]
    if missing:
        raise XlcollabError(f"LibreOffice wrote no result for {missing}: {done.stderr.strip() or done.stdout.strip()}")
    return results
