"""Writes that cannot half-happen (issue 12): `kill -9` anywhere in a commit, a full disk, a read-only file system,
two writers at once. The file is always either its old bytes or a whole new workbook; a later run removes what a
killed one left; nothing reports "saved" when its changes were overwritten.

Disk full and read-only are real where the machine lets the test mount a small tmpfs (root); a second test makes
fsync fail with ENOSPC in-process, so the path is covered everywhere.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from hostile import ROOT, kill_after, sha, xlcollab
from xlcollab.book.filebook import FileBook
from xlcollab.core import atomic, safeio
from xlcollab.errors import DataError, WorkbookError

GRADDESC = ROOT / "workbooks" / "graddesc.xlsx"


def two_sheet_book(path: Path, ballast_mb: int = 0) -> Path:
    """A workbook with sheets s1 and s2 (A1 = 0 on each), plus an incompressible part to make commits slow."""
    wb = Workbook()
    wb.active.title = "s1"
    wb.active["A1"] = 0
    wb.create_sheet("s2")["A1"] = 0
    wb.save(path)
    if ballast_mb:
        with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as z:
            z.writestr("xl/media/ballast.bin", random.Random(0).randbytes(ballast_mb << 20))
    return path


def cell(path: Path, sheet: str, ref: str = "A1"):
    return FileBook(path).read(sheet, ref)[0][0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if atomic.TEMP_MARK in p.name)


# -- kill -9 ------------------------------------------------------------------------------------------------------------
COMMIT_LOOP = """
import sys
from xlcollab.book.filebook import FileBook
book = FileBook(sys.argv[1])
i = 1
while True:
    book.write("s1", "A1", i)
    book.commit()
    i += 1
"""


def test_kill_9_at_random_points_of_commits(tmp_path: Path) -> None:
    """15 processes committing in a loop, each SIGKILLed at a random moment: after each, the file is a whole
    workbook (its zip checks, its cell holds a count), and the next writer removes the temporary file left."""
    path = two_sheet_book(tmp_path / "book.xlsx", ballast_mb=12)
    rng = random.Random(12)
    values, killed_with_temp = [], 0
    for _ in range(15):
        assert kill_after(["-c", COMMIT_LOOP, str(path)], rng.uniform(0.8, 3.0)) == -9
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
        values.append(cell(path, "s1"))
        killed_with_temp += bool([n for n in leftovers(tmp_path) if n.endswith(".tmp")])
        book = FileBook(path)  # the next writer: commits, and clears what the killed one left
        book.write("s2", "A1", len(values))
        book.commit()
        assert leftovers(tmp_path) == []
        assert cell(path, "s2") == len(values)
    assert all(isinstance(v, int) for v in values) and max(values) > 0  # commits did land between the kills
    print(f"kills that left a temporary file behind (all removed by the next writer): {killed_with_temp} of 15")


# -- two writers ------------------------------------------------------------------------------------------------------
WRITER = """
import sys, time, pathlib
from xlcollab.book.filebook import FileBook
from xlcollab.errors import XlcollabError
path, sheet, value, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), *map(pathlib.Path, sys.argv[4:6])
book = FileBook(path)
for name in sys.argv[6].split(","):                   # every writer reads before any writes
    book.read(name, "A1")
ready.touch()
while not go.exists():
    time.sleep(0.01)
book.write(sheet, "A1", value)
try:
    book.commit()
    print("saved")
except XlcollabError as exc:
    print("refused:", exc)
"""


def race(path: Path, tmp_path: Path, jobs: list[tuple[str, int]], reads: str | None = None) -> list[str]:
    """Start one WRITER per job (reading `reads`, default its own sheet); once all have read the file, let them
    commit at once; what each said."""
    go = tmp_path / "go"
    go.unlink(missing_ok=True)
    ready = [tmp_path / f"ready{i}" for i in range(len(jobs))]
    for r in ready:
        r.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), sheet, str(value), str(r), str(go),
                               reads or sheet],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
             for (sheet, value), r in zip(jobs, ready)]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    return [p.communicate(timeout=60)[0].strip() for p in procs]


def test_two_writers_on_different_sheets_both_land(tmp_path: Path) -> None:
    """The issue's lost update: both read, both write another tab, both say saved, and both tabs are there."""
    path = two_sheet_book(tmp_path / "book.xlsx", ballast_mb=4)
    for round_ in range(3):
        said = race(path, tmp_path, [("s1", 100 + round_), ("s2", 200 + round_)])
        assert said == ["saved", "saved"]
        assert (cell(path, "s1"), cell(path, "s2")) == (100 + round_, 200 + round_)


def test_a_writer_whose_inputs_changed_refuses(tmp_path: Path) -> None:
    """Both read both sheets: the later one's results rest on a sheet the earlier one changed, so it writes nothing."""
    path = two_sheet_book(tmp_path / "book.xlsx", ballast_mb=4)
    said = race(path, tmp_path, [("s1", 1), ("s2", 2)], reads="s1,s2")
    assert sorted(s.split(":")[0] for s in said) == ["refused", "saved"], said
    assert (cell(path, "s1"), cell(path, "s2")) in ((1, 0), (0, 2))


def test_two_writers_on_one_sheet_never_both_say_saved(tmp_path: Path) -> None:
    path = two_sheet_book(tmp_path / "book.xlsx", ballast_mb=4)
    said = race(path, tmp_path, [("s1", 1), ("s1", 2)])
    assert sorted(s.split(":")[0] for s in said) == ["refused", "saved"], said
    winner = 1 if said[0] == "saved" else 2
    assert cell(path, "s1") == winner  # the saved one's change is the one in the file
    refusal = next(s for s in said if s.startswith("refused"))
    assert "another program saved this workbook after xlcollab read it and changed sheet 's1'" in refusal
    assert "nothing was written" in refusal


def test_a_second_writer_waits_a_bounded_time_then_refuses(tmp_path: Path) -> None:
    path = Path(shutil.copy(GRADDESC, tmp_path / "graddesc.xlsx"))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom xlcollab.core import atomic\n"
                               "with atomic.locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(8)",
                               str(path)], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        digest = sha(path)
        run = xlcollab("run", path, "--sheet", "adam", env={"XLCOLLAB_LOCK_WAIT_S": "1"})
        run.refused(rf"another xlcollab process \(process {holder.pid}\) is writing it; waited 1 s; nothing was written")
        assert sha(path) == digest
        xlcollab("run", path, "--sheet", "adam", env={"XLCOLLAB_LOCK_WAIT_S": "60"}).ok()  # waits, then writes
        assert sha(path) != digest
    finally:
        holder.kill()
        holder.wait()


def test_two_solves_of_different_tabs_both_keep_their_results(tmp_path: Path) -> None:
    """The issue's case as the user met it: two `xlcollab solve` processes on one workbook, different tabs."""
    path = Path(shutil.copy(ROOT / "workbooks" / "collab_filter.xlsx", tmp_path / "collab.xlsx"))
    before = {tab: FileBook(path).read_name(tab, "user_factors") for tab in ("dotprod", "movielens_emb")}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "xlcollab", "solve", str(path), "--sheet", tab, "--epochs",
                               "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tab in before]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 and "saved" in out for p, (out, _) in zip(procs, outs)), outs
    after = FileBook(path)
    for tab, start in before.items():
        assert after.read_name(tab, "user_factors") != start, f"{tab}'s solve was lost"


# -- disk full, read-only ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 2 MB tmpfs (needs root and mount rights; skipped elsewhere: the in-process test covers the path)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` up to `leave` free bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))


def test_disk_full_on_a_real_tmpfs(small_tmpfs: Path, tmp_path: Path) -> None:
    path = Path(shutil.copy(GRADDESC, small_tmpfs / "graddesc.xlsx"))
    fill(small_tmpfs, 40_000)
    digest = sha(path)
    xlcollab("run", path, "--sheet", "adam").refused(r"graddesc\.xlsx: cannot write it \(no space left on the "
                                                     r"device\); the file is unchanged")
    assert sha(path) == digest and leftovers(small_tmpfs) == []


def test_a_model_save_on_a_full_disk_keeps_the_old_model(small_tmpfs: Path, small_ratings) -> None:
    from xlcollab.core.fit import CollabFit
    fit = CollabFit(n_factors=64, epochs=1).fit(small_ratings)
    model = fit.save(small_tmpfs / "m.pt")
    old = sha(model)
    fill(small_tmpfs, 20_000)
    with pytest.raises(DataError, match=r"cannot save the model at .*m\.pt: cannot write it \(no space left on the "
                                        r"device\); the file is unchanged"):
        CollabFit(n_factors=64, epochs=1, seed=1).fit(small_ratings).save(model)
    assert sha(model) == old and CollabFit.load(model).n_factors == 64
    assert leftovers(small_tmpfs) == []


def test_a_read_only_file_system(small_tmpfs: Path) -> None:
    path = Path(shutil.copy(GRADDESC, small_tmpfs / "graddesc.xlsx"))
    digest = sha(path)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    xlcollab("run", path, "--sheet", "adam").refused(r"graddesc\.xlsx: cannot write .*the file system is read-only")
    assert sha(path) == digest


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left on the device"),
                                        (errno.EDQUOT, "disk quota exceeded"), (errno.EIO, "input/output error")])
def test_a_failing_fsync_leaves_the_file_and_no_temporary(tmp_path: Path, monkeypatch, code: int, words: str) -> None:
    """ENOSPC and friends simulated in-process (fsync raises), for machines where no tmpfs can be mounted."""
    path = two_sheet_book(tmp_path / "book.xlsx")
    digest = sha(path)
    book = FileBook(path)
    book.write("s1", "A1", 5)

    def failing_fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(WorkbookError, match=f"cannot write it \\({words}\\); the file is unchanged"):
        book.commit()
    monkeypatch.undo()
    assert sha(path) == digest and leftovers(tmp_path) == []
    book.write("s1", "A1", 6)  # the book still works once the disk does
    book.commit()
    assert cell(path, "s1") == 6


def test_fit_movielens_whose_sheet_cannot_be_written_keeps_the_old_model(tmp_path: Path, small_ratings) -> None:
    """The model is complete before the workbook is touched, and replaces the old one only if the sheet landed."""
    from xlcollab import excel
    path = Path(shutil.copy(ROOT / "workbooks" / "collab_filter.xlsx", tmp_path / "collab.xlsx"))
    model = tmp_path / "collab.xlcollab.pt"
    model.write_bytes(b"the previous model")
    path.with_name("~$" + path.name).write_bytes(b"Excel holds it")
    before = sha(path)
    with pytest.raises(WorkbookError, match="open in another application"):
        excel.fit_movielens(FileBook(path), ratings=small_ratings, epochs=1, n_factors=4)
    assert model.read_bytes() == b"the previous model" and sha(path) == before
    assert leftovers(tmp_path) == []


def test_python_helpers_refuse_what_the_cli_refuses(tmp_path: Path) -> None:
    """safeio and atomic directly: a FIFO is refused without blocking; a symlinked target is written through."""
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(DataError, match="a FIFO"):
        safeio.open_regular(fifo)
    with pytest.raises(DataError, match="a FIFO"):
        with atomic.atomic_write(fifo) as fh:
            fh.write(b"x")
    assert time.monotonic() - start < 5
    real, link = tmp_path / "real", tmp_path / "link"
    real.write_bytes(b"old")
    link.symlink_to(real)
    with atomic.atomic_write(link) as fh:
        fh.write(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new" and leftovers(tmp_path) == []
