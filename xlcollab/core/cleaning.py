"""Validating parsed ratings: ids as int64 or text, ratings as finite float64, no repeated (user, item) pair.

Every refusal names the file, the row as the user counts it, the column and the value. `clean` is what the readers
call on a parsed frame; `too_large` is the words for a rating beyond RATING_LIMIT, shared with the streaming reader.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from xlcollab.errors import DataError

#: the largest rating accepted: its square times a billion ratings stays far inside float32 (3.4e38)
RATING_LIMIT = 1e12

def clean(df: pd.DataFrame, name: str, row: Callable[[object], str], labels: dict[str, str],
           strict_ids: bool) -> pd.DataFrame:
    """Validate ids and ratings and cast dtypes; row(index) says where a row is ('row 7', 'index 7')."""
    def where(index: object, col: str) -> str:
        return f"{name}: {row(index)}, column {labels[col]}"

    df = df.dropna(how="all", subset=[c for c in df.columns if c != "title"])  # blank lines
    if df.empty:
        raise DataError(f"{name}: no ratings" + (" (only a header)" if row(0) == "row 2" else ""))
    out = {col: _clean_ids(df[col], col, where, strict_ids) for col in ("user", "item")}
    out["rating"] = _clean_ratings(df["rating"], where)
    if "timestamp" in df:
        t = df["timestamp"]
        if pd.api.types.is_numeric_dtype(t) and t.notna().all() and np.all(np.mod(t.to_numpy(), 1) == 0):
            t = t.astype(np.int64)
        out["timestamp"] = t
    if "title" in df:
        out["title"] = df["title"]
    frame = pd.DataFrame(out, index=df.index)
    _refuse_duplicates(frame, name, row, labels)
    return frame.reset_index(drop=True)


def _clean_ids(s: pd.Series, col: str, where: Callable[[object, str], str], strict: bool) -> pd.Series:
    """User or item ids: whole numbers as int64 (strict: they must be), anything else as stripped text."""
    blank = s.isna()
    if blank.any():
        raise DataError(f"{where(blank.idxmax(), col)}: blank {col} id")
    if pd.api.types.is_bool_dtype(s):
        return s.astype(object)
    if pd.api.types.is_integer_dtype(s):
        return _int64_ids(s, col, where)
    if pd.api.types.is_float_dtype(s):
        return _int64_ids(s, col, where) if np.all(np.mod(s.to_numpy(), 1) == 0) else s
    num = pd.to_numeric(s, errors="coerce")
    if strict:
        bad = num.isna() | (np.mod(num.fillna(0), 1) != 0)
        if bad.any():
            i = bad.idxmax()
            raise DataError(f"{where(i, col)}: {str(s.at[i])!r} is not a whole-number {col} id")
        return _int64_ids(num, col, where, s)
    if num.notna().all() and np.all(np.mod(num.to_numpy(), 1) == 0):
        return _int64_ids(num, col, where, s)
    return pd.Series(s.astype(str).str.strip().to_numpy(dtype=object), index=s.index)


def too_large(rating: float) -> str:
    """Why a rating beyond RATING_LIMIT is refused."""
    return f"{rating!r} is outside +-{RATING_LIMIT:g}: a fit in float32 cannot square and sum such ratings"


_INT64_LIMIT = 2.0 ** 63  # whole-number ids are int64: [-2**63, 2**63)


def _int64_ids(num: pd.Series, col: str, where: Callable[[object, str], str], raw: pd.Series | None = None) -> pd.Series:
    """Whole-number ids as int64; an id outside int64 (10**30 would wrap to -2**63) refused naming its row."""
    if num.dtype == np.uint64:
        out = num.to_numpy() >= 2 ** 63
    elif pd.api.types.is_integer_dtype(num):
        return num.astype(np.int64)
    else:
        v = num.to_numpy(dtype=np.float64)
        out = (v >= _INT64_LIMIT) | (v < -_INT64_LIMIT)
        for i in np.flatnonzero(~out & (np.abs(v) >= _INT64_LIMIT / 2)):  # float rounding may hide -2**63 - 1
            try:
                exact = int(str((raw if raw is not None else num).iat[i]).strip())
            except ValueError:
                continue
            out[i] = not -_INT64_LIMIT <= exact < _INT64_LIMIT
    if out.any():
        i = num.index[int(np.argmax(out))]
        shown = str((raw if raw is not None else num).at[i]).strip()
        raise DataError(f"{where(i, col)}: {col} id {shown} is outside what a 64-bit integer holds")
    return num.astype(np.int64)


def _clean_ratings(r: pd.Series, where: Callable[[object, str], str]) -> pd.Series:
    """Ratings as finite float64; text, blanks, NaN and infinities refused naming the row."""
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
    big = np.abs(r.to_numpy()) > RATING_LIMIT
    if big.any():
        i = r.index[int(np.argmax(big))]
        raise DataError(f"{where(i, 'rating')}: {too_large(float(r.at[i]))}")
    return r


def _refuse_duplicates(frame: pd.DataFrame, name: str, row: Callable[[object], str], labels: dict[str, str]) -> None:
    """DataError naming the first repeated (user, item) pair's two rows and how many repeats there are."""
    if not _may_have_duplicates(frame["user"], frame["item"]):
        return
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


def _may_have_duplicates(users: pd.Series, items: pd.Series) -> bool:
    """Quick check for repeated (user, item) pairs: one sort of packed int64 keys (2x faster than pandas)."""
    if users.dtype != np.int64 or items.dtype != np.int64 or len(users) < 2:
        return len(users) > 1
    u, i = users.to_numpy(), items.to_numpy()
    u0, i0 = int(u.min()), int(i.min())
    span = int(i.max()) - i0 + 1
    if (int(u.max()) - u0 + 1) * span >= 2 ** 62:
        return True
    keys = (u - u0) * span + (i - i0)
    if bool((keys[1:] > keys[:-1]).all()):  # sorted by user, then movie, as MovieLens files are: no sort needed
        return False
    keys.sort()
    return bool((keys[1:] == keys[:-1]).any())
