"""Hostile workbooks and paths (issue 12): each is refused with one line, in bounded time and memory, and the file is
left byte-identical; a path that is not a plain file is never replaced.

Everything hostile is made here by code: zip bombs (real ones under lowered caps, and a lying directory under the
default caps), entity bombs and external entities in a sheet's XML, undefined entities, truncated XML, 64 MB of
whitespace, encrypted and unknown-compression members, devices, FIFOs and symlinks. Each process is measured
(`hostile.xlcollab`: its own peak RSS from wait4, its seconds) so a bomb that got through would show as memory.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from hostile import (ROOT, baseline_mb, flag_member, lie_about_size, part_of, rewrite, sha, with_sheet_prefix,
                     xlcollab)

GRADDESC = ROOT / "workbooks" / "graddesc.xlsx"
RUN = ("run", "--sheet", "adam", "--epochs", "2")
LOL = (b"<!DOCTYPE worksheet [" + b'<!ENTITY l0 "lol">'  # billion laughs: &l8; is 3 * 10**8 characters
       + b"".join(b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10) for i in range(1, 9)) + b"]>\n")
CELL = b'<row r="900"><c r="A900" t="inlineStr"><is><t>%s</t></is></c></row>'


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return Path(shutil.copy(GRADDESC, tmp_path / "graddesc.xlsx"))


def run_refused(path: Path, *needles: str, args: tuple[str, ...] = RUN, env: dict | None = None,
                max_mb: float | None = None) -> str:
    """`xlcollab run` on `path`: refused in one line naming the file and the needles; the file unchanged."""
    digest = sha(path) if path.is_file() else None
    kw = {} if max_mb is None else {"max_mb": max_mb}
    line = xlcollab(args[0], path, *args[1:], env=env).refused(*needles, **kw)
    if digest is not None:
        assert sha(path) == digest
    return line


# -- XML inside the package ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["billion laughs", "external entity", "external DTD", "utf-16 DTD"])
def test_a_dtd_anywhere_is_refused_before_any_work(book: Path, tmp_path: Path, case: str) -> None:
    """Entity bombs and XXE live in a DTD; no OOXML part has one, so the file is refused on opening."""
    hostile = tmp_path / "hostile.xlsx"
    if case == "billion laughs":
        with_sheet_prefix(book, hostile, "adam", LOL, body_insert=CELL % b"&l8;")
    elif case == "external entity":
        with_sheet_prefix(book, hostile, "adam", b'<!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
                          body_insert=CELL % b"&x;")
    elif case == "external DTD":
        with_sheet_prefix(book, hostile, "data", b'<!DOCTYPE w SYSTEM "http://example.invalid/evil.dtd">\n')
    else:  # the same in UTF-16, where a byte search for "<!DOCTYPE" finds nothing
        part = part_of(book, "adam")
        with zipfile.ZipFile(book) as z:
            xml = re.sub(rb"^<\?xml[^>]*\?>", b"", z.read(part))
        text = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE w [<!ENTITY x "y">]>' + xml.decode()
        rewrite(book, hostile, {part: text.encode("utf-16")})
    line = run_refused(hostile, "hostile.xlsx", r"declares a DTD \(<!DOCTYPE>\)")
    assert "passwd" not in line and "root:" not in line


@pytest.mark.parametrize("case,needle", [
    ("undefined entity", r"sheet 'adam': corrupt workbook: .*Entity 'x' not defined"),
    ("truncated", r"sheet 'adam': corrupt workbook: .*Premature end of data"),
    ("64 MB of whitespace", r"sheet 'adam': corrupt workbook: .*Text node too long"),
    ("not XML", r"sheet 'adam': corrupt workbook: .*not well-formed"),
])
def test_a_bad_sheet_is_refused_before_the_run(book: Path, tmp_path: Path, case: str, needle: str) -> None:
    hostile = tmp_path / "hostile.xlsx"
    part = part_of(book, "adam")
    with zipfile.ZipFile(book) as z:
        xml = z.read(part)
    if case == "undefined entity":
        with_sheet_prefix(book, hostile, "adam", b"", body_insert=CELL % b"&x;")
    elif case == "truncated":
        rewrite(book, hostile, {part: xml[: xml.rindex(b">", 0, len(xml) * 2 // 3) + 1]})  # cut after a whole tag
    elif case == "64 MB of whitespace":
        with_sheet_prefix(book, hostile, "adam", b"", body_insert=b" " * (64 << 20))
    else:
        rewrite(book, hostile, {part: b"\x89PNG not xml at all"})
    run_refused(hostile, needle)


def test_a_bad_sheet_the_action_only_reads_is_refused_too(book: Path, tmp_path: Path) -> None:
    hostile = with_sheet_prefix(book, tmp_path / "hostile.xlsx", "data", b"", body_insert=b"\t" * (32 << 20))
    run_refused(hostile, r"sheet 'data'", "Text node too long")


# -- the zip itself ------------------------------------------------------------------------------------------------
def test_a_2_gib_member_is_refused_from_the_directory_alone(book: Path, tmp_path: Path) -> None:
    """The directory says 2 GiB (the default cap is 1 GiB): refused without unpacking a byte of it."""
    hostile = rewrite(book, tmp_path / "hostile.xlsx", {}, extra={"xl/media/zeros.bin": b"\0" * 4096})
    lie_about_size(hostile, "xl/media/zeros.bin", 2 << 30)
    run_refused(hostile, r"xl/media/zeros\.bin unpacks to 2,048 MB, over the 1,024 MB limit")


def test_a_real_zip_bomb_under_lowered_caps(book: Path, tmp_path: Path) -> None:
    """64 MB of zeros packed into 64 KB, nothing reads the part: refused by the cap (here 16 MB) before unpacking."""
    hostile = rewrite(book, tmp_path / "hostile.xlsx", {}, extra={"xl/media/zeros.bin": b"\0" * (64 << 20)})
    assert hostile.stat().st_size < 400_000
    env = {"XLCOLLAB_MAX_PART_MB": "16"}
    run_refused(hostile, r"unpacks to 64 MB, over the 16 MB limit", env=env, max_mb=baseline_mb("run") + 32)
    env = {"XLCOLLAB_MAX_PART_MB": "100", "XLCOLLAB_MAX_ZIP_MB": "32"}
    run_refused(hostile, r"unpack to more than 32 MB in all", env=env, max_mb=baseline_mb("run") + 32)


def test_a_member_that_unpacks_to_more_than_its_directory_says(book: Path, tmp_path: Path) -> None:
    """A lying directory (1 KB claimed, 32 MB inside) must not help: the stream stops at the claim, the checksum fails."""
    hostile = rewrite(book, tmp_path / "hostile.xlsx", {}, extra={"xl/media/zeros.bin": b"\0" * (32 << 20)})
    lie_about_size(hostile, "xl/media/zeros.bin", 1024)
    run_refused(hostile, r"xl/media/zeros\.bin", r"checksum|Bad CRC", max_mb=baseline_mb("run") + 16)


@pytest.mark.parametrize("case,needle", [("encrypted", "is encrypted"), ("bzip2", "compression method 12"),
                                         ("unknown", "compression method 99")])
def test_members_we_cannot_read_safely_are_refused(book: Path, tmp_path: Path, case: str, needle: str) -> None:
    hostile = Path(shutil.copy(book, tmp_path / "hostile.xlsx"))
    part = part_of(book, "adam")
    if case == "encrypted":
        flag_member(hostile, part, flag_bits=1)
    else:
        flag_member(hostile, part, method=12 if case == "bzip2" else 99)
    run_refused(hostile, needle)


def test_traversal_names_in_the_package_are_never_extracted(book: Path, tmp_path: Path) -> None:
    """Members named ../x and /abs/x ride along untouched; nothing is ever written outside the workbook."""
    evil = {"../../escaped.txt": b"escaped", "/tmp/absolute-escape.txt": b"escaped"}
    (tmp_path / "sub").mkdir()
    hostile = rewrite(book, tmp_path / "sub" / "hostile.xlsx", {}, extra=evil)
    xlcollab(*RUN[:1], hostile, *RUN[1:]).ok()
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    with zipfile.ZipFile(hostile) as z:
        assert {n: z.read(n) for n in evil} == evil and z.testzip() is None


# -- paths that are not plain files ------------------------------------------------------------------------------------
def test_a_fifo_as_workbook_or_out_never_blocks(book: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xlsx"
    os.mkfifo(fifo)
    run_refused(fifo, "pipe.xlsx: a FIFO \\(named pipe\\), not a workbook file")
    digest = sha(book)
    xlcollab(*RUN[:1], book, *RUN[1:], "--out", fifo).refused(r"pipe\.xlsx: a FIFO")
    assert sha(book) == digest and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_as_out_is_refused_not_replaced(book: Path, tmp_path: Path) -> None:
    """The issue's `--out /dev/null` (as root it replaced the machine's /dev/null), on a null device made here."""
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    digest = sha(book)
    xlcollab(*RUN[:1], book, *RUN[1:], "--out", null).refused(r"null: a character device, not a workbook file")
    assert stat.S_ISCHR(os.stat(null).st_mode) and sha(book) == digest
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_link_to_dev_zero_is_refused_before_reading(tmp_path: Path) -> None:
    link = tmp_path / "zero.xlsx"
    link.symlink_to("/dev/zero")
    run = xlcollab(*RUN[:1], link, *RUN[1:])
    run.refused("zero.xlsx: a character device", max_mb=baseline_mb("run") + 32, max_s=30)


@pytest.mark.parametrize("where", ["workbook", "out"])
def test_a_folder_as_workbook_or_out(book: Path, tmp_path: Path, where: str) -> None:
    folder = tmp_path / "folder.xlsx"
    folder.mkdir()
    if where == "workbook":
        run_refused(folder, "folder.xlsx: a folder, not a workbook file")
    else:
        digest = sha(book)
        xlcollab(*RUN[:1], book, *RUN[1:], "--out", folder).refused("folder.xlsx: a folder")
        assert sha(book) == digest and folder.is_dir() and not any(folder.iterdir())


def test_a_symlinked_workbook_updates_its_target_and_keeps_the_link(book: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.xlsx"
    link.symlink_to(book)
    before = sha(book)
    xlcollab(*RUN[:1], link, *RUN[1:]).ok()
    assert link.is_symlink() and os.readlink(link) == str(book)
    assert sha(book) != before  # the target holds the run
    with zipfile.ZipFile(book) as z:
        assert z.testzip() is None


def test_a_symlinked_out_writes_its_target(book: Path, tmp_path: Path) -> None:
    target, link = tmp_path / "real.xlsx", tmp_path / "out.xlsx"
    target.write_bytes(b"old")
    link.symlink_to(target)
    xlcollab(*RUN[:1], book, *RUN[1:], "--out", link).ok()
    assert link.is_symlink() and zipfile.is_zipfile(target)
