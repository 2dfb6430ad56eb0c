"""The one safe way out to a user's file: whole or not at all, into a regular file, one writer at a time.

`atomic_write` writes into the regular file a path names (through a symlink: its target, the link kept; a folder,
device, FIFO or socket refused by `write_target`): a temporary file beside it, fsync, one `os.replace`, under an
advisory lock (`locked`) that a second writer waits on for a bounded time (XLCOLLAB_LOCK_WAIT_S, default 30 s).
Temporary files are named `.NAME.xlcollab-PID-RANDOM.tmp`, so the next writer removes what a killed one left. A
full disk, a read-only file system or a refused permission is one line (`safeio.os_words`), and the original
file stays as it was. Errors are raised as the caller's XlcollabError subclass (`kind`).
"""
from __future__ import annotations

import glob
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from xlcollab.core.safeio import Kind, describe_mode, os_words
from xlcollab.errors import DataError

try:
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range locks instead
    fcntl = None
    import msvcrt

LOCK_WAIT_S = 30.0  # how long a second writer waits for the first before refusing (XLCOLLAB_LOCK_WAIT_S)
TEMP_MARK = ".xlcollab-"


def write_target(path: str | Path, *, kind: Kind = DataError, what: str = "file", make_folders: bool = True) -> Path:
    """The regular file a write to `path` lands in: a symlink's final target (the link itself is kept).

    Refuses a folder, device, FIFO or socket, and a path under something that is not a folder; the folder may be
    missing when `make_folders` (the write creates it), but the first existing one above must be a writable folder.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise kind(f"{path}: cannot write it ({os_words(exc)})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise kind(f"{path}: {describe_mode(st.st_mode)}, not a {what}; give a file name")
    folder = target.parent
    if not make_folders and not folder.exists():
        raise kind(f"{path}: cannot write it (the folder {folder} does not exist)")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise kind(f"{path}: cannot write it ({folder} is not a folder)")
    if not os.access(folder, os.W_OK):
        why = "the file system is read-only" if _read_only(folder) else "permission denied"
        raise kind(f"{path}: cannot write into {folder} ({why})")
    return target


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1))
    except (OSError, AttributeError):
        return False


_GUARD = threading.Lock()
_HELD: dict[str, list] = {}  # real path -> [threading.RLock, depth, lock file descriptor or None]


def lock_file_of(target: Path) -> Path:
    """The advisory lock file beside a file being written: .NAME.xlcollab-lock."""
    return target.with_name(f".{target.name}{TEMP_MARK}lock")


@contextmanager
def locked(path: str | Path, *, kind: Kind = DataError, wait: float | None = None) -> Iterator[Path]:
    """Hold the advisory write lock of `path` (re-entrant in a process); a second writer waits up to `wait` s.

    The lock is an flock on .NAME.xlcollab-lock beside the file (released by the kernel if the process dies;
    the file is removed on release). Yields the real path of the file.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    key = str(target)
    if wait is None:
        try:
            wait = float(os.environ.get("XLCOLLAB_LOCK_WAIT_S") or LOCK_WAIT_S)
        except ValueError:
            shown = os.environ["XLCOLLAB_LOCK_WAIT_S"]
            raise kind(f"XLCOLLAB_LOCK_WAIT_S must be a number of seconds, found {shown!r}") from None
    with _GUARD:
        entry = _HELD.setdefault(key, [threading.RLock(), 0, None])
    if not entry[0].acquire(timeout=wait):
        raise kind(f"{path}: another thread of this program is writing it; try again when it has finished")
    try:
        if entry[1] == 0:
            entry[2] = _acquire_file_lock(target, path, kind, wait)
        entry[1] += 1
        try:
            yield target
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                _release_file_lock(target, entry[2])
                entry[2] = None
    finally:
        entry[0].release()


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _acquire_file_lock(target: Path, shown: str | Path, kind: Kind, wait: float) -> int:
    lock = lock_file_of(target)
    deadline = time.monotonic() + wait
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise kind(f"{shown}: cannot create its folder ({os_words(exc)})") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise kind(f"{shown}: cannot write beside it ({os_words(exc)}); the file is unchanged") from None
        if _try_lock(fd):
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except OSError:
                same = False
            if same:  # not a lock file its last holder removed between our open and our lock
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)
            continue
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        if time.monotonic() >= deadline:
            who = f" (process {holder})" if holder.isdigit() else ""
            raise kind(f"{shown}: another xlcollab process{who} is writing it; waited {wait:g} s; nothing was "
                       "written; try again when it has finished")
        time.sleep(0.05)


def _release_file_lock(target: Path, fd: int | None) -> None:
    if fd is None:
        return
    if fcntl is not None:
        try:
            os.unlink(lock_file_of(target))  # while still held: a waiter that opened it notices and retries
        except OSError:
            pass
        os.close(fd)
    else:
        os.close(fd)
        try:
            os.unlink(lock_file_of(target))
        except OSError:
            pass


_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # mkstemp names of xlcollab before the lock


def stale_temps(target: Path) -> list[Path]:
    """Temporary files a killed writer of `target` left beside it (only the lock holder may call this)."""
    pattern = glob.escape(str(target.with_name(f".{target.name}{TEMP_MARK}"))) + "*.tmp"
    found = [Path(p) for p in glob.glob(pattern)]
    for p in glob.glob(glob.escape(str(target.with_name(f".{target.name}."))) + "????????.tmp"):
        m = _LEGACY_TEMP.match(Path(p).name)
        if m and m["name"] == target.name and TEMP_MARK not in p:
            found.append(Path(p))
    return found


@contextmanager
def atomic_write(path: str | Path, *, kind: Kind = DataError, what: str = "file", new_mode: int = 0o644,
                 keep_mode: bool = True, make_folders: bool = True) -> Iterator[BinaryIO]:
    """Write a file whole or not at all: yields a temporary file beside the target; on a clean exit it is
    fsynced and renamed over the target (a symlink's target), under the target's lock.

    On any failure the temporary file is removed and the target is untouched; an OSError (disk full,
    read-only file system, permission) becomes one `kind` line saying so.
    """
    target = write_target(path, kind=kind, what=what, make_folders=make_folders)
    with locked(target, kind=kind):
        for stale in stale_temps(target):
            stale.unlink(missing_ok=True)
        tmp = target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as exc:
            raise kind(f"{path}: cannot write it ({os_words(exc)}); the file is unchanged") from None
        try:
            with os.fdopen(fd, "w+b") as fh:  # readable too: a writer may check what it wrote before the rename
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            mode = stat.S_IMODE(os.stat(target).st_mode) if keep_mode and target.exists() else new_mode
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise kind(f"{path}: cannot write it ({os_words(exc)}); the file is unchanged") from None
            raise
    sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
