"""Where ratings come from: a file on disk or a member of a zip, and how a MovieLens release folder or zip is
searched for its ratings file and the titles file beside it.

Every file is opened through `core.safeio`: regular files only (a FIFO, device or folder is refused before a
byte is read), a zip's members checked from its directory, and every stream capped (total size, and the length
of one line, so a 1 GB "title" is refused after a megabyte)."""
from __future__ import annotations

import codecs
import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xlcollab.core import safeio
from xlcollab.errors import DataError

RELEASES = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest")
# Ratings file -> titles file beside it, in the order a release directory or zip is searched.
RELEASE_FILES = (("ratings.csv", "movies.csv"), ("ratings.dat", "movies.dat"), ("u.data", "u.item"))


@dataclass(frozen=True)
class File:
    """One readable file: a path on disk or a member of a zip, with the name messages use."""

    name: str
    open: Callable[[], IO[bytes]]
    basename: str

    def head(self, n: int = 65536) -> bytes:
        with self.open() as fh:
            return fh.read(n)

    def read(self) -> bytes:
        with self.open() as fh:
            return fh.read()


def disk_file(path: Path) -> File:
    def opener() -> IO[bytes]:
        lim = safeio.limits()
        fh = safeio.open_regular(path, cap=lim.file)
        return io.BufferedReader(safeio.Capped(fh, cap=lim.file, name=str(path), line=lim.line), 1 << 20)
    return File(str(path), opener, path.name)


def _zip_file(zpath: Path, member: str) -> File:
    name = f"{zpath}/{member}"

    def opener() -> IO[bytes]:
        lim = safeio.limits()
        zf = safeio.open_zip(zpath, name=str(zpath))
        try:
            stream = zf.open(member)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            zf.close()
            raise DataError(f"{name}: cannot read it from the zip ({exc})") from None
        capped = safeio.Capped(_Unpacked(stream, name), cap=lim.part, name=name, line=lim.line, on_close=zf.close)
        return io.BufferedReader(capped, 1 << 20)
    return File(name, opener, member.rsplit("/", 1)[-1])


class _Unpacked(io.RawIOBase):
    """A zip member's stream whose unpacking errors (a bad checksum, a damaged stream) are one DataError line."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        super().__init__()
        self.stream, self.name = stream, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.stream.read(len(buffer))
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{self.name}: damaged inside the zip ({exc})") from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.stream.close()
        super().close()


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when valid; otherwise each line on its own: UTF-8 where it is valid, Latin-1
    where not (ml-100k u.item and ml-1m movies.dat are Latin-1; a UTF-8 file with one stray byte keeps the rest)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "".join(decode_line(line) for line in data.removeprefix(codecs.BOM_UTF8).splitlines(keepends=True))


def decode_line(line: bytes) -> str:
    """One line as UTF-8, or as Latin-1 when it is not valid UTF-8."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


class LinesAsUtf8(io.RawIOBase):
    """A byte stream re-encoded line by line as UTF-8 (`decode_line`), for a file that is not UTF-8 throughout."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw, self.pending, self.out = raw, b"", b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.out:
            chunk = self.raw.read(1 << 20)
            if not chunk:
                self.out, self.pending = decode_line(self.pending).encode(), b""
                break
            lines = (self.pending + chunk).split(b"\n")
            self.pending = lines.pop()
            self.out = "\n".join(decode_line(line) for line in lines).encode() + b"\n"
        n = min(len(buffer), len(self.out))
        buffer[:n], self.out = self.out[:n], self.out[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()



def _release_pair(names: dict[str, object]) -> tuple[object, object | None] | None:
    """Given basename -> handle of one folder, the (ratings, titles) pair of a MovieLens release."""
    for rname, tname in RELEASE_FILES:
        if rname in names:
            return names[rname], names.get(tname)
    return None


def from_directory(path: Path) -> tuple[File, File | None]:
    names = {p.name: p for p in path.iterdir() if p.is_file()}
    pair = _release_pair(names)
    if pair is None:  # a folder holding one extracted release, e.g. ~/Downloads/ml-100k/
        subs = [d for d in sorted(path.iterdir()) if d.is_dir()
                and _release_pair({p.name: p for p in d.iterdir() if p.is_file()})]
        if len(subs) == 1:
            return from_directory(subs[0])
        found = ", ".join(d.name for d in subs)
        raise DataError(f"{path}: no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in this folder"
                        + (f"; it holds several releases ({found}): name one" if subs else ""))
    rpath, tpath = pair
    return disk_file(rpath), (disk_file(tpath) if tpath is not None else None)


def _from_zip(path: Path) -> tuple[File, File | None]:
    with safeio.open_zip(path, name=str(path)) as zf:
        members = [m for m in zf.namelist() if not m.endswith("/")]
    folders: dict[str, dict[str, str]] = {}
    for m in members:
        folder, _, base = m.rpartition("/")
        folders.setdefault(folder, {})[base] = m
    for folder in sorted(folders, key=lambda f: (f.count("/") if f else -1, f)):
        pair = _release_pair(folders[folder])
        if pair is not None:
            rm, tm = pair
            return _zip_file(path, rm), (_zip_file(path, tm) if tm is not None else None)
    csvs = [m for m in members if m.lower().endswith((".csv", ".tsv", ".txt", ".data", ".dat"))]
    if len(csvs) == 1:  # a zipped custom CSV
        return _zip_file(path, csvs[0]), None
    shown = ", ".join(members[:8]) + (", ..." if len(members) > 8 else "")
    raise DataError(f"{path}: unknown format: no MovieLens ratings file (u.data, ratings.dat or ratings.csv) "
                    f"in this zip; it holds: {shown or 'nothing'}")


def locate(path: Path) -> tuple[File, File | None]:
    """The ratings file and, when the release has one beside it, the titles file."""
    if not path.exists():
        hint = (f" (to fetch that release: python -c \"from xlcollab.core.data import download; "
                f"download('{path}', '.')\")" if str(path) in RELEASES else "")
        raise DataError(f"{path}: no such file or directory{hint}")
    if path.is_dir():
        return from_directory(path)
    safeio.check_regular(path, what="ratings file")  # before anything opens it: a FIFO would block for ever
    if zipfile.is_zipfile(path):
        return _from_zip(path)
    titles = None
    for rname, tname in RELEASE_FILES:
        if path.name == rname and (path.parent / tname).is_file():
            titles = disk_file(path.parent / tname)
    if path.name in ("movies.csv", "movies.dat", "u.item"):
        raise DataError(f"{path}: this is the release's titles file; pass its ratings file "
                        f"or the folder that holds both")
    return disk_file(path), titles
