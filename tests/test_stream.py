"""Streaming ratings from disk: the spilled files equal the in-memory encoding and split; epochs equal in order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xlcollab.core import data, stream
from xlcollab.core.fit import CollabFit
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
    assert sp.train_mean == pytest.approx(float(enc.ratings[train].astype(np.float64).mean()), rel=1e-12)
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
    sp = stream.spill(EMBEDDED, tmp_path, chunk_rows=10_000)
    got = torch.cat([r for _, _, r in stream.chunks(sp, "valid", 3000, torch.device("cpu"))])
    assert torch.equal(got, torch.from_numpy(sp.read("valid", 0, sp.n_valid)[2]))


def test_budget_sizes():
    assert stream.parse_budget("2GB") == 2 * 2 ** 30
    assert stream.parse_budget(" 512 mb ") == 512 * 2 ** 20
    assert stream.parse_budget("1.5g") == int(1.5 * 2 ** 30)
    assert stream.parse_budget(10 ** 6) == 10 ** 6 and stream.parse_budget(None) is None
    for bad in ("lots", "-1GB", "0", "2 PB"):
        with pytest.raises(SettingsError, match="memory budget"):
            stream.parse_budget(bad)
    assert stream.chunk_rows_for(48 * 10_000, 1024) == 9 * 1024
    with pytest.raises(SettingsError, match="too small"):
        stream.chunk_rows_for(1000, 1024)


def test_only_files_larger_than_the_budget_stream():
    size = EMBEDDED.stat().st_size
    est = stream.estimated_ratings(EMBEDDED)
    assert abs(est - 100_836) < 0.1 * 100_836, (est, size)  # the first lines hold short ids: 8 % over
    assert stream.needs_streaming(EMBEDDED, 10 ** 6)
    assert not stream.needs_streaming(EMBEDDED, 10 ** 9)
    assert not stream.needs_streaming(EMBEDDED, None) and not stream.needs_streaming(None, 10)
