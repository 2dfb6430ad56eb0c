"""Reading ratings and titles: sniff a file's delimiter, header and columns, parse it with pandas, validate every
id and rating (each error names the file, the row as the user counts it, the column and the id), take titles.

`read_file` and `read_frame` give (ratings frame, titles or None); `read_titles` reads a release's titles file.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xlcollab.core.cleaning import clean
from xlcollab.core.sources import File, LinesAsUtf8, decode, disk_file
from xlcollab.errors import DataError, XlcollabError

# Ratings files this large are parsed by pyarrow's multi-threaded reader first (the C engine parses in one thread);
# smaller ones, and any file pyarrow cannot take, by the C engine.
FAST_MIN_BYTES = 32 << 20

COLUMNS = ("user", "item", "rating")  # canonical column names after loading
# Column names accepted without user_col=/item_col=/rating_col= (compared case-insensitively).
_ALIASES = {
    "user": ("user", "userid", "user_id", "users", "uid"),
    "item": ("item", "movieid", "movie_id", "movie", "itemid", "item_id", "items", "iid"),
    "rating": ("rating", "ratings", "score", "stars"),
}
_TITLE_ALIASES = ("title", "movie_title", "name")
_HEADERLESS = ("user", "item", "rating", "timestamp")
_DELIMITERS = (",", "\t", ";", "|")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Layout:
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


def layout(file: File, sep: str | None, given: dict[str, str | None]) -> Layout:
    """Sniff the delimiter and header from the first line; map the columns."""
    head = file.head()
    text = decode(head) if head else ""
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
        return Layout(":", False, cols, labels, strict_ids=True, dat=True)
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
        return Layout(sep, False, cols, labels, strict_ids=strict)
    try:
        header = [str(c) for c in pd.read_csv(io.StringIO(first), sep=sep, nrows=0).columns]
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{file.name}: cannot read the header row: {exc}") from None
    cols = _resolve_columns(header, file.name, given)
    labels = {c: (n if n == c else f"{n} ({c})") for c, n in cols.items()}
    return Layout(sep, True, cols, labels, strict_ids=file.basename == "ratings.csv")


def _parse(file: File, lay: Layout) -> pd.DataFrame:
    """Read the file with the pandas C engine, translating its errors into DataErrors."""
    kw: dict = dict(sep=lay.sep, skip_blank_lines=False, engine="c")
    if lay.dat:
        kw.update(header=None)  # every field, so that a row with too many fields is an error
    elif lay.header:
        kw.update(header=0)
    else:
        kw.update(header=None, names=list(lay.columns.values()))
    for per_line in (False, True):  # UTF-8 throughout, else each line UTF-8 or Latin-1 (sources.decode_line)
        try:
            with file.open() as raw:
                fh = io.BufferedReader(LinesAsUtf8(raw), 1 << 20) if per_line else raw
                df = pd.read_csv(fh, encoding="utf-8-sig", **kw)
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


def _split_titles(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series | None]:
    """Take a title column out of the ratings frame as a titles Series (first title per item)."""
    if "title" not in frame:
        return frame, None
    t = frame[["item", "title"]].dropna().drop_duplicates("item")
    titles = pd.Series(t["title"].astype(str).to_numpy(dtype=object), index=t["item"].to_numpy(), name="title")
    titles.index.name = "item"
    return frame.drop(columns="title"), titles



def read_titles(file: File) -> pd.Series:
    """Titles from movies.csv, movies.dat (UTF-8 or Latin-1) or u.item (Latin-1, '|'-separated)."""
    data = file.read()
    if not data.strip():
        raise DataError(f"{file.name}: empty titles file")
    text = decode(data)
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
        ids = pd.to_numeric(df[idc].str.strip(), errors="coerce")
        whole = (ids.notna() & (np.mod(ids.fillna(0), 1) == 0) & (ids.abs() < 2.0 ** 63)).to_numpy()
        if whole.all():
            index = ids.astype(np.int64).to_numpy()
        elif not whole.any():  # text ids throughout ("tt0111161")
            index = df[idc].to_numpy(dtype=object)
        else:  # one bad row must not turn every id into text (and so lose every title)
            i = int(np.argmin(whole))
            raise DataError(f"{file.name}: row {i + 2}, column {idc}: {df[idc].iat[i]!r} is not a whole-number "
                            "movie id, as the other rows' ids are")
        series = pd.Series(df[tc].to_numpy(dtype=object), index=index, name="title")
    series = series[~series.index.duplicated()].astype(object)
    series.index.name = "item"
    return series


def titles_from(titles, source_name: str) -> pd.Series | None:
    if titles is None:
        return None
    if isinstance(titles, (pd.Series, dict)):
        series = pd.Series(titles, dtype=object, name="title")
        return series[~series.index.duplicated()]
    path = Path(titles).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file (titles for {source_name})")
    return read_titles(disk_file(path))


def read_file(file: File, sep: str | None, given: dict[str, str | None]) -> tuple[pd.DataFrame, pd.Series | None]:
    """A ratings file as a clean frame (user, item, rating[, timestamp]) and the titles it holds, if any."""
    lay = layout(file, sep, given)
    row = lambda i: f"row {i + lay.first_line}"  # noqa: E731
    path = Path(file.name)
    if path.is_file() and path.stat().st_size >= FAST_MIN_BYTES and (raw := _parse_fast(file, lay)) is not None:
        try:
            return _split_titles(clean(raw, file.name, row, lay.labels, lay.strict_ids))
        except XlcollabError:
            pass  # read again by the C engine, which counts blank lines and so names the bad row exactly
    return _split_titles(clean(_parse(file, lay), file.name, row, lay.labels, lay.strict_ids))


def _parse_fast(file: File, lay: Layout) -> pd.DataFrame | None:
    """pyarrow's multi-threaded CSV reader (pandas' engine="pyarrow") for a delimited file with a header; None for
    other layouts or any trouble (it skips blank lines and reads UTF-8 only): then the C engine reads the file."""
    if lay.dat or not lay.header or len(lay.sep) != 1:
        return None
    cols = list(lay.columns.values())
    try:
        with file.open() as fh:
            df = pd.read_csv(fh, sep=lay.sep, engine="pyarrow", usecols=cols)
    except (XlcollabError, ValueError, TypeError):
        return None
    return df[cols].set_axis(list(lay.columns), axis=1)


def read_frame(df: pd.DataFrame, given: dict[str, str | None], name: str) -> tuple[pd.DataFrame, pd.Series | None]:
    """A DataFrame's ratings as a clean frame and the titles it holds, if any (rows named by index or position)."""
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
    return _split_titles(clean(raw, name, row, labels, strict_ids=False))
