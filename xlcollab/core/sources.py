"""Where ratings come from: a file on disk or a member of a zip, and how a MovieLens release folder or zip is
searched for its ratings file and the titles file beside it."""
from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
    return File(str(path), lambda: open(path, "rb"), path.name)


def _zip_file(zpath: Path, member: str) -> File:
    def opener() -> IO[bytes]:
        # The member stream keeps the archive's file open after the ZipFile itself is closed.
        with zipfile.ZipFile(zpath) as zf:
            return zf.open(member)
    return File(f"{zpath}/{member}", opener, member.rsplit("/", 1)[-1])


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when valid, else Latin-1 (ml-100k u.item, ml-1m movies.dat)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")



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
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from None
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
