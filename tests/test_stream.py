"""Streaming ratings from disk: the spilled files equal the in-memory encoding and split; epochs equal in order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xlcollab.core import data, readers, stream
from xlcollab.core.fit import CollabFit
from xlcollab.core.settings import check_fit
from xlcollab.errors import DataError, SettingsError

EMBEDDED = data.embedded_dir() / "ratings.csv"


def test_spilled_rows_are_the_in_memory_encoding_in_split_order(tmp_path):
    sp = stream.spill(EMBEDDED, tmp_path, chunk_rows=7_000, valid_pct=0.2, seed=42)  # 15 chunks of 100,836 rows
    enc = data.encode(data.load_ratings(EMBEDDED))
    train, valid = data.split_indices(len(enc.ratings), 0.2, 42)
    for part, idx in (("train", train), ("valid", valid)):
        u, i, r = sp.read(part, 0, sp.rows(part))
        assert np.array_equal(u, enc.users[idx]) and np.array_equal(i, enc.items[idx])
        assert np.array_equal(r, enc.ratings[idx])
    assert np.array_equal(sp.user_ids, enc.user_ids) and np.array_equal(sp.item_ids, enc.item_ids)
    ref = CollabFit()
    ref._index_seen(enc)
    assert np.array_equal(sp.seen_indptr, ref.seen_indptr_) and np.array_equal(sp.seen_items, ref.seen_items_)
    assert np.array_equal(sp.item_counts, ref.item_counts_)
    assert sp.rating_range == (0.5, 5.0)
    assert sp.train_mean == float(torch.as_tensor(enc.ratings[train]).mean())  # fit_tensors' float32 mean
    assert sp.titles.loc[1] == "Toy Story (1995)"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{part}.{name}" for part in ("train", "valid")
                                                                for name in ("users", "items", "ratings"))


def test_a_headerless_tab_separated_file_streams_like_u_data(tmp_path, small_ratings):
    f = small_ratings.frame
    path = tmp_path / "ratings.tsv"
    f[["user", "item", "rating"]].to_csv(path, sep="\t", header=False, index=False)
    sp = stream.spill(path, tmp_path, chunk_rows=100, valid_pct=0.0)
    enc = data.encode(data.load_ratings(path))
    u, i, r = sp.read("train", 0, sp.n_train)
    train, _ = data.split_indices(len(f), 0.0, 42)
    assert sp.n_valid == 0 and np.array_equal(u, enc.users[train]) and np.array_equal(r, enc.ratings[train])


def write(tmp_path, lines: list[str], name: str = "r.csv"):
    path = tmp_path / name
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    return path


def test_a_blank_rating_is_named_by_row_across_chunks(tmp_path):
    rows = [f"{u},{m},3.5,1" for u in range(1, 30) for m in range(1, 4)]
    rows[70] = "24,2,,1"
    with pytest.raises(DataError, match=r"r.csv: row 72, column rating: no rating"):
        stream.spill(write(tmp_path, rows), tmp_path / "..", chunk_rows=8)


def test_a_pair_rated_twice_names_both_rows(tmp_path):
    rows = [f"{u},{m},4,1" for u in range(1, 20) for m in range(1, 5)]
    rows.append("3,2,1.5,9")  # row 2 + 76 = 78 repeats user 3, movie 2 (row 11)
    with pytest.raises(DataError, match=r"rows 11 and 78: user 3 rated item 2 twice"):
        stream.spill(write(tmp_path, rows), tmp_path, chunk_rows=16)


def test_text_in_a_number_column_gets_load_ratings_message(tmp_path):
    rows = [f"{u},{m},4,1" for u in range(1, 9) for m in range(1, 5)]
    rows[5] = "2,x,4,1"
    with pytest.raises(DataError, match=r"row 7, column movieId \(item\): 'x' is not a whole-number item id"):
        stream.spill(write(tmp_path, rows, "ratings.csv"), tmp_path, chunk_rows=16)  # MovieLens: ids are numbers
    with pytest.raises(DataError, match=r"r.csv: cannot stream this file \(.*invalid value 'x'\): streaming reads "
                                        r"whole-number user and item ids"):
        stream.spill(write(tmp_path, rows), tmp_path, chunk_rows=16)  # a CSV of text ids reads, but only in memory


def test_double_colon_files_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3::4\n2::3::4::5\n")
    with pytest.raises(DataError, match="'::'-separated"):
        stream.spill(path, tmp_path)


def test_disk_epochs_equal_memory_epochs_in_the_chunked_order(tmp_path):
    sp = stream.spill(EMBEDDED, tmp_path, chunk_rows=10_000, valid_pct=0.2)
    u, i, r = (torch.from_numpy(a) for a in sp.read("train", 0, sp.n_train))
    for bs, chunk in ((1000, 7000), (64, 6400)):  # 80,668 rows: a short last chunk and a short last batch
        mem = list(stream.memory_batches(u, i, r, bs, torch.Generator().manual_seed(1), chunk_rows=chunk))
        disk = list(stream.batches(sp, "train", bs, torch.Generator().manual_seed(1), chunk, torch.device("cpu")))
        assert len(mem) == len(disk) == -(-sp.n_train // bs)
        for m, d in zip(mem, disk):
            assert all(torch.equal(a, b) for a, b in zip(m.take(), d.take())) and m.size == d.size == len(m.rows)
        seen = torch.cat([m.rows for m in mem])
        assert torch.equal(seen.sort().values, torch.arange(sp.n_train))  # every row once per epoch
    plain = torch.cat([b.rows for b in stream.memory_batches(u, i, r, 1000, torch.Generator().manual_seed(1))])
    assert torch.equal(plain, torch.randperm(sp.n_train, generator=torch.Generator().manual_seed(1)))


def test_validation_chunks_cover_the_valid_rows_in_order(tmp_path):
    sp = stream.spill(EMBEDDED, tmp_path, chunk_rows=3000)
    got = torch.cat([r for _, _, r in stream.chunks(sp, "valid", torch.device("cpu"))])
    assert torch.equal(got, torch.from_numpy(sp.read("valid", 0, sp.n_valid)[2]))


def test_budget_sizes():
    budget = lambda v: check_fit({"memory_budget": v})["memory_budget"]  # noqa: E731
    assert budget("2GB") == 2 * 2 ** 30 and budget(" 512 mb ") == 512 * 2 ** 20 and budget("1.5g") == int(1.5 * 2 ** 30)
    assert budget(10 ** 6) == 10 ** 6 and budget(None) is None
    for bad in ("lots", "-1GB", "0", "2 PB", True):
        with pytest.raises(SettingsError, match="memory budget must be a size"):
            budget(bad)
    assert stream.chunk_rows_for(48 * 10_000, 1024) == 9 * 1024
    with pytest.raises(SettingsError, match="too small"):
        stream.chunk_rows_for(1000, 1024)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA")])])
def test_a_streamed_fit_equals_the_in_memory_fit_in_the_same_order(monkeypatch, device):
    """A budget under the file's size streams it; the same ratings in memory with the same budget follow the same
    chunked order: on the CPU the same model bit for bit (the spilled mean of the ratings is rounded to float32 as
    torch's is), the validation RMSE to rounding (a sum over chunks instead of one mean); on CUDA (the fused step,
    whose atomic adds sum in a varying order) to float rounding."""
    spilled = []
    spill = stream.spill
    monkeypatch.setattr(stream, "spill", lambda *a, **k: spilled.append(spill(*a, **k)) or spilled[-1])
    kw = dict(epochs=2, memory_budget="500KB", progress=False, device=device)  # chunks of 10,240: 8 train, 2 valid
    disk = CollabFit(**kw).fit(EMBEDDED)
    assert len(spilled) == 1 and spilled[0].n_train == 80_668
    memory = CollabFit(**kw).fit(data.load_ratings(EMBEDDED))
    assert len(spilled) == 1  # loaded ratings are never streamed
    exact = device == "cpu"
    for a, b in zip(disk.trace_, memory.trace_):
        assert a["train_rmse"] == (b["train_rmse"] if exact else pytest.approx(b["train_rmse"], rel=1e-5))
        assert a["valid_rmse"] == pytest.approx(b["valid_rmse"], rel=1e-6 if exact else 1e-5)
    for (name, p), q in zip(disk.model_.named_parameters(), memory.model_.parameters()):
        assert torch.equal(p, q) if exact else torch.allclose(p, q, rtol=1e-3, atol=1e-4), name
    assert np.array_equal(disk.seen_items_, memory.seen_items_) and np.array_equal(disk.item_ids_, memory.item_ids_)
    assert disk.n_ratings_ == memory.n_ratings_ == 100_836 and disk.titles_.loc[1] == "Toy Story (1995)"
    plain = CollabFit(epochs=2, progress=False).fit(data.load_ratings(EMBEDDED))
    assert abs(plain.trace_[0]["train_rmse"] - memory.trace_[0]["train_rmse"]) > 1e-4  # the order is not the same


def test_only_files_larger_than_the_budget_stream():
    size = EMBEDDED.stat().st_size
    est = stream.estimated_ratings(EMBEDDED)
    assert abs(est - 100_836) < 0.1 * 100_836, (est, size)  # the first lines hold short ids: 8 % over
    assert stream.needs_streaming(EMBEDDED, 10 ** 6)
    assert not stream.needs_streaming(EMBEDDED, 10 ** 9)
    assert not stream.needs_streaming(EMBEDDED, None) and not stream.needs_streaming(None, 10)


def test_zips_and_folders_are_read_in_memory_whatever_the_budget(tmp_path):
    import zipfile
    zipped = tmp_path / "ml.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(EMBEDDED, "ml-latest-small/ratings.csv")
    assert not stream.needs_streaming(zipped, 1) and not stream.needs_streaming(EMBEDDED.parent, 1)


def test_large_files_parse_with_pyarrow_into_the_c_engines_frame(monkeypatch, tmp_path):
    """Files of readers.FAST_MIN_BYTES or more parse with pyarrow (here: every file): the same frame; a bad row
    after a blank line (which pyarrow skips) is still named as the file counts it, by the C engine's second read."""
    c_engine = data.load_ratings(EMBEDDED)
    used = []
    fast = readers._parse_fast
    monkeypatch.setattr(readers, "FAST_MIN_BYTES", 0)
    monkeypatch.setattr(readers, "_parse_fast", lambda *a: used.append(a[0].name) or fast(*a))
    arrow = data.load_ratings(EMBEDDED)
    assert used == [str(EMBEDDED)]
    pd.testing.assert_frame_equal(arrow.frame, c_engine.frame)
    pd.testing.assert_series_equal(arrow.titles, c_engine.titles)
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,4,0\n1,2,3,0\n\n2,1,x,0\n")
    with pytest.raises(DataError, match=r"row 5, column rating: 'x' is not a number"):
        data.load_ratings(path)


def test_ids_far_apart_are_coded_as_data_encode_codes_them(tmp_path):
    """Ids spanning more than a lookup table holds (here up to 10^15) take the binary search: the same codes."""
    rng = np.random.default_rng(0)
    users = rng.choice(np.array([3, 10 ** 9, 10 ** 15, 77], dtype=np.int64), 300)
    items = rng.integers(1, 10 ** 12, 300)
    path = tmp_path / "far.csv"
    pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, 300)}).to_csv(path, index=False)
    sp = stream.spill(path, tmp_path, chunk_rows=64, valid_pct=0.0)
    enc = data.encode(data.load_ratings(path))
    train, _ = data.split_indices(300, 0.0, 42)
    u, i, _ = sp.read("train", 0, sp.n_train)
    assert np.array_equal(u, enc.users[train]) and np.array_equal(i, enc.items[train])
    assert np.array_equal(sp.user_ids, enc.user_ids) and np.array_equal(sp.item_ids, enc.item_ids)
