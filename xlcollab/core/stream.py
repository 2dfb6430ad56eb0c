"""Ratings larger than memory: read a ratings file once in chunks onto disk, then stream it back chunk by chunk.

`spill` reads a CSV/TSV ratings file with pyarrow's streaming reader (multi-threaded C++, a block at a time),
checks it as `data.load_ratings` does, encodes ids to codes and writes the training and validation rows to flat
binary files in `data.split_indices` order, the in-memory path's own order: train row j on disk is train row j in
memory. `batches` serves an epoch from those files one chunk at a time in a chunked order (chunks shuffled, rows
shuffled within each chunk); `memory_batches` serves tensors already in memory, in torch.randperm's order, or in
the same chunked order when given `chunk_rows`. `epochs` is what the training loop takes: with a memory budget
the order is chunked wherever the data are, so a streamed fit equals the in-memory fit of the same ratings.

Memory held: one chunk of rows (12 bytes a rating on the device, plus the reader's block), the model, the ids and
the seen-movies index (4 bytes a rating, part of the fitted model), and the split's permutation (8 bytes a rating,
numpy's Fisher-Yates needs it whole: the price of the same split as in memory).
Over 400 lines on purpose: the reader's passes and the two batch orders share one on-disk format.
"""
from __future__ import annotations

import math
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from xlcollab.core import cleaning, data, readers, sources
from xlcollab.errors import DataError, SettingsError

# Bytes the in-memory path holds per rating: the DataFrame (user, item, rating, timestamp: 32), the codes and
# times (28), the device tensors (20), the split (8) and, at its peak, the session effects' sort (40). A file
# whose estimate exceeds the budget is streamed instead.
MEMORY_BYTES_PER_RATING = 128
ROW_BYTES = 12  # a streamed row: int32 user code, int32 item code, float32 rating
SPILL_STEPS = 8  # spill works through the file in steps of an eighth of a training chunk
_PARTS = ("users", "items", "ratings")
_DTYPES = {"users": np.int32, "items": np.int32, "ratings": np.float32}
Codes = tuple[Tensor, Tensor, Tensor]  # user codes, item codes, ratings (float32), on one device


class Batch(NamedTuple):
    """One step's ratings: rows of (users, items, ratings), and how many ratings the whole batch holds over every
    process (the mean's denominator; len(rows) in a single process)."""

    users: Tensor
    items: Tensor
    ratings: Tensor
    rows: Tensor | None  # which of them, in order (None: all of them)
    size: int

    def take(self) -> tuple[Tensor, Tensor, Tensor]:
        """The batch's (users, items, ratings) gathered."""
        if self.rows is None:
            return self.users, self.items, self.ratings
        return self.users[self.rows], self.items[self.rows], self.ratings[self.rows]


def chunk_rows_for(budget: int, batch_size: int) -> int:
    """Rows per streamed chunk: a quarter of the budget (reader block, chunk, its copy on the device, headroom),
    a whole number of batches so that no batch spans two chunks."""
    rows = budget // (4 * ROW_BYTES)
    if rows < batch_size:
        raise SettingsError(f"memory budget {budget:,} bytes is too small to stream batches of {batch_size:,} "
                            f"ratings: give at least {4 * ROW_BYTES * batch_size:,} bytes or a smaller batch size")
    return rows // batch_size * batch_size


def estimated_ratings(path: Path) -> int:
    """Ratings in a delimited file, estimated from its size and the length of its first lines."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    lines = max(head.count(b"\n"), 1)
    return int(size / (len(head) / lines))


def needs_streaming(path: Any, budget: int | None) -> bool:
    """Whether ratings at path would take more than budget bytes in memory (a plain file; zips, folders and data
    already in memory are read in memory)."""
    if budget is None or path is None or not isinstance(path, (str, Path)):
        return False
    p = Path(path).expanduser()
    return p.is_file() and not zipfile.is_zipfile(p) and estimated_ratings(p) * MEMORY_BYTES_PER_RATING > budget


@dataclass(frozen=True, eq=False)
class Spilled:
    """Encoded ratings on disk (train and valid rows in split order) and the small facts a fit needs of them."""

    folder: Path
    n_train: int
    n_valid: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: Any
    rating_range: tuple[float, float]  # of the training ratings
    train_mean: float
    seen_indptr: np.ndarray  # CSR over user codes of the items each user rated (file order), as fit._index_seen
    seen_items: np.ndarray
    item_counts: np.ndarray
    source: str
    chunk_rows: int  # rows per chunk it was written with (and validation is read with)

    def rows(self, part: str) -> int:
        return self.n_train if part == "train" else self.n_valid

    def read(self, part: str, start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows [start, start + count) of part ('train' or 'valid') as fresh arrays (no memory map kept)."""
        return tuple(np.fromfile(self.folder / f"{part}.{name}", dtype=_DTYPES[name], count=count,
                                 offset=start * np.dtype(_DTYPES[name]).itemsize) for name in _PARTS)


# -- reading ---------------------------------------------------------------------------------------------------
def _blocks(file: Any, lay: Any, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(user ids, item ids, ratings) a block at a time, checked; DataError names the row as the file counts it."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if lay.dat or len(lay.sep) != 1:
        raise DataError(f"{file.name}: streaming (--memory-budget) reads comma- or tab-separated files; this one is "
                        f"'::'-separated (ml-1m and ml-10m fit in memory: leave out --memory-budget)")
    cols = [lay.columns[c] for c in readers.COLUMNS]
    types = {cols[0]: pa.int64(), cols[1]: pa.int64(), cols[2]: pa.float64()}
    # headerless files (u.data and friends) name their fields user, item, rating[, timestamp] in file order
    names = None if lay.header else list(lay.columns.values())
    read = pcsv.ReadOptions(block_size=block_bytes, column_names=names)
    done = 0
    try:
        with file.open() as fh:
            reader = pcsv.open_csv(fh, read_options=read, parse_options=pcsv.ParseOptions(delimiter=lay.sep),
                                   convert_options=pcsv.ConvertOptions(include_columns=cols, column_types=types))
            for batch in reader:
                arrays = [batch.column(c) for c in cols]
                for canon, arr in zip(readers.COLUMNS, arrays):
                    if arr.null_count:
                        at = done + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                        what = "no rating (blank or NaN)" if canon == "rating" else f"blank {canon} id"
                        raise DataError(f"{file.name}: row {at + lay.first_line}, column {lay.labels[canon]}: {what}")
                users, items = (a.to_numpy() for a in arrays[:2])
                ratings = arrays[2].to_numpy()
                if not np.isfinite(ratings).all():
                    at = int(np.flatnonzero(~np.isfinite(ratings))[0])
                    raise DataError(f"{file.name}: row {done + at + lay.first_line}, column {lay.labels['rating']}: "
                                    f"{float(ratings[at])!r} is not a finite number")
                big = np.abs(ratings) > cleaning.RATING_LIMIT
                if big.any():
                    at = int(np.argmax(big))
                    raise DataError(f"{file.name}: row {done + at + lay.first_line}, column {lay.labels['rating']}: "
                                    f"{cleaning.too_large(float(ratings[at]))}")
                yield users, items, ratings.astype(np.float32)
                done += len(ratings)
    except pa.ArrowInvalid as exc:  # text in a number column, a row with too many fields: find the row in memory
        data.load_ratings(file.name, sep=lay.sep, **{f"{c}_col": lay.columns[c] for c in readers.COLUMNS})
        raise DataError(f"{file.name}: cannot stream this file ({str(exc).splitlines()[0]}): streaming reads "
                        f"whole-number user and item ids and numeric ratings; leave out --memory-budget") from None


def _write(folder: Path, part: str, arrays: tuple[np.ndarray, ...], handles: dict) -> None:
    for name, arr in zip(_PARTS, arrays):
        if (part, name) not in handles:
            handles[(part, name)] = open(folder / f"{part}.{name}", "wb")
        np.ascontiguousarray(arr, dtype=_DTYPES[name]).tofile(handles[(part, name)])


_RAW = {"users": np.int64, "items": np.int64, "ratings": np.float32}  # pass 1's on-disk dtypes


def _raw_pass(rfile: Any, lay: Any, folder: Path, step: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Pass 1: the file, once, in blocks -> raw ids and ratings on disk; the number of rows and the distinct ids."""
    handles: dict = {}
    seen_u, seen_i, n = [], [], 0
    try:
        for users, items, ratings in _blocks(rfile, lay, max(1 << 20, step * 8)):
            for name, arr in zip(_PARTS, (users, items, ratings)):
                if name not in handles:
                    handles[name] = open(folder / f"raw.{name}", "wb")
                arr.astype(_RAW[name]).tofile(handles[name])
            seen_u.append(pd.unique(users))  # a hash pass: numpy's unique is 10x slower here
            seen_i.append(pd.unique(items))
            n += len(ratings)
    finally:
        for fh in handles.values():
            fh.close()
    if n == 0:
        raise DataError(f"{rfile.name}: no ratings" + (" (only a header)" if lay.header else ""))
    return n, _distinct(seen_u), _distinct(seen_i)


def _split_pass(folder: Path, codes: dict, mm: dict, train_idx: np.ndarray, valid_idx: np.ndarray,
                step: int) -> tuple[float, float, float]:
    """Pass 3: train and valid rows in split order, read from the codes in sorted order a chunk at a time; the
    training ratings' min, max and sum."""
    out: dict = {}
    lo, hi, total = math.inf, -math.inf, 0.0
    try:
        for part, idx in (("train", train_idx), ("valid", valid_idx)):
            for a in range(0, len(idx), step):
                rows = idx[a:a + step]
                order = np.argsort(rows)  # distinct rows: any sort is stable
                inverse = np.empty_like(order)
                inverse[order] = np.arange(len(order))
                srt = rows[order]
                arrays = (codes["users"][srt][inverse], codes["items"][srt][inverse], mm["ratings"][srt][inverse])
                _write(folder, part, arrays, out)
                if part == "train":
                    r = arrays[2]
                    lo, hi, total = min(lo, float(r.min())), max(hi, float(r.max())), total + float(r.sum(dtype=np.float64))
            if part == "valid" and len(idx) == 0:
                _write(folder, part, tuple(np.zeros(0, _DTYPES[k]) for k in _PARTS), out)
    finally:
        for fh in out.values():
            fh.close()
    return lo, hi, total


def spill(source: Any, folder: str | Path, *, valid_pct: float = 0.2, seed: int = 42, chunk_rows: int = 1 << 22,
          user_col: str | None = None, item_col: str | None = None, rating_col: str | None = None,
          sep: str | None = None) -> Spilled:
    """Read a ratings file in chunks into folder: codes in split order, as `data.encode` + `data.split_indices`."""
    folder = Path(folder)
    path = Path(source).expanduser()
    step = max(1 << 16, chunk_rows // SPILL_STEPS)  # rows per pass step: its working arrays take ~30 bytes a row
    rfile, tfile = sources.locate(path)
    lay = readers.layout(rfile, sep, {"user": user_col, "item": item_col, "rating": rating_col})
    n, uids, iids = _raw_pass(rfile, lay, folder, step)
    mm = {name: np.memmap(folder / f"raw.{name}", dtype=_RAW[name], mode="r") for name in _PARTS}
    # pass 2: in file order -> codes, the seen index, the item counts, duplicate pairs
    codes = {name: np.memmap(folder / f"all.{name}", dtype=np.int32, mode="w+", shape=(n,)) for name in _PARTS[:2]}
    user_counts = np.zeros(len(uids), np.int64)
    user_code, item_code = _coder(uids), _coder(iids)
    for a in range(0, n, step):
        codes["users"][a:a + step] = user_code(mm["users"][a:a + step])
        codes["items"][a:a + step] = item_code(mm["items"][a:a + step])
        user_counts += np.bincount(codes["users"][a:a + step], minlength=len(uids))
    seen_indptr = np.concatenate([[0], np.cumsum(user_counts)])
    seen_items, item_counts = _seen(codes, seen_indptr, len(iids), n, step)
    _check_duplicates(seen_indptr, seen_items, codes, mm, len(iids), step, rfile.name, lay)
    # pass 3: train and valid rows in split order, read from the codes in sorted order a chunk at a time
    train_idx, valid_idx = data.split_indices(n, valid_pct, seed)
    if len(train_idx) == 0:
        raise DataError(f"{rfile.name}: no ratings left to train on ({n} ratings, valid_pct {valid_pct})")
    lo, hi, total = _split_pass(folder, codes, mm, train_idx, valid_idx, step)
    del mm, codes
    for name in _PARTS:
        (folder / f"raw.{name}").unlink()
    for name in _PARTS[:2]:
        (folder / f"all.{name}").unlink()
    titles = readers.read_titles(tfile) if tfile is not None else None
    mean = float(np.float32(total / len(train_idx)))  # the float32 mean the in-memory path takes (fit_tensors)
    return Spilled(folder, len(train_idx), len(valid_idx), uids, iids, titles, (lo, hi), mean,
                   seen_indptr, seen_items, item_counts, str(path), chunk_rows)


@contextmanager
def spilled(path: Any, settings: dict[str, Any]) -> Iterator[Spilled]:
    """A ratings file spilled to a temporary folder for a fit with these checked settings (deleted afterwards)."""
    chunk_rows = chunk_rows_for(settings["memory_budget"], settings["batch_size"] or 1)
    with tempfile.TemporaryDirectory(prefix="xlcollab-stream-") as folder:
        yield spill(path, folder, valid_pct=settings["valid_pct"], seed=settings["seed"], chunk_rows=chunk_rows)


def _distinct(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct values of several arrays, ascending (data.encode's code order)."""
    v = np.sort(np.concatenate(parts))
    return v[np.concatenate([[True], v[1:] != v[:-1]])]


def _coder(ids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Ids -> codes (positions in the ascending distinct ids): a lookup table when the ids span under 2^24 values
    (MovieLens: a few hundred thousand), else a binary search."""
    if int(ids[-1]) - int(ids[0]) < 1 << 24:
        table = np.zeros(int(ids[-1]) - int(ids[0]) + 1, np.int32)
        table[ids - ids[0]] = np.arange(len(ids), dtype=np.int32)
        return lambda x: table[x - ids[0]]
    return lambda x: np.searchsorted(ids, x).astype(np.int32)


def _seen(codes: dict, indptr: np.ndarray, n_items: int, n: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Items each user rated in file order (a counting sort, chunk by chunk) and every item's rating count."""
    seen = np.empty(n, np.int32)
    next_free = indptr[:-1].copy()
    counts = np.zeros(n_items, np.int64)
    for a in range(0, n, chunk_rows):
        u = np.asarray(codes["users"][a:a + chunk_rows])
        i = np.asarray(codes["items"][a:a + chunk_rows])
        ordered = bool((u[1:] >= u[:-1]).all())  # MovieLens files come sorted by user: no sort needed
        order = slice(None) if ordered else np.argsort(u, kind="stable")
        us = u[order]
        first = np.searchsorted(us, us)  # position of each user's first row in this chunk's sorted users
        seen[next_free[us] + np.arange(len(us)) - first] = i[order]
        next_free += np.bincount(u, minlength=len(next_free))
        counts += np.bincount(i, minlength=n_items)
    return seen, counts


def _check_duplicates(seen_indptr: np.ndarray, seen_items: np.ndarray, codes: dict, raw: dict, n_items: int,
                      chunk_rows: int, name: str, lay: Any) -> None:
    """DataError for a (user, item) pair rated twice, worded as load_ratings words it: each run of users whose
    seen items fill about a chunk is sorted and checked for a repeat (the seen index is in memory already)."""
    n_users = len(seen_indptr) - 1
    first = 0
    while first < n_users:
        last = max(first + 1, int(np.searchsorted(seen_indptr, seen_indptr[first] + chunk_rows, side="right")) - 1)
        last = min(last, n_users)
        a, b = seen_indptr[first], seen_indptr[last]
        users = np.repeat(np.arange(last - first, dtype=np.int64), np.diff(seen_indptr[first:last + 1]))
        keys = users * n_items + seen_items[a:b]
        if not (keys[1:] > keys[:-1]).all():  # each user's movies in ascending order (MovieLens): no repeat
            keys.sort()
        dup = np.flatnonzero(keys[1:] == keys[:-1])
        if len(dup):
            user, item = first + int(keys[dup[0]] // n_items), int(keys[dup[0]] % n_items)
            rows = []
            for c in range(0, len(codes["users"]), chunk_rows):
                hit = (codes["users"][c:c + chunk_rows] == user) & (codes["items"][c:c + chunk_rows] == item)
                rows += (c + np.flatnonzero(hit)).tolist()
                if len(rows) >= 2:
                    break
            i, j = rows[:2]
            raise DataError(f"{name}: rows {i + lay.first_line} and {j + lay.first_line}: user {int(raw['users'][i])} "
                            f"rated item {int(raw['items'][i])} twice (columns {lay.labels['user']}, "
                            f"{lay.labels['item']}); keep one rating per (user, item)")
        first = last


# -- serving epochs ---------------------------------------------------------------------------------------------
def _chunk_order(n: int, chunk_rows: int, generator: torch.Generator) -> list[int]:
    """Chunks in a shuffled order; a short last chunk stays last so that batches never span two chunks."""
    full, rest = divmod(n, chunk_rows)
    device = generator.device
    order = torch.randperm(full, generator=generator, device=device).tolist() if full else []
    return order + ([full] if rest else [])


def chunked_permutation(n: int, chunk_rows: int, generator: torch.Generator) -> Tensor:
    """The whole epoch's order that `batches` follows, as one permutation (for the in-memory path)."""
    parts = []
    for c in _chunk_order(n, chunk_rows, generator):
        size = min(chunk_rows, n - c * chunk_rows)
        parts.append(c * chunk_rows + torch.randperm(size, generator=generator, device=generator.device))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=generator.device)


def memory_batches(users: Tensor, items: Tensor, ratings: Tensor, batch_size: int, generator: torch.Generator,
                   chunk_rows: int | None = None) -> Iterator[Batch]:
    """One epoch over tensors in memory: torch.randperm's order (or the chunked order); the full batch unshuffled."""
    n = len(ratings)
    if batch_size >= n:
        yield Batch(users, items, ratings, None, n)
        return
    perm = (torch.randperm(n, generator=generator, device=generator.device) if chunk_rows is None
            else chunked_permutation(n, chunk_rows, generator))
    for a in range(0, n, batch_size):
        rows = perm[a:a + batch_size]
        yield Batch(users, items, ratings, rows, len(rows))


def epochs(train: Codes | Spilled, batch_size: int | None, seed: int, device: torch.device,
           budget: int | None = None) -> tuple[Callable[[int], Iterator[tuple[Batch, int]]], int]:
    """(batches, steps per epoch) for the training loop: each epoch's (batch, its size) from tensors in memory or
    from disk, shuffled by a generator seeded once per fit where the data lives (with a memory budget: chunked by
    `chunk_rows_for`, in memory too; a batch as large as the data: the full batch, unshuffled)."""
    n = train.n_train if isinstance(train, Spilled) else len(train[2])
    bs = n if batch_size is None else min(batch_size, n)
    chunk_rows = None if budget is None or bs == n else chunk_rows_for(budget, bs)
    gen = torch.Generator(device=device).manual_seed(seed)

    def run(epoch: int) -> Iterator[tuple[Batch, int]]:
        if isinstance(train, Spilled):
            parts = batches(train, "train", bs, gen, chunk_rows or n, device)
        else:
            parts = memory_batches(*train, bs, gen, chunk_rows)
        return ((b, b.size) for b in parts)
    return run, math.ceil(n / bs)


def batches(spilled: Spilled, part: str, batch_size: int, generator: torch.Generator, chunk_rows: int,
            device: torch.device) -> Iterator[Batch]:
    """One epoch of part from disk, chunk by chunk (the next chunk read while this one trains)."""
    n = spilled.rows(part)
    if batch_size >= n and chunk_rows < n:
        raise SettingsError("a full-batch fit needs every rating in memory at once: give a batch size to stream")
    order = _chunk_order(n, chunk_rows, generator)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(spilled.read, part, order[0] * chunk_rows, chunk_rows) if order else None
        for pos, c in enumerate(order):
            arrays = pending.result()
            if pos + 1 < len(order):
                pending = pool.submit(spilled.read, part, order[pos + 1] * chunk_rows, chunk_rows)
            u, i, r = (torch.from_numpy(a).to(device, non_blocking=True) for a in arrays)
            if batch_size >= n:
                yield Batch(u, i, r, None, n)
                continue
            local = torch.randperm(len(r), generator=generator, device=generator.device)
            for a in range(0, len(r), batch_size):
                rows = local[a:a + batch_size]
                yield Batch(u, i, r, rows, len(rows))


def chunks(spilled: Spilled, part: str, device: torch.device) -> Iterator[tuple[Tensor, ...]]:
    """part in file order, a chunk at a time (validation)."""
    for a in range(0, spilled.rows(part), spilled.chunk_rows):
        yield tuple(torch.from_numpy(x).to(device) for x in spilled.read(part, a, spilled.chunk_rows))
