"""The one safe way into a user's file: regular files only, sizes capped before and while reading.

Every reader of a file a user names (workbook, ratings file or zip, model file) goes through here; every writer
goes through `core.atomic`, which shares these words and checks:
- `open_regular` opens only a regular file (a symlink is followed); a folder, device, FIFO or socket is refused
  with one line, without blocking on a FIFO or reading a device.
- `open_zip` checks an archive's directory before anything is read: each member's uncompressed size under
  `limits().part`, all of them under `limits().zip`, no encryption, deflate or stored only. `Capped` counts what a
  stream really gives (a lying size must not help) and can bound the length of one line.
- `os_words` says an OSError in a few words; `printable` escapes control characters for a terminal.
Errors are raised as the caller's XlcollabError subclass (`kind`), so a workbook says WorkbookError and a ratings
file DataError.
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from xlcollab.errors import DataError, XlcollabError

Kind = Callable[[str], XlcollabError]
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Caps on what is read, in bytes; each has an environment variable (in MB) to raise or lower it."""

    part: int   # one zip member, uncompressed (a worksheet, a ratings.csv inside a release zip)
    zip: int    # all members of one zip together
    file: int   # one plain file (a ratings CSV, a model file)
    line: int   # one line of a ratings or titles file


_LIMIT_ENV = {"part": ("XLCOLLAB_MAX_PART_MB", 1024), "zip": ("XLCOLLAB_MAX_ZIP_MB", 4096),
              "file": ("XLCOLLAB_MAX_FILE_MB", 4096), "line": ("XLCOLLAB_MAX_LINE_MB", 1)}


def limits() -> Limits:
    """The caps now in force (environment read on each call, so a test or a user can change them)."""
    values = {}
    for name, (env, default_mb) in _LIMIT_ENV.items():
        text = os.environ.get(env, "")
        try:
            mb = float(text) if text.strip() else default_mb
        except ValueError:
            raise XlcollabError(f"{env} must be a number of megabytes, found {text!r}") from None
        values[name] = max(1, int(mb * MiB))
    return Limits(**values)


def mb(n: int) -> str:
    """A byte count as messages write it: "1,024 MB"."""
    return f"{n / MiB:,.0f} MB" if n >= MiB else f"{n:,} bytes"


# -- what a path is ---------------------------------------------------------------------------------------------------
def describe_mode(mode: int) -> str:
    """"a folder", "a FIFO (named pipe)", ... for a file type that is not a regular file."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


_OS_WORDS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
             errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
             errno.ENOENT: "no such file or folder", errno.EISDIR: "is a folder",
             errno.ENOTDIR: "a part of the path is not a folder", errno.ENAMETOOLONG: "the name is too long",
             errno.EIO: "input/output error", errno.ELOOP: "too many symbolic links"}
if hasattr(errno, "EDQUOT"):
    _OS_WORDS[errno.EDQUOT] = "disk quota exceeded"


def os_words(exc: OSError) -> str:
    """An OSError as a few words ("no space left on the device"), never a traceback."""
    return _OS_WORDS.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()


def check_regular(path: str | Path, *, kind: Kind = DataError, what: str = "file") -> os.stat_result:
    """stat of an existing regular file (symlinks followed); one-line `kind` error for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise kind(f"{path}: no such file") from None
    except OSError as exc:
        raise kind(f"{path}: cannot read it ({os_words(exc)})") from None
    if not stat.S_ISREG(st.st_mode):
        raise kind(f"{path}: {describe_mode(st.st_mode)}, not a {what}")
    return st


def open_regular(path: str | Path, *, kind: Kind = DataError, what: str = "file", cap: int | None = None) -> BinaryIO:
    """Open an existing regular file for reading, refusing anything else before reading a byte of it.

    Opened non-blocking (a FIFO swapped in after the check cannot hang us) and checked again on the open file;
    `cap` refuses a file larger than that many bytes.
    """
    check_regular(path, kind=kind, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise kind(f"{path}: cannot read it ({os_words(exc)})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise kind(f"{path}: {describe_mode(st.st_mode)}, not a {what}")
    if cap is not None and st.st_size > cap:
        os.close(fd)
        raise kind(f"{path}: {mb(st.st_size)}, over the {mb(cap)} limit for a {what} (XLCOLLAB_MAX_FILE_MB raises it)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


# -- zip archives -----------------------------------------------------------------------------------------------------
_KNOWN_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def open_zip(source: str | Path | IO[bytes], *, name: str, kind: Kind = DataError) -> zipfile.ZipFile:
    """A zip archive whose directory passed the checks (sizes under the caps, no encryption, known compression).

    `source` is a path (opened through `open_regular`) or an open binary file. Nothing but the directory is read.
    """
    owned = isinstance(source, (str, Path))
    fh = open_regular(source, kind=kind) if owned else source
    try:
        zf = SafeZip(fh, owned=owned)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        if owned:
            fh.close()
        raise kind(f"{name}: not a readable zip file ({exc})") from None
    try:
        check_zip_directory(zf, name=name, kind=kind)
    except XlcollabError:
        zf.close()
        raise
    return zf


class SafeZip(zipfile.ZipFile):
    """A ZipFile over an open file that closes that file with itself when it opened it (`open_zip`)."""

    def __init__(self, fh: IO[bytes], *, owned: bool) -> None:
        self._owned_file = fh if owned else None
        super().__init__(fh)

    def close(self) -> None:
        super().close()
        if self._owned_file is not None:
            self._owned_file.close()
            self._owned_file = None


def check_zip_directory(zf: zipfile.ZipFile, *, name: str, kind: Kind, lim: Limits | None = None) -> None:
    """Refuse an archive from its directory: a member over `part`, the sum over `zip`, encryption, odd compression."""
    lim = lim or limits()
    total = 0
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            raise kind(f"{name}: the member {info.filename} is encrypted; xlcollab reads no encrypted files")
        if info.compress_type not in _KNOWN_COMPRESSION:
            raise kind(f"{name}: the member {info.filename} uses compression method {info.compress_type}; "
                       "only stored and deflated members are read")
        if info.file_size > lim.part:
            raise kind(f"{name}: the member {info.filename} unpacks to {mb(info.file_size)}, over the {mb(lim.part)} "
                       "limit for one member (XLCOLLAB_MAX_PART_MB raises it)")
        total += info.file_size
        if total > lim.zip:
            raise kind(f"{name}: its members unpack to more than {mb(lim.zip)} in all (XLCOLLAB_MAX_ZIP_MB raises it)")


class Capped(io.RawIOBase):
    """A read-only stream that refuses to give more than `cap` bytes, or a line longer than `line` bytes."""

    def __init__(self, raw: IO[bytes], *, cap: int, name: str, kind: Kind = DataError, line: int | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.raw, self.cap, self.name, self.kind, self.line = raw, cap, name, kind, line
        self.seen = 0
        self.run = 0  # bytes since the last newline
        self.lineno = 1
        self.on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        self.seen += n
        if self.seen > self.cap:
            raise self.kind(f"{self.name}: larger than the {mb(self.cap)} limit (XLCOLLAB_MAX_PART_MB / "
                            "XLCOLLAB_MAX_FILE_MB raise it)")
        if self.line is not None and n:
            self._check_lines(data)
        buffer[:n] = data
        return n

    def _check_lines(self, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            self.run += (len(data) if nl < 0 else nl) - start
            if self.run > self.line:
                raise self.kind(f"{self.name}: line {self.lineno} is longer than {mb(self.line)} "
                                "(XLCOLLAB_MAX_LINE_MB raises it); not a ratings or titles file?")
            if nl < 0:
                return
            self.run, self.lineno, start = 0, self.lineno + 1, nl + 1

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
            if self.on_close is not None:
                self.on_close()
        super().close()


def printable(text: object) -> str:
    """Text safe to print on a terminal: control characters (escape sequences included) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
