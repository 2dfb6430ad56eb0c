"""Tools of the hostile-input suite (tests/test_hostile_*.py): hostile files made by code, and a runner that
measures what one xlcollab process cost (seconds, peak memory) and what it said.

Every case asserts the same four things of a refusal: exit status 1, one line on stderr, bounded time and
memory, and the input byte-identical (`Refusal.check`).
"""
from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from helpers import sha  # noqa: F401  (the hostile tests take it from here)

ROOT = Path(__file__).resolve().parent.parent
#: a bound no refusal should come near: an xlcollab process that imports torch (and triton) peaks at 450-750 MB
#: here; the issue's bombs took 4-12 GB. Cases with smaller bombs compare with `baseline_mb` instead.
MAX_RSS_MB = 1500
MAX_SECONDS = 60  # generous: the test machine is shared; a hang or a bomb takes far longer


@dataclass
class Run:
    """One finished xlcollab process: exit status, output, seconds, peak resident memory (MB)."""

    code: int
    out: str
    err: str
    seconds: float
    peak_mb: float
    killed: bool

    def refused(self, *needles: str, max_mb: float = MAX_RSS_MB, max_s: float = MAX_SECONDS) -> str:
        """Assert a clean refusal (exit 1, one line naming every needle, bounded time and memory); the line."""
        assert not self.killed, f"hung: killed after {self.seconds:.0f} s"
        assert self.code == 1, (self.code, self.out[-2000:], self.err[-2000:])
        assert "Traceback" not in self.err and self.err.count("\n") == 1, self.err[-3000:]
        assert self.err.startswith("xlcollab: error: "), self.err
        for needle in needles:
            assert re.search(needle, self.err), (needle, self.err)
        assert self.peak_mb < max_mb, f"peak memory {self.peak_mb:.0f} MB"
        assert self.seconds < max_s, f"{self.seconds:.1f} s"
        return self.err.strip()

    def ok(self) -> Run:
        assert not self.killed and self.code == 0, (self.code, self.err[-3000:])
        return self


def xlcollab(*args: str | Path, env: dict[str, str] | None = None, timeout: float = MAX_SECONDS,
             cwd: Path | None = None) -> Run:
    """Run `python -m xlcollab ARGS` and measure it: its own peak RSS comes from wait4's rusage of that child."""
    return python("-m", "xlcollab", *map(str, args), env=env, timeout=timeout, cwd=cwd)


def python(*args: str, env: dict[str, str] | None = None, timeout: float = MAX_SECONDS, cwd: Path | None = None) -> Run:
    """Run the test's Python with `args`, killed after `timeout` s; stdout/stderr through files (no pipe deadlock)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    out_dir = Path(cwd or ROOT)
    start = time.monotonic()
    with _scratch("out") as out, _scratch("err") as err:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, env=full_env, cwd=out_dir,
                                preexec_fn=_cap_address_space)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                killed = True
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return Run(proc.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   time.monotonic() - start, usage.ru_maxrss / 1024, killed)


@functools.lru_cache(maxsize=None)
def baseline_mb(command: str) -> float:
    """Peak memory of a small successful `xlcollab COMMAND` (what the imports alone cost on this machine)."""
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="xlcollab-baseline-"))
    if command == "run":
        book = folder / "g.xlsx"
        book.write_bytes((ROOT / "workbooks" / "graddesc.xlsx").read_bytes())
        return xlcollab("run", book, "--sheet", "adam", "--epochs", "1").ok().peak_mb
    if command == "fit":
        ratings = folder / "r.csv"
        ratings.write_text("userId,movieId,rating\n1,1,3\n1,2,4\n2,1,5\n2,2,1\n")
        return xlcollab("fit", ratings, "--epochs", "1").ok().peak_mb
    raise ValueError(command)


#: address space a measured process may take: a regression that allocates what the issue saw (4-12 GB) fails with
#: MemoryError here instead of swamping a shared machine (torch's own mappings take about 1-2 GB of it)
ADDRESS_SPACE_CAP = 8 << 30


def _cap_address_space() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def _scratch(name: str):
    import tempfile
    return tempfile.TemporaryFile(prefix=f"xlcollab-hostile-{name}-")


def kill_after(args: list[str], delay: float, env: dict[str, str] | None = None) -> int:
    """Start `python ARGS`, SIGKILL it after `delay` s (if still running); its exit status (-9 when killed)."""
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


# -- hostile workbooks ------------------------------------------------------------------------------------------------
def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None], *, extra: dict[str, bytes] | None = None,
            compress: int = zipfile.ZIP_DEFLATED) -> Path:
    """A copy of workbook `src` with parts replaced (bytes) or removed (None) and `extra` parts appended."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for info in zin.infolist():
            data = changes.get(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def part_of(book: Path, sheet: str) -> str:
    """The zip part of a sheet (through workbook.xml and its rels)."""
    from xlcollab.book.ooxml import Package
    with Package(book) as pkg:
        return pkg.workbook().parts[sheet]


def with_sheet_prefix(src: Path, dst: Path, sheet: str, prolog: bytes, *, body_insert: bytes = b"") -> Path:
    """`src` with the sheet's XML given a new prolog (a DTD, say) and `body_insert` put inside <sheetData>."""
    part = part_of(src, sheet)
    with zipfile.ZipFile(src) as z:
        xml = z.read(part)
    xml = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)
    if body_insert:
        xml = xml.replace(b"<sheetData>", b"<sheetData>" + body_insert, 1)
    return rewrite(src, dst, {part: b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + prolog + xml})


def _patch_headers(path: Path, member: str, fields: list[tuple[str, int, int, int | None]]) -> Path:
    """Overwrite fields of `member`'s central-directory ("central") and local ("local") headers in place:
    (header, offset, width in bytes, value or None to leave it)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        n = int.from_bytes(data[central + 28:central + 30], "little")
        if data[central + 46:central + 46 + n] == name:
            start = {"central": central, "local": int.from_bytes(data[central + 42:central + 46], "little")}
            for header, offset, width, value in fields:
                if value is not None:
                    at = start[header] + offset
                    data[at:at + width] = value.to_bytes(width, "little")
            path.write_bytes(bytes(data))
            return path
        central = data.find(b"PK\x01\x02", central + 4)
    raise KeyError(member)


def lie_about_size(path: Path, member: str, size: int) -> Path:
    """Patch `member`'s uncompressed size in the zip's central directory and local header (a lying archive)."""
    return _patch_headers(path, member, [("central", 24, 4, size), ("local", 22, 4, size)])


def flag_member(path: Path, member: str, *, flag_bits: int | None = None, method: int | None = None) -> Path:
    """Set a member's general-purpose flags (bit 0: encrypted) or compression method in both of its headers."""
    return _patch_headers(path, member, [("central", 8, 2, flag_bits), ("central", 10, 2, method),
                                         ("local", 6, 2, flag_bits), ("local", 8, 2, method)])


def in_process(capsys, *args: str | Path) -> Run:
    """`xlcollab ARGS` through `xlcollab.cli.main` in this process (for refusals that allocate nothing: no
    interpreter start, no torch import); peak memory is not measured (0)."""
    from xlcollab.cli import main
    start = time.monotonic()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Run(code, out, err, time.monotonic() - start, 0.0, False)
