"""MovieLens ratings in, clean long-form ratings out: loading (core.sources finds the files, core.readers reads and
validates them), encoding, the validation split, the crosstab, downloading a release.

Every MovieLens release a user may have downloaded reads directly (ml-100k ``u.data``/``u.item``,
ml-1m/10m ``ratings.dat``/``movies.dat``, ml-20m/25m/latest ``ratings.csv``/``movies.csv``, each as a
file, a directory or the release's .zip), and so does any CSV or DataFrame with user, item and rating
columns. Bad input raises a one-line DataError naming the file, the row as the user counts it in the
file (line 1 is the header of a CSV), the column and the id.
"""
from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xlcollab.core import atomic, checks, readers
from xlcollab.core.sources import RELEASES, from_directory, locate
from xlcollab.errors import DataError, SettingsError

EMBEDDED_NAME = "ml-latest-small (embedded)"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"


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


def load_ratings(source: str | Path | pd.DataFrame | None = None, *, user_col: str | None = None,
                 item_col: str | None = None, rating_col: str | None = None,
                 titles: str | Path | pd.Series | dict | None = None, sep: str | None = None) -> Ratings:
    """Read ratings from the embedded set, any MovieLens file/folder/zip, a CSV or a DataFrame, validated."""
    given = {"user": user_col, "item": item_col, "rating": rating_col}
    titles_file = None
    if isinstance(source, pd.DataFrame):
        name = "DataFrame"
        frame, own_titles = readers.read_frame(source, given, name)
    else:
        if source is None:
            ratings_file, titles_file = from_directory(embedded_dir())
            name = EMBEDDED_NAME
        else:
            path = Path(source).expanduser()
            ratings_file, titles_file = locate(path)
            name = str(path)
        frame, own_titles = readers.read_file(ratings_file, sep, given)
    title_series = readers.titles_from(titles, name)
    if title_series is None:
        title_series = own_titles if own_titles is not None else (
            readers.read_titles(titles_file) if titles_file else None)
    return Ratings(frame, title_series, name)


@dataclass(frozen=True, eq=False)
class Encoded:
    """Contiguous 0-based codes for users and items, keeping the original ids."""

    users: np.ndarray  # int64 codes, one per rating
    items: np.ndarray  # int64 codes
    ratings: np.ndarray  # float32
    user_ids: np.ndarray  # original id of each user code (sorted ascending)
    item_ids: np.ndarray  # original id of each item code (sorted ascending)
    times: np.ndarray | None = None  # int64 seconds of each rating, when the ratings carry a timestamp


def encode(ratings: Ratings) -> Encoded:
    """Map user and item ids to contiguous 0-based codes (ascending id order), ratings to float32, timestamps (if
    any) to int64 seconds."""
    f = ratings.frame
    ucodes, uids = pd.factorize(f["user"], sort=True)
    icodes, iids = pd.factorize(f["item"], sort=True)
    times = _seconds(f["timestamp"]) if "timestamp" in f else None
    return Encoded(ucodes.astype(np.int64), icodes.astype(np.int64), f["rating"].to_numpy(np.float32),
                   np.asarray(uids), np.asarray(iids), times)


def _seconds(stamps: pd.Series) -> np.ndarray | None:
    """Whole-number timestamps (MovieLens: seconds since 1970) or dates as int64 seconds; None for anything else
    (blanks, text): such ratings simply have no time."""
    if pd.api.types.is_integer_dtype(stamps):
        return stamps.to_numpy(np.int64)
    if pd.api.types.is_datetime64_any_dtype(stamps) and stamps.notna().all():
        return ((stamps - pd.Timestamp(0, tz=stamps.dt.tz)) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    return None


def codes_of(ids: np.ndarray, wanted: Any, what: str) -> np.ndarray:
    """Positions of wanted ids in the sorted id array; DataError 'unknown user 999999' for the first miss."""
    scalar = np.ndim(wanted) == 0
    w = np.atleast_1d(np.asarray(wanted))
    if ids.dtype.kind in "iu" and w.dtype.kind in "UOSf":  # "42" or 42.0 typed for an integer id
        try:
            as_int = w.astype(np.float64)
            if np.all(as_int == np.round(as_int)):
                w = as_int.astype(ids.dtype)
        except (TypeError, ValueError):
            pass
    idx = pd.Index(ids).get_indexer(pd.Index(w))
    if (idx < 0).any():
        miss = w[np.flatnonzero(idx < 0)[0]]
        raise DataError(f"unknown {what} {miss!s}: not in the ratings this model was fitted on")
    return idx[0] if scalar else idx.astype(np.int64)


def split_indices(n: int, valid_pct: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The fast.ai lesson split: permute with default_rng(seed), first (1 - valid_pct) train, rest valid."""
    try:
        n = checks.whole(n, "the number of ratings", lo=0)
        valid_pct = checks.number(valid_pct, "valid_pct", lo=0, hi=1, hi_open=True)
    except checks.CheckError as exc:
        raise SettingsError(str(exc)) from None
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(n * (1 - valid_pct))
    return perm[:n_train], perm[n_train:]


def _top(counts: pd.Series, n: int) -> list:
    """Ids by count descending, ties by id ascending."""
    df = pd.DataFrame({"id": counts.index, "count": counts.to_numpy()})
    return df.sort_values(["count", "id"], ascending=[False, True], kind="mergesort")["id"].head(n).tolist()


def crosstab(ratings: Ratings, n: int = 15) -> pd.DataFrame:
    """The n most active users x the n most-rated items (fast.ai's 15x15 sheet): rating or NaN per cell."""
    try:
        n = checks.whole(n, "the crosstab size", lo=1)
    except checks.CheckError as exc:
        raise SettingsError(str(exc)) from None
    f = ratings.frame
    users = _top(f.groupby("user", sort=False).size(), n)
    items = _top(f.groupby("item", sort=False).size(), n)
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
    url = base_url.rstrip("/") + f"/{release}.zip"
    with atomic.atomic_write(target, what="zip file") as out:  # whole or not at all; a killed run's part is cleared
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"cannot download {url}: {reason} (offline? fetch it by hand and pass the "
                            f".zip path; nothing else in xlcollab needs the network)") from None
        out.flush()
        out.seek(0)
        if not zipfile.is_zipfile(out):
            raise DataError(f"cannot download {url}: the server sent something that is not a zip file")
    return target
