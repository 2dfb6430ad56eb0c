"""MovieLens ratings in, clean long-form ratings out: readers, validation, encoding, splits, crosstab.

Every MovieLens release a user may have downloaded reads directly (ml-100k ``u.data``/``u.item``,
ml-1m/10m ``ratings.dat``/``movies.dat``, ml-20m/25m/latest ``ratings.csv``/``movies.csv``, each as a
file, a directory or the release's .zip), and so does any CSV or DataFrame with user, item and rating
columns. Bad input raises a one-line DataError naming the file, the row as the user counts it in the
file (line 1 is the header of a CSV), the column and the id.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from xlcollab.errors import DataError, SettingsError

COLUMNS = ("user", "item", "rating")  # canonical column names after loading
EMBEDDED_NAME = "ml-latest-small (embedded)"
RELEASES = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest")
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"

# Ratings file -> titles file beside it, in the order a release directory or zip is searched.
_RELEASE_FILES = (("ratings.csv", "movies.csv"), ("ratings.dat", "movies.dat"), ("u.data", "u.item"))
# Column names accepted without user_col=/item_col=/rating_col= (compared case-insensitively).
_ALIASES = {
    "user": ("user", "userid", "user_id", "users", "uid"),
    "item": ("item", "movieid", "movie_id", "movie", "itemid", "item_id", "items", "iid"),
    "rating": ("rating", "ratings", "score", "stars"),
}
_TITLE_ALIASES = ("title", "movie_title", "name")
_HEADERLESS = ("user", "item", "rating", "timestamp")
_DELIMITERS = (",", "\t", ";", "|")


@dataclass(frozen=True, eq=False)  # eq=False: frames do not compare to a bool
class Ratings:
    """Ratings in long form plus movie titles."""

    frame: pd.DataFrame  # user, item (original ids, int64 where numeric), rating (float64)[, timestamp]
    titles: pd.Series | None  # index: item id, values: title; None when the source has none
    source: str  # what it was read from, for messages

    def title(self, item) -> str:
        """The movie's title, or its id as text when there is none."""
        if self.titles is not None:
            try:
                return str(self.titles.at[item])
            except (KeyError, TypeError, ValueError):
                pass
        return str(item)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        """Number of distinct users."""
        return int(self.frame["user"].nunique())

    @property
    def n_items(self) -> int:
        """Number of distinct rated items."""
        return int(self.frame["item"].nunique())

    def __repr__(self) -> str:
        return (f"Ratings({len(self):,} ratings, {self.n_users:,} users, {self.n_items:,} items, "
                f"titles={'yes' if self.titles is not None else 'no'}, source={self.source!r})")


def embedded_dir() -> Path:
    """The ml-latest-small copy that ships inside the package (the default data set)."""
    return Path(__file__).resolve().parent.parent / "datasets" / "ml-latest-small"


# --------------------------------------------------------------------------- file access

@dataclass(frozen=True)
class _File:
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


def _disk_file(path: Path) -> _File:
    return _File(str(path), lambda: open(path, "rb"), path.name)


def _zip_file(zpath: Path, member: str) -> _File:
    def opener() -> IO[bytes]:
        # The member stream keeps the archive's file open after the ZipFile itself is closed.
        with zipfile.ZipFile(zpath) as zf:
            return zf.open(member)
    return _File(f"{zpath}/{member}", opener, member.rsplit("/", 1)[-1])


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when valid, else Latin-1 (ml-100k u.item, ml-1m movies.dat)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- locating the files

def _release_pair(names: dict[str, object]) -> tuple[object, object | None] | None:
    """Given basename -> handle of one folder, the (ratings, titles) pair of a MovieLens release."""
    for rname, tname in _RELEASE_FILES:
        if rname in names:
            return names[rname], names.get(tname)
    return None


def _from_directory(path: Path) -> tuple[_File, _File | None]:
    names = {p.name: p for p in path.iterdir() if p.is_file()}
    pair = _release_pair(names)
    if pair is None:  # a folder holding one extracted release, e.g. ~/Downloads/ml-100k/
        subs = [d for d in sorted(path.iterdir()) if d.is_dir()
                and _release_pair({p.name: p for p in d.iterdir() if p.is_file()})]
        if len(subs) == 1:
            return _from_directory(subs[0])
        found = ", ".join(d.name for d in subs)
        raise DataError(f"{path}: no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in this folder"
                        + (f"; it holds several releases ({found}): name one" if subs else ""))
    rpath, tpath = pair
    return _disk_file(rpath), (_disk_file(tpath) if tpath is not None else None)


def _from_zip(path: Path) -> tuple[_File, _File | None]:
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


def _locate(path: Path) -> tuple[_File, _File | None]:
    """The ratings file and, when the release has one beside it, the titles file."""
    if not path.exists():
        hint = (f" (to fetch that release: python -c \"from xlcollab.core.data import download; "
                f"download('{path}', '.')\")" if str(path) in RELEASES else "")
        raise DataError(f"{path}: no such file or directory{hint}")
    if path.is_dir():
        return _from_directory(path)
    if zipfile.is_zipfile(path):
        return _from_zip(path)
    titles = None
    for rname, tname in _RELEASE_FILES:
        if path.name == rname and (path.parent / tname).is_file():
            titles = _disk_file(path.parent / tname)
    if path.name in ("movies.csv", "movies.dat", "u.item"):
        raise DataError(f"{path}: this is the release's titles file; pass its ratings file "
                        f"or the folder that holds both")
    return _disk_file(path), titles


# --------------------------------------------------------------------------- reading ratings

@dataclass(frozen=True)
class _Layout:
    """How a ratings file is laid out: delimiter, header, how file columns map to canonical ones."""

    sep: str
    header: bool
    columns: dict[str, str]  # canonical -> column name in the file
    labels: dict[str, str]  # canonical -> how messages name the column
    strict_ids: bool  # MovieLens formats: ids must be integers
    dat: bool = False  # '::' separated, read as ':' taking every other field

    @property
    def first_line(self) -> int:
        return 2 if self.header else 1


def _resolve_columns(found: list[str], name: str, given: dict[str, str | None]) -> dict[str, str]:
    """Map canonical user/item/rating (+ timestamp, title) to the file's columns, or say what is missing."""
    lower = {c.strip().lower(): c for c in reversed(found)}
    out: dict[str, str] = {}
    missing: list[str] = []
    for canon in COLUMNS:
        want = given.get(canon)
        if want is not None:
            if want in found:
                out[canon] = want
            elif want.strip().lower() in lower:
                out[canon] = lower[want.strip().lower()]
            else:
                missing.append(f"'{want}' ({canon}_col)")
            continue
        hit = next((lower[a] for a in _ALIASES[canon] if a in lower), None)
        if hit is None:
            missing.append(f"'{canon}'")
        else:
            out[canon] = hit
    if missing:
        have = ", ".join(f"'{c}'" for c in found)
        what = "the DataFrame" if name == "DataFrame" else "the file"
        raise DataError(f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                        f"{what} has columns {have}; name them with user_col=, item_col=, rating_col=")
    if "timestamp" in lower and "timestamp" not in out.values():
        out["timestamp"] = lower["timestamp"]
    title = next((lower[a] for a in _TITLE_ALIASES if a in lower), None)
    if title is not None and title not in out.values():
        out["title"] = title
    return out


def _layout(file: _File, sep: str | None, given: dict[str, str | None]) -> _Layout:
    """Sniff the delimiter and header from the first line; map the columns."""
    head = file.head()
    text = _decode(head) if head else ""
    if not text.strip():
        raise DataError(f"{file.name}: empty file (no ratings)")
    if b"\x00" in head:
        raise DataError(f"{file.name}: unknown format: a binary file, not a ratings CSV or MovieLens file")
    first = next(line for line in text.splitlines() if line.strip())
    if sep == "::":
        sep = None
    if sep is None and "::" in first:  # ml-1m / ml-10m ratings.dat
        fields = first.split("::")
        if len(fields) != 4 or not all(_is_number(f) for f in fields):
            raise DataError(f"{file.name}: unknown format: '::'-separated but not user::item::rating::timestamp "
                            f"(line 1 reads {first[:60]!r})")
        cols = {c: c for c in _HEADERLESS}
        labels = {c: f"{i + 1} ({c})" for i, c in enumerate(_HEADERLESS)}
        _resolve_columns(list(_HEADERLESS), file.name, given)
        return _Layout(":", False, cols, labels, strict_ids=True, dat=True)
    if sep is None:
        sep = max(_DELIMITERS, key=lambda d: first.count(d))  # ties: the earlier, i.e. ','
    fields = first.split(sep)
    if all(_is_number(f.strip()) for f in fields):  # no header: u.data and friends
        if len(fields) not in (3, 4):
            raise DataError(f"{file.name}: unknown format: no header row and {len(fields)} columns; "
                            f"expected user, item, rating[, timestamp] (or a header naming the columns)")
        names = list(_HEADERLESS[:len(fields)])
        cols = _resolve_columns(names, file.name, given)
        labels = {c: f"{i + 1} ({c})" for i, c in enumerate(names)}
        strict = file.basename == "u.data" or re.fullmatch(r"u[a-z0-9]\.(base|test)", file.basename) is not None
        return _Layout(sep, False, cols, labels, strict_ids=strict)
    try:
        header = [str(c) for c in pd.read_csv(io.StringIO(first), sep=sep, nrows=0).columns]
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{file.name}: cannot read the header row: {exc}") from None
    cols = _resolve_columns(header, file.name, given)
    labels = {c: (n if n == c else f"{n} ({c})") for c, n in cols.items()}
    return _Layout(sep, True, cols, labels, strict_ids=file.basename == "ratings.csv")


def _parse(file: _File, lay: _Layout) -> pd.DataFrame:
    """Read the file with the pandas C engine, translating its errors into DataErrors."""
    kw: dict = dict(sep=lay.sep, skip_blank_lines=False, engine="c")
    if lay.dat:
        kw.update(header=None)  # every field, so that a row with too many fields is an error
    elif lay.header:
        kw.update(header=0)
    else:
        kw.update(header=None, names=list(lay.columns.values()))
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            with file.open() as fh:
                df = pd.read_csv(fh, encoding=encoding, **kw)
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise DataError(f"{file.name}: empty file (no ratings)") from None
        except (pd.errors.ParserError, ValueError) as exc:
            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if m is None:
                raise DataError(f"{file.name}: cannot read as CSV: {str(exc).splitlines()[0]}") from None
            want, line, saw = (int(g) for g in m.groups())
            if lay.dat:
                want, saw = (want + 1) // 2, (saw + 1) // 2
            raise DataError(f"{file.name}: row {line}: {saw} fields where the file has {want}") from None
    if lay.dat:
        df = df.iloc[:, [0, 2, 4, 6]].set_axis(list(_HEADERLESS), axis=1)
    else:
        df = df[list(lay.columns.values())].set_axis(list(lay.columns), axis=1)
    return df


def _clean(df: pd.DataFrame, name: str, row: Callable[[object], str], labels: dict[str, str],
           strict_ids: bool) -> pd.DataFrame:
    """Validate ids and ratings and cast dtypes; row(index) says where a row is ('row 7', 'index 7')."""
    def where(index, col: str) -> str:
        return f"{name}: {row(index)}, column {labels[col]}"

    df = df.dropna(how="all", subset=[c for c in df.columns if c != "title"])  # blank lines
    if df.empty:
        raise DataError(f"{name}: no ratings" + (" (only a header)" if row(0) == "row 2" else ""))
    out = {}
    for col in ("user", "item"):
        s = df[col]
        blank = s.isna()
        if blank.any():
            raise DataError(f"{where(blank.idxmax(), col)}: blank {col} id")
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(object)
        elif pd.api.types.is_integer_dtype(s):
            s = s.astype(np.int64)
        elif pd.api.types.is_float_dtype(s):
            if np.all(np.mod(s.to_numpy(), 1) == 0):
                s = s.astype(np.int64)
        else:
            num = pd.to_numeric(s, errors="coerce")
            if strict_ids:
                bad = num.isna() | (np.mod(num.fillna(0), 1) != 0)
                if bad.any():
                    i = bad.idxmax()
                    raise DataError(f"{where(i, col)}: {str(s.at[i])!r} is not a whole-number {col} id")
                s = num.astype(np.int64)
            elif num.notna().all() and np.all(np.mod(num.to_numpy(), 1) == 0):
                s = num.astype(np.int64)
            else:
                s = pd.Series(s.astype(str).str.strip().to_numpy(dtype=object), index=s.index)
        out[col] = s
    r = df["rating"]
    if pd.api.types.is_bool_dtype(r) or not pd.api.types.is_numeric_dtype(r):
        num = pd.to_numeric(r.astype(object).where(r.notna(), None), errors="coerce")
        bad = num.isna() & r.notna() & (r.astype(str).str.strip() != "")
        if bad.any():
            i = bad.idxmax()
            raise DataError(f"{where(i, 'rating')}: {str(r.at[i]).strip()!r} is not a number")
        r = num
    r = r.astype(np.float64)
    if r.isna().any():
        raise DataError(f"{where(r.isna().idxmax(), 'rating')}: no rating (blank or NaN)")
    if not np.isfinite(r.to_numpy()).all():
        i = pd.Series(~np.isfinite(r.to_numpy()), index=r.index).idxmax()
        raise DataError(f"{where(i, 'rating')}: {float(r.at[i])!r} is not a finite number")
    out["rating"] = r
    if "timestamp" in df:
        t = df["timestamp"]
        if pd.api.types.is_numeric_dtype(t) and t.notna().all() and np.all(np.mod(t.to_numpy(), 1) == 0):
            t = t.astype(np.int64)
        out["timestamp"] = t
    if "title" in df:
        out["title"] = df["title"]
    frame = pd.DataFrame(out, index=df.index)
    if _may_have_duplicates(frame["user"], frame["item"]):
        later = frame.duplicated(["user", "item"], keep="first")
        if later.any():
            j = later.idxmax()
            u, it = frame.at[j, "user"], frame.at[j, "item"]
            i = ((frame["user"] == u) & (frame["item"] == it)).idxmax()
            k = int(later.sum())
            word, first = row(i).split()
            raise DataError(f"{name}: {'rows' if word == 'row' else word} {first} and {row(j).split()[-1]}: "
                            f"user {u} rated item {it} twice (columns {labels['user']}, {labels['item']}; "
                            f"{k} duplicate pair{'s' if k > 1 else ''} in all); keep one rating per (user, item)")
    return frame.reset_index(drop=True)


def _may_have_duplicates(users: pd.Series, items: pd.Series) -> bool:
    """Quick check for repeated (user, item) pairs: one sort of packed int64 keys (2x faster than pandas)."""
    if users.dtype != np.int64 or items.dtype != np.int64 or len(users) < 2:
        return len(users) > 1
    u, i = users.to_numpy(), items.to_numpy()
    u0, i0 = int(u.min()), int(i.min())
    span = int(i.max()) - i0 + 1
    if (int(u.max()) - u0 + 1) * span >= 2 ** 62:
        return True
    keys = np.sort((u - u0) * span + (i - i0))
    return bool((keys[1:] == keys[:-1]).any())


def _split_titles(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series | None]:
    """Take a title column out of the ratings frame as a titles Series (first title per item)."""
    if "title" not in frame:
        return frame, None
    t = frame[["item", "title"]].dropna().drop_duplicates("item")
    titles = pd.Series(t["title"].astype(str).to_numpy(dtype=object), index=t["item"].to_numpy(), name="title")
    titles.index.name = "item"
    return frame.drop(columns="title"), titles


# --------------------------------------------------------------------------- reading titles

def _read_titles(file: _File) -> pd.Series:
    """Titles from movies.csv, movies.dat (UTF-8 or Latin-1) or u.item (Latin-1, '|'-separated)."""
    data = file.read()
    if not data.strip():
        raise DataError(f"{file.name}: empty titles file")
    text = _decode(data)
    first = text.lstrip().split("\n", 1)[0]
    sep = {"u.item": "|", "movies.dat": "::"}.get(file.basename)
    if sep is None and "::" in first:
        sep = "::"
    elif sep is None and "|" in first and first.split("|", 1)[0].strip().isdigit():
        sep = "|"
    if sep is not None:
        ids, names = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split(sep, 2)
            if len(parts) < 2 or not parts[0].strip().isdigit():
                raise DataError(f"{file.name}: row {n}: expected id{sep}title{sep}..., got {line[:60]!r}")
            ids.append(int(parts[0]))
            names.append(parts[1])
        series = pd.Series(names, index=np.asarray(ids, dtype=np.int64), dtype=object, name="title")
    else:
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, engine="c")
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataError(f"{file.name}: cannot read titles: {str(exc).splitlines()[0]}") from None
        lower = {c.strip().lower(): c for c in df.columns}
        idc = next((lower[a] for a in _ALIASES["item"] if a in lower), None)
        tc = next((lower[a] for a in _TITLE_ALIASES if a in lower), None)
        if idc is None or tc is None:
            raise DataError(f"{file.name}: missing column {'movieId' if idc is None else 'title'} in titles file; "
                            f"the file has columns {', '.join(repr(c) for c in df.columns)}")
        ids = pd.to_numeric(df[idc], errors="coerce")
        index = ids.astype(np.int64).to_numpy() if ids.notna().all() else df[idc].to_numpy(dtype=object)
        series = pd.Series(df[tc].to_numpy(dtype=object), index=index, name="title")
    series = series[~series.index.duplicated()].astype(object)
    series.index.name = "item"
    return series


def _titles_arg(titles, source_name: str) -> pd.Series | None:
    if titles is None:
        return None
    if isinstance(titles, (pd.Series, dict)):
        series = pd.Series(titles, dtype=object, name="title")
        return series[~series.index.duplicated()]
    path = Path(titles).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file (titles for {source_name})")
    return _read_titles(_disk_file(path))


# --------------------------------------------------------------------------- public API

def load_ratings(source: str | Path | pd.DataFrame | None = None, *, user_col: str | None = None,
                 item_col: str | None = None, rating_col: str | None = None,
                 titles: str | Path | pd.Series | dict | None = None, sep: str | None = None) -> Ratings:
    """Read ratings from the embedded set, any MovieLens file/folder/zip, a CSV or a DataFrame, validated."""
    given = {"user": user_col, "item": item_col, "rating": rating_col}
    if isinstance(source, pd.DataFrame):
        return _load_frame(source, given, titles)
    if source is None:
        rfile, tfile = _from_directory(embedded_dir())
        name = EMBEDDED_NAME
    else:
        path = Path(source).expanduser()
        rfile, tfile = _locate(path)
        name = str(path)
    lay = _layout(rfile, sep, given)
    raw = _parse(rfile, lay)
    first = lay.first_line
    frame = _clean(raw, rfile.name, lambda i: f"row {i + first}", lay.labels, lay.strict_ids)
    frame, own_titles = _split_titles(frame)
    title_series = _titles_arg(titles, name)
    if title_series is None:
        title_series = own_titles if own_titles is not None else (_read_titles(tfile) if tfile else None)
    return Ratings(frame, title_series, name)


def _load_frame(df: pd.DataFrame, given: dict[str, str | None], titles) -> Ratings:
    name = "DataFrame"
    cols = _resolve_columns([str(c) for c in df.columns], name, given)
    byname = {str(c): c for c in df.columns}
    labels = {c: (n if n == c else f"{n} ({c})") for c, n in cols.items()}
    if not len(df):
        raise DataError(f"{name}: no ratings (empty DataFrame)")
    raw = pd.DataFrame({k: df[byname[v]].to_numpy() for k, v in cols.items()})
    if df.index.is_unique:
        raw.index = df.index
        row = lambda i: f"index {i}"  # noqa: E731
    else:
        row = lambda i: f"position {i}"  # noqa: E731
    frame, own_titles = _split_titles(_clean(raw, name, row, labels, strict_ids=False))
    title_series = _titles_arg(titles, name)
    return Ratings(frame, title_series if title_series is not None else own_titles, name)


@dataclass(frozen=True, eq=False)
class Encoded:
    """Contiguous 0-based codes for users and items, keeping the original ids."""

    users: np.ndarray  # int64 codes, one per rating
    items: np.ndarray  # int64 codes
    ratings: np.ndarray  # float32
    user_ids: np.ndarray  # original id of each user code (sorted ascending)
    item_ids: np.ndarray  # original id of each item code (sorted ascending)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_code(self, user_id) -> int:
        """The code of an original user id; DataError 'unknown user ID' when it never rated."""
        return _code(self.user_ids, user_id, "user")

    def item_code(self, item_id) -> int:
        """The code of an original item id; DataError 'unknown item ID' when nobody rated it."""
        return _code(self.item_ids, item_id, "item")


def _code(ids: np.ndarray, key, what: str) -> int:
    probe = key
    if ids.dtype.kind in "iu" and isinstance(key, str):
        try:
            probe = int(key.strip())
        except ValueError:
            raise DataError(f"unknown {what} {key!r}: {what} ids are whole numbers") from None
    elif ids.dtype.kind == "O" and not isinstance(key, str):
        probe = str(key)
    try:
        pos = int(np.searchsorted(ids, probe))
    except TypeError:
        pos = len(ids)
    if pos < len(ids) and ids[pos] == probe:
        return pos
    raise DataError(f"unknown {what} {key}: not in the ratings ({len(ids):,} {what}s, ids {ids[0]}..{ids[-1]})"
                    if len(ids) else f"unknown {what} {key}: there are no ratings")


def encode(ratings: Ratings) -> Encoded:
    """Map user and item ids to contiguous 0-based codes (ascending id order), ratings to float32."""
    f = ratings.frame
    ucodes, uids = pd.factorize(f["user"], sort=True)
    icodes, iids = pd.factorize(f["item"], sort=True)
    return Encoded(ucodes.astype(np.int64), icodes.astype(np.int64), f["rating"].to_numpy(np.float32),
                   np.asarray(uids), np.asarray(iids))


def split_indices(n: int, valid_pct: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The fast.ai lesson split: permute with default_rng(seed), first (1 - valid_pct) train, rest valid."""
    if int(n) != n or n < 0:
        raise SettingsError(f"number of ratings must be a whole number >= 0, got {n!r}")
    if not 0 <= valid_pct < 1:
        raise SettingsError(f"valid_pct must be in [0, 1), got {valid_pct!r}")
    perm = np.random.default_rng(seed).permutation(int(n))
    n_train = int(n * (1 - valid_pct))
    return perm[:n_train], perm[n_train:]


def _top(counts: pd.Series, n: int) -> list:
    """Ids by count descending, ties by id ascending."""
    df = pd.DataFrame({"id": counts.index, "count": counts.to_numpy()})
    return df.sort_values(["count", "id"], ascending=[False, True], kind="mergesort")["id"].head(n).tolist()


def crosstab(ratings: Ratings, n: int = 15) -> pd.DataFrame:
    """The n most active users x the n most-rated items (fast.ai's 15x15 sheet): rating or NaN per cell."""
    if int(n) != n or n < 1:
        raise SettingsError(f"crosstab size must be a whole number >= 1, got {n!r}")
    f = ratings.frame
    users = _top(f.groupby("user", sort=False).size(), int(n))
    items = _top(f.groupby("item", sort=False).size(), int(n))
    sub = f[f["user"].isin(users) & f["item"].isin(items)]
    table = sub.pivot(index="user", columns="item", values="rating").reindex(index=users, columns=items)
    table.index.name, table.columns.name = "user", "item"
    table = table.astype(np.float64)
    table.attrs["titles"] = [ratings.title(i) for i in items]
    return table


def download(release: str, dest: str | Path, *, base_url: str = GROUPLENS_URL, timeout: float = 60.0) -> Path:
    """Fetch a GroupLens MovieLens zip into dest (a folder or a .zip path), written atomically."""
    if release not in RELEASES:
        raise DataError(f"unknown MovieLens release {release!r}; known: {', '.join(RELEASES)}")
    dest = Path(dest).expanduser()
    target = dest if dest.suffix.lower() == ".zip" else dest / f"{release}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    url = base_url.rstrip("/") + f"/{release}.zip"
    fd, tmp = tempfile.mkstemp(prefix=f".{release}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DataError(f"cannot download {url}: {reason} (offline? fetch it by hand and pass the "
                                f".zip path; nothing else in xlcollab needs the network)") from None
        if not zipfile.is_zipfile(tmp):
            raise DataError(f"cannot download {url}: the server sent something that is not a zip file")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
