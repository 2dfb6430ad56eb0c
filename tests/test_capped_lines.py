"""safeio.Capped's line cap: the first line over the cap is refused by its number, however the reads cut the lines."""
from __future__ import annotations

import io
import random
import re

import pytest

from xlcollab.core import safeio
from xlcollab.errors import DataError


def first_long_line(data: bytes, cap: int) -> int | None:
    """The reference: the 1-based number of the first line longer than cap bytes, or None."""
    for n, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > cap:
            return n
    return None


@pytest.mark.parametrize("seed", range(40))
def test_the_first_overlong_line_is_named_whatever_the_read_sizes(seed):
    rng = random.Random(seed)
    cap = rng.choice([3, 8, 20])
    lines = [b"x" * rng.choice([0, 1, cap // 2, cap, cap, cap + 1, 3 * cap]) for _ in range(rng.randint(1, 60))]
    data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
    capped = safeio.Capped(io.BytesIO(data), cap=10 ** 9, name="f.csv", line=cap)
    want = first_long_line(data, cap)
    got = None
    try:
        while capped.read(rng.choice([1, 2, cap, 2 * cap + 1, 5 * cap, 1000])):
            pass
    except DataError as exc:
        got = int(re.search(r"line (\d+) is longer", str(exc)).group(1))
    assert got == want, (cap, [len(x) for x in lines])


def test_a_file_of_short_lines_reads_whole():
    data = b"userId,movieId,rating\n" + b"1,2,3.5\n" * 10_000
    with io.BufferedReader(safeio.Capped(io.BytesIO(data), cap=10 ** 9, name="r.csv", line=64), 4096) as fh:
        assert fh.read() == data
