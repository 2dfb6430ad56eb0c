"""The data layer: every MovieLens format on generated files, the embedded set, encode/split/crosstab, bad input."""
from __future__ import annotations

import csv
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlcollab.core.data import (Ratings, crosstab, download, embedded_dir, encode, load_ratings, split_indices)
from xlcollab.errors import DataError, SettingsError

# The same five ratings in every format: (user, item, rating, timestamp).
ROWS = [(196, 242, 3.0, 881250949), (186, 302, 3.5, 891717742), (22, 377, 1.0, 878887116),
        (196, 377, 4.0, 881250950), (7, 242, 5.0, 891350000)]
TITLES = {242: "Kolya (1996)", 302: "L.A. Confidential (1997)", 377: "Misérables, Les (1995)"}


def _expect(r: Ratings, *, titles: bool = True, timestamp: bool = True) -> None:
    f = r.frame
    assert list(f.columns) == ["user", "item", "rating"] + (["timestamp"] if timestamp else [])
    assert f["user"].tolist() == [u for u, _, _, _ in ROWS]
    assert f["item"].tolist() == [i for _, i, _, _ in ROWS]
    assert f["rating"].tolist() == [x for _, _, x, _ in ROWS]
    assert f["user"].dtype == np.int64 and f["item"].dtype == np.int64 and f["rating"].dtype == np.float64
    if timestamp:
        assert f["timestamp"].tolist() == [t for _, _, _, t in ROWS] and f["timestamp"].dtype == np.int64
        assert encode(r).times.tolist() == [t for _, _, _, t in ROWS]  # what the session effects read
    else:
        assert encode(r).times is None
    if titles:
        assert r.titles is not None and r.titles.to_dict() == TITLES
        assert r.title(377) == "Misérables, Les (1995)"
    else:
        assert r.titles is None and r.title(377) == "377"


def _write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def _zip(zpath: Path, folder: Path, top: str, extra: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/", "")
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{top}/{p.name}")
        for name, text in (extra or {}).items():
            zf.writestr(f"{top}/{name}", text)
    return zpath


def _ml100k(d: Path) -> Path:
    _write(d / "u.data", "".join(f"{u}\t{i}\t{int(x) if x == int(x) else x}\t{t}\n" for u, i, x, t in ROWS))
    _write(d / "u.item", "".join(f"{i}|{t}|01-Jan-1995||http://us.imdb.com/x|0|1|0\n" for i, t in TITLES.items()),
           encoding="latin-1")
    return d


def _ml1m(d: Path, encoding: str) -> Path:
    _write(d / "ratings.dat", "".join(f"{u}::{i}::{x:g}::{t}\n" for u, i, x, t in ROWS))
    _write(d / "movies.dat", "".join(f"{i}::{t}::Drama|Comedy\n" for i, t in TITLES.items())
           + "1::Star Wars: Episode IV - A New Hope (1977)::Action\n", encoding=encoding)
    return d


def _mllatest(d: Path) -> Path:
    _write(d / "ratings.csv", "userId,movieId,rating,timestamp\n"
           + "".join(f"{u},{i},{x:.1f},{t}\n" for u, i, x, t in ROWS), newline="\r\n")
    _write(d / "movies.csv", "movieId,title,genres\n"
           + "".join(f'{i},"{t}",Drama|Comedy\n' if "," in t else f"{i},{t},Drama\n" for i, t in TITLES.items()),
           newline="\r\n")
    return d


# --------------------------------------------------------------------------- every format reads exactly

def test_ml100k_file_directory_and_zip(tmp_path):
    d = _ml100k(tmp_path / "ml-100k")
    assert (d / "u.item").read_bytes().count(b"Mis\xe9rables") == 1  # really Latin-1
    _expect(load_ratings(d))
    _expect(load_ratings(d / "u.data"))  # titles from the u.item beside it
    _expect(load_ratings(tmp_path))  # a folder holding the extracted release
    z = _zip(tmp_path / "ml-100k.zip", d, "ml-100k", {"u1.base": "1\t2\t3\t4\n", "README": "read me\n"})
    r = load_ratings(z)
    _expect(r)
    assert r.source == str(z)


def test_ml100k_split_files_and_plain_tsv_without_titles(tmp_path):
    p = _write(tmp_path / "u1.base", "".join(f"{u}\t{i}\t{x:g}\t{t}\n" for u, i, x, t in ROWS))
    _expect(load_ratings(p), titles=False)
    p3 = _write(tmp_path / "three.tsv", "".join(f"{u}\t{i}\t{x:g}\n" for u, i, x, _ in ROWS))
    _expect(load_ratings(p3), titles=False, timestamp=False)


@pytest.mark.parametrize("release,top,encoding", [("ml-1m", "ml-1m", "latin-1"), ("ml-10m", "ml-10M100K", "utf-8")])
def test_ml1m_ml10m_dat(tmp_path, release, top, encoding):
    d = _ml1m(tmp_path / top, encoding)
    assert ("Misérables".encode(encoding) in (d / "movies.dat").read_bytes())
    for src in (d, d / "ratings.dat", _zip(tmp_path / f"{release}.zip", d, top, {"tags.dat": "1::2::x::3\n"})):
        r = load_ratings(src)
        assert r.titles is not None
        assert r.titles.at[1] == "Star Wars: Episode IV - A New Hope (1977)"  # ':' inside a title survives
        _expect(Ratings(r.frame, r.titles.drop(1), r.source))


def test_ml_latest_csv_crlf_quoted_comma(tmp_path):
    d = _mllatest(tmp_path / "ml-latest")
    assert b'\r\n377,"Mis\xc3\xa9rables, Les (1995)",Drama|Comedy\r\n' in (d / "movies.csv").read_bytes()
    _expect(load_ratings(d))
    _expect(load_ratings(d / "ratings.csv"))
    z = _zip(tmp_path / "ml-latest.zip", d, "ml-latest",
             {"links.csv": "movieId,imdbId,tmdbId\n", "tags.csv": "userId,movieId,tag,timestamp\n"})
    _expect(load_ratings(z))


def test_lf_csv_and_titles_argument(tmp_path):
    p = _write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n"
               + "".join(f"{u},{i},{x},{t}\n" for u, i, x, t in ROWS))
    _expect(load_ratings(p), titles=False)
    m = _mllatest(tmp_path / "other") / "movies.csv"
    _expect(load_ratings(p, titles=m))
    _expect(load_ratings(p, titles=TITLES))


def test_custom_csv_named_columns_sniffed_delimiter(tmp_path):
    p = _write(tmp_path / "mine.txt", "who;what;stars;note\n"
               + "".join(f"u{u};{i};{x};n\n" for u, i, x, _ in ROWS))
    r = load_ratings(p, user_col="who", item_col="what", rating_col="stars")
    assert list(r.frame.columns) == ["user", "item", "rating"]
    assert r.frame["user"].tolist() == [f"u{u}" for u, _, _, _ in ROWS]  # text ids stay text
    assert r.frame["item"].tolist() == [i for _, i, _, _ in ROWS] and r.frame["item"].dtype == np.int64
    assert r.frame["rating"].tolist() == [x for _, _, x, _ in ROWS]
    assert r.titles is None
    # the same file with an explicit delimiter, and a tab-separated file whose names are common aliases
    assert load_ratings(p, user_col="who", item_col="what", rating_col="stars", sep=";").frame.equals(r.frame)
    t = _write(tmp_path / "t.tsv", "user_id\tmovie_id\trating\ttitle\n"
               + "".join(f"{u}\t{i}\t{x}\t{TITLES[i]}\n" for u, i, x, _ in ROWS))
    _expect(load_ratings(t), timestamp=False)  # titles from the file's own title column


def test_zipped_custom_csv(tmp_path):
    z = tmp_path / "mine.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data/mine.csv", "a,b,c\n" + "".join(f"{u},{i},{x}\n" for u, i, x, _ in ROWS))
    _expect(load_ratings(z, user_col="a", item_col="b", rating_col="c"), titles=False, timestamp=False)


def test_dataframe(tmp_path):
    df = pd.DataFrame({"u": [r[0] for r in ROWS], "i": [r[1] for r in ROWS], "r": [r[2] for r in ROWS],
                       "x": 0, "timestamp": [r[3] for r in ROWS]})
    _expect(load_ratings(df, user_col="u", item_col="i", rating_col="r", titles=TITLES))
    assert load_ratings(df.rename(columns={"u": "user", "i": "item", "r": "rating"})).source == "DataFrame"
    ints = df.assign(r=df["r"].astype(int).astype(str))  # ratings as text digits
    assert load_ratings(ints, user_col="u", item_col="i", rating_col="r").frame["rating"].tolist() == [3, 3, 1, 4, 5]


# --------------------------------------------------------------------------- the embedded set

@pytest.fixture(scope="module")
def reference_rows():
    """The embedded ratings parsed by the csv module, independently of pandas."""
    with open(embedded_dir() / "ratings.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["userId", "movieId", "rating", "timestamp"]
    return [(int(u), int(i), float(x)) for u, i, x, _ in rows[1:]]


@pytest.fixture(scope="module")
def embedded():
    return load_ratings()


def test_embedded_matches_csv_module(embedded, reference_rows):
    ref = reference_rows
    f = embedded.frame
    assert embedded.source == "ml-latest-small (embedded)"
    assert (len(f), f["user"].nunique(), f["item"].nunique()) == (100_836, 610, 9_724)
    assert (embedded.n_users, embedded.n_items, len(embedded)) == (610, 9_724, 100_836)
    assert np.array_equal(f["user"].to_numpy(), [u for u, _, _ in ref])
    assert np.array_equal(f["item"].to_numpy(), [i for _, i, _ in ref])
    assert np.array_equal(f["rating"].to_numpy(), [x for _, _, x in ref])
    assert len(embedded.titles) == 9_742
    assert embedded.title(1) == "Toy Story (1995)"
    assert embedded.title(11) == "American President, The (1995)"  # quoted comma in movies.csv
    assert embedded.title(999_999) == "999999"
    assert "610 users" in repr(embedded)


def test_crosstab_fastai_15x15(embedded, reference_rows):
    ref = reference_rows
    ucount = Counter(u for u, _, _ in ref)
    icount = Counter(i for _, i, _ in ref)
    users = sorted(ucount, key=lambda u: (-ucount[u], u))[:15]
    items = sorted(icount, key=lambda i: (-icount[i], i))[:15]
    cell = {(u, i): x for u, i, x in ref}
    ct = crosstab(embedded)
    assert ct.shape == (15, 15)
    assert ct.index.tolist() == users and ct.columns.tolist() == items
    assert ct.index[0] == 414 and ct.columns[0] == 356  # user 414; Forrest Gump
    expected = np.array([[cell.get((u, i), np.nan) for i in items] for u in users])
    np.testing.assert_array_equal(ct.to_numpy(), expected)
    assert int(ct.notna().to_numpy().sum()) == 211  # of 225 (fast.ai's 2017 snapshot had 206)
    assert ct.attrs["titles"][:2] == ["Forrest Gump (1994)", "Shawshank Redemption, The (1994)"]
    assert ct.attrs["titles"] == [embedded.title(i) for i in items]


def test_crosstab_ties_broken_by_id():
    df = pd.DataFrame({"user": [5, 5, 3, 3, 9, 1], "item": [20, 10, 10, 30, 20, 40], "rating": [1, 2, 3, 4, 5, 1.5]})
    ct = crosstab(load_ratings(df), 2)
    assert ct.index.tolist() == [3, 5] and ct.columns.tolist() == [10, 20]
    np.testing.assert_array_equal(ct.to_numpy(), [[3.0, np.nan], [2.0, 1.0]])
    assert ct.attrs["titles"] == ["10", "20"]
    assert crosstab(load_ratings(df), 15).shape == (4, 4)
    with pytest.raises(SettingsError, match="crosstab size"):
        crosstab(load_ratings(df), 0)


def test_small_ratings_fixture(small_ratings):
    assert len(small_ratings.frame) == 559
    assert small_ratings.n_users == 25 and small_ratings.n_items == 25
    assert small_ratings.title(356) == "Forrest Gump (1994)"


# --------------------------------------------------------------------------- encode and split

def test_encode_round_trip(embedded):
    e = encode(embedded)
    f = embedded.frame
    assert e.users.dtype == np.int64 and e.items.dtype == np.int64 and e.ratings.dtype == np.float32
    assert np.array_equal(e.user_ids, np.unique(f["user"])) and np.array_equal(e.item_ids, np.unique(f["item"]))
    assert np.array_equal(e.user_ids[e.users], f["user"]) and np.array_equal(e.item_ids[e.items], f["item"])
    assert (e.users.min(), e.users.max(), e.items.max()) == (0, 609, 9_723)
    assert np.array_equal(e.ratings, f["rating"].to_numpy(np.float32))
    assert len(e.user_ids) == 610 and len(e.item_ids) == 9_724


def test_encode_times_from_dates_and_none_from_text():
    base = {"user": [1, 2], "item": [3, 4], "rating": [4.0, 5.0]}
    stamps = pd.to_datetime(["1970-01-02 00:00:00", "2000-01-01 00:00:01"])
    dates = load_ratings(pd.DataFrame({**base, "timestamp": stamps}))
    assert encode(dates).times.tolist() == [86_400, 946_684_801]
    zoned = pd.to_datetime(["1970-01-02 01:00:00+01:00", "2000-01-01 00:00:01+00:00"], utc=True)
    assert encode(load_ratings(pd.DataFrame({**base, "timestamp": zoned}))).times.tolist() == [86_400, 946_684_801]
    assert encode(load_ratings(pd.DataFrame({**base, "timestamp": ["soon", "later"]}))).times is None


def test_encode_text_ids():
    r = load_ratings(pd.DataFrame({"user": ["bob", "al", "bob"], "item": ["x", "y", "y"], "rating": [1, 2, 3]}))
    e = encode(r)
    assert e.user_ids.tolist() == ["al", "bob"] and e.users.tolist() == [1, 0, 1]
    assert e.item_ids.tolist() == ["x", "y"] and e.items.tolist() == [0, 1, 1]


def test_split_protocol():
    n = 100_836
    train, valid = split_indices(n)
    perm = np.random.default_rng(42).permutation(n)
    assert np.array_equal(train, perm[:80_668]) and np.array_equal(valid, perm[80_668:])
    assert len(train) == int(n * 0.8) and len(valid) == n - int(n * 0.8)
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(n))  # disjoint and covering
    t2, v2 = split_indices(n)
    assert np.array_equal(t2, train) and np.array_equal(v2, valid)  # reproducible
    t3, _ = split_indices(n, seed=1)
    assert not np.array_equal(t3, train)
    t4, v4 = split_indices(10, valid_pct=0.25, seed=7)
    p = np.random.default_rng(7).permutation(10)
    assert np.array_equal(t4, p[:7]) and np.array_equal(v4, p[7:])
    t0, v0 = split_indices(10, valid_pct=0.0)
    assert len(t0) == 10 and len(v0) == 0


@pytest.mark.parametrize("n,pct", [(10, 1.0), (10, -0.1), (-1, 0.2), (2.5, 0.2)])
def test_split_bad_settings(n, pct):
    with pytest.raises(SettingsError):
        split_indices(n, pct)


# --------------------------------------------------------------------------- bad input: one line, names the place

def _error(src, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_ratings(src, **kw)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


HEADER = "userId,movieId,rating,timestamp\n"
GOOD = "".join(f"{u},{i},{x},{t}\n" for u, i, x, t in ROWS)  # lines 2..6


def test_missing_file(tmp_path):
    p = tmp_path / "nope" / "ratings.csv"
    msg = _error(p)
    assert str(p) in msg and "no such file" in msg
    assert "no such file" in _error(_write(tmp_path / "r.csv", HEADER + GOOD), titles=tmp_path / "movies.csv")


def test_empty_files(tmp_path):
    empty = _write(tmp_path / "ratings.csv", "")
    msg = _error(empty)
    assert str(empty) in msg and "empty file" in msg
    only_header = _write(tmp_path / "h.csv", HEADER)
    msg = _error(only_header)
    assert str(only_header) in msg and "no ratings" in msg and "only a header" in msg
    assert "empty file" in _error(_write(tmp_path / "blank.csv", "\n\n  \n"))


def test_missing_columns(tmp_path):
    p = _write(tmp_path / "r.csv", "userId,movieId,timestamp\n1,2,3\n")
    msg = _error(p)
    assert str(p) in msg and "missing column 'rating'" in msg
    assert "'userId', 'movieId', 'timestamp'" in msg
    msg = _error(_write(tmp_path / "s.csv", "a,b,c\n1,2,3\n"), user_col="a")
    assert "missing columns 'item', 'rating'" in msg and "'a', 'b', 'c'" in msg
    msg = _error(_write(tmp_path / "t.csv", "a,b,c\n1,2,3\n"), user_col="uid", item_col="b", rating_col="c")
    assert "missing column 'uid' (user_col)" in msg
    msg = _error(pd.DataFrame({"a": [1]}), user_col="who")
    assert "missing columns 'who' (user_col), 'item', 'rating'; the DataFrame has columns 'a'" in msg


def test_non_numeric_rating_names_row_and_column(tmp_path):
    lines = GOOD.splitlines(keepends=True)
    p = _write(tmp_path / "ratings.csv", HEADER + "".join(lines) + "1,2,abc,3\n", newline="\r\n")  # line 7
    assert _error(p) == f"{p}: row 7, column rating: 'abc' is not a number"
    u = _write(tmp_path / "u.data", "1\t2\t3\t4\n5\t6\tfive\t8\n")
    assert _error(u) == f"{u}: row 2, column 3 (rating): 'five' is not a number"
    dat = _write(tmp_path / "ratings.dat", "1::2::3::4\n1::3::4::5\n1::4::x::5\n")
    assert _error(dat) == f"{dat}: row 3, column 3 (rating): 'x' is not a number"
    c = _write(tmp_path / "c.csv", "who,what,stars\n1,2,3\n1,3,4.5.1\n")
    msg = _error(c, user_col="who", item_col="what", rating_col="stars")
    assert msg == f"{c}: row 3, column stars (rating): '4.5.1' is not a number"


@pytest.mark.parametrize("value", ["", "NaN", "nan", "NA"])
def test_blank_or_nan_rating(tmp_path, value):
    p = _write(tmp_path / "ratings.csv", HEADER + GOOD + f"9,9,{value},1\n")
    assert _error(p) == f"{p}: row 7, column rating: no rating (blank or NaN)"


def test_blank_lines_keep_row_numbers(tmp_path):
    p = _write(tmp_path / "ratings.csv", HEADER + GOOD + "\n\n9,9,bad,1\n")  # line 9
    assert "row 9, column rating: 'bad'" in _error(p)
    q = _write(tmp_path / "ok.csv", HEADER + GOOD + "\n\n")
    _expect(load_ratings(q), titles=False)


def test_duplicates_name_both_rows_and_ids(tmp_path):
    p = _write(tmp_path / "ratings.csv", HEADER + GOOD + "22,377,2.0,1\n")  # line 7 repeats line 4
    msg = _error(p)
    assert msg.startswith(f"{p}: rows 4 and 7: user 22 rated item 377 twice")
    assert "columns userId (user), movieId (item)" in msg and "1 duplicate pair in all" in msg
    d = _write(tmp_path / "u.data", "1\t2\t3\t4\n1\t2\t5\t4\n1\t2\t4\t4\n")
    assert "rows 1 and 2: user 1 rated item 2 twice" in _error(d) and "2 duplicate pairs" in _error(d)
    df = pd.DataFrame({"user": [1, 2, 1], "item": [5, 5, 5], "rating": [1, 2, 3]}, index=[10, 11, 12])
    assert "DataFrame: index 10 and 12: user 1 rated item 5 twice" in _error(df)


def test_bad_ids(tmp_path):
    p = _write(tmp_path / "ratings.csv", HEADER + GOOD + ",5,3,1\n")
    assert _error(p) == f"{p}: row 7, column userId (user): blank user id"
    q = _write(tmp_path / "ratings.csv", HEADER + GOOD + "8,x12,3,1\n")
    assert _error(q) == f"{q}: row 7, column movieId (item): 'x12' is not a whole-number item id"


def test_wrong_field_count(tmp_path):
    p = _write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\t3\t4\t9\n")
    assert _error(p) == f"{p}: row 2: 5 fields where the file has 4"
    d = _write(tmp_path / "ratings.dat", "1::2::3::4\n1::3::3::4::9\n")
    assert _error(d) == f"{d}: row 2: 5 fields where the file has 4"


def test_dataframe_bad_values():
    df = pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [4.0, "x", 3.0]})
    assert _error(df) == "DataFrame: index 1, column rating: 'x' is not a number"
    df2 = pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [4.0, np.inf]})
    assert _error(df2) == "DataFrame: index 1, column rating: inf is not a finite number"
    assert "no ratings" in _error(pd.DataFrame({"user": [], "item": [], "rating": []}))


def test_unknown_formats(tmp_path):
    b = tmp_path / "pic.png"
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert "unknown format" in _error(b) and str(b) in _error(b)
    z = tmp_path / "book.xlsx"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("[Content_Types].xml", "<x/>")
        zf.writestr("xl/workbook.xml", "<x/>")
    msg = _error(z)
    assert str(z) in msg and "unknown format" in msg and "xl/workbook.xml" in msg
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    assert "no MovieLens ratings file" in _error(empty_dir) and str(empty_dir) in _error(empty_dir)
    five = _write(tmp_path / "five.tsv", "1\t2\t3\t4\t5\n")
    assert "no header row and 5 columns" in _error(five)
    mov = _mllatest(tmp_path / "rel") / "movies.csv"
    assert "titles file" in _error(mov)
    bad_zip = _write(tmp_path / "broken.zip", "PK\x03\x04 not really")
    assert str(bad_zip) in _error(bad_zip)


def test_headerless_file_with_column_names(tmp_path):
    p = _write(tmp_path / "u.data", "1\t2\t3\t4\n")
    msg = _error(p, user_col="uid")
    assert "missing column 'uid' (user_col)" in msg and "'user', 'item', 'rating', 'timestamp'" in msg


# --------------------------------------------------------------------------- download (never the network)

def test_download_offline_error_leaves_nothing(tmp_path):
    with pytest.raises(DataError) as info:
        download("ml-100k", tmp_path, base_url="http://127.0.0.1:9/", timeout=5)
    msg = str(info.value)
    assert "cannot download http://127.0.0.1:9/ml-100k.zip" in msg and "offline" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_download_unknown_release(tmp_path):
    with pytest.raises(DataError, match="unknown MovieLens release 'ml-5m'"):
        download("ml-5m", tmp_path)


def test_download_from_local_server_is_atomic(tmp_path):
    """A file:// URL stands in for GroupLens: the zip arrives whole, and a non-zip is refused."""
    src = tmp_path / "mirror"
    _zip(_mkdir(src) / "ml-100k.zip", _ml100k(tmp_path / "ml-100k"), "ml-100k")
    (src / "ml-1m.zip").write_text("<html>not found</html>")
    out = download("ml-100k", tmp_path / "dl", base_url=src.as_uri())
    assert out == tmp_path / "dl" / "ml-100k.zip"
    _expect(load_ratings(out))
    with pytest.raises(DataError, match="not a zip file"):
        download("ml-1m", tmp_path / "dl", base_url=src.as_uri())
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["ml-100k.zip"]


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_duplicates_with_huge_ids_and_none(tmp_path):
    big = 2 ** 40
    df = pd.DataFrame({"user": [big, 1, big], "item": [2 ** 30, 5, 2 ** 30], "rating": [1, 2, 3]})
    assert f"index 0 and 2: user {big} rated item {2 ** 30} twice" in _error(df)
    ok = load_ratings(df.iloc[:2])
    assert ok.frame["user"].tolist() == [big, 1] and ok.frame["user"].dtype == np.int64
    same_user_other_items = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1], "rating": [1, 2, 3]})
    assert len(load_ratings(same_user_other_items)) == 3


def test_release_name_hint_and_explicit_dat_separator(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = _error("ml-1m")
    assert msg.startswith("ml-1m: no such file or directory") and "download('ml-1m', '.')" in msg
    d = _ml1m(tmp_path / "ml-1m", "latin-1")
    assert load_ratings(d / "ratings.dat", sep="::").frame["rating"].tolist() == [x for _, _, x, _ in ROWS]
