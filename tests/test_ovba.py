"""MS-OVBA compression, checked by an independent decompressor (oletools') and against the spec's chunk headers.

A container is the concatenation of its chunks' compressions, so the sizes that matter are the last chunk's length
after 0, 1 or 2 full chunks. The default run covers every length where the chunk format changes (the first bytes,
around each 4096-byte boundary, and the band where incompressible or mixed data stops fitting as token sequences
and is stored raw) plus an even stride elsewhere: about 900 containers per kind of data. XLCOLLAB_OVBA_EVERY_SIZE=1 runs all
3 x 12,289 sizes (about five minutes on one core).
"""
from __future__ import annotations

import os
import random
import struct

import pytest

from xlcollab.excel import ovba

olevba = pytest.importorskip("oletools.olevba")
CH = ovba.CHUNK


def _data() -> dict[str, bytes]:
    rng = random.Random(8)
    noise = bytes(rng.randrange(256) for _ in range(3 * CH))
    words = [b"Sheet", b"Attribute VB_", b"\x00\x01", b"xlcollab", b"End Sub\r\n", bytes([rng.randrange(256)])]
    text = b"".join(rng.choice(words) for _ in range(3 * CH))[:3 * CH]
    mixed = bytes(t if i % CH < 512 else n for i, (n, t) in enumerate(zip(noise, text)))  # 512 text bytes, then noise
    return {"compressible": text, "incompressible": noise, "mixed": mixed}


DATA = _data()


def _sizes() -> list[int]:
    if os.environ.get("XLCOLLAB_OVBA_EVERY_SIZE"):
        return list(range(3 * CH + 1))
    picked = set(range(0, 3 * CH + 1, 61))
    for k in range(4):
        picked |= set(range(max(k * CH - 12, 0), min(k * CH + 12, 3 * CH) + 1))     # chunk boundaries
    for k in range(3):  # where token sequences pass 4096 bytes: noise from 3641 bytes on, the mixed data near 4030
        picked |= set(range(k * CH + 3600, k * CH + 3700)) | set(range(k * CH + 3990, (k + 1) * CH))
    return sorted(picked)


def _chunks(container: bytes) -> list[tuple[int, bool, int]]:
    """(size field + 3, compressed flag, signature) of each chunk, walking the container by its headers."""
    assert container[:1] == b"\x01"
    out, pos = [], 1
    while pos < len(container):
        (header,) = struct.unpack_from("<H", container, pos)
        size, flag, signature = (header & 0x0FFF) + 3, bool(header >> 15), (header >> 12) & 0b111
        out.append((size, flag, signature))
        pos += size if flag else 2 + CH
    assert pos == len(container)
    return out


@pytest.mark.parametrize("kind", sorted(DATA))
def test_every_chunk_length_round_trips_through_oletools(kind):
    data = DATA[kind]
    full = [ovba.compress_chunk(data[k * CH:(k + 1) * CH]) for k in range(3)]
    raw_lengths = {}
    for size in _sizes():
        k, last = divmod(size, CH)
        if last == 0 and k:
            k, last = k - 1, CH
        container = b"\x01" + b"".join(full[:k]) + (ovba.compress_chunk(data[k * CH:size]) if size else b"")
        chunks = _chunks(container)
        assert len(chunks) == -(-size // CH) and all(sig == 0b011 and 3 <= n <= CH + 2 for n, _, sig in chunks)
        raw = bool(chunks) and not chunks[-1][1]
        assert not raw or chunks[-1][0] == CH + 2, size                  # a raw chunk is always 4096 bytes (0x3FFF)
        padding = b"\0" * (CH - last) if raw else b""                   # MS-OVBA 2.4.1.3.10 pads a short raw chunk
        assert bytes(olevba.decompress_stream(bytearray(container))) == data[:size] + padding, size
        raw_lengths.setdefault(k, []).append(last) if raw else None
    if kind == "compressible":
        assert raw_lengths == {}
    else:  # the range the old compressor overflowed: a short last chunk whose tokens pass 4096 bytes
        assert sorted(raw_lengths) == [0, 1, 2] and all(min(n) < CH - 50 for n in raw_lengths.values())
    if kind == "incompressible":  # no 3-byte repeat yet: L literals need L + ceil(L / 8) bytes, > 4096 from L = 3641
        assert {k: min(n) for k, n in raw_lengths.items()} == {0: 3641, 1: 3641, 2: 3641}


def test_the_container_is_its_chunks_and_the_old_overflow_is_gone():
    noise = DATA["incompressible"]
    for size in (0, 1, CH - 1, CH, CH + 1, 2 * CH + 3700, 3 * CH):
        assert ovba.compress(noise[:size]) == b"\x01" + b"".join(
            ovba.compress_chunk(noise[i:min(i + CH, size)]) for i in range(0, size, CH))
    short = noise[:3700]   # 3700 literals need 463 flag bytes: 4163 > 4096, so it is stored raw, not mis-sized
    chunk = ovba.compress_chunk(short)
    assert chunk[:2] == (0x3FFF).to_bytes(2, "little") and len(chunk) == CH + 2
    assert bytes(olevba.decompress_stream(bytearray(b"\x01" + chunk)))[:3700] == short
