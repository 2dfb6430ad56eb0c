"""MS-OVBA 2.4.1 compression: the LZ77 variant that a VBA project's `dir` stream and module sources are stored in.

A CompressedContainer is the signature byte 0x01, then one chunk per 4096 bytes of input. A chunk starts with a
2-byte header: its size − 3 (12 bits), the signature 0b011 (3 bits) and a flag (1 bit). Flag 1: token sequences,
each a flag byte and eight tokens, a literal byte or a 2-byte copy token (offset, length) back into the chunk.
Flag 0: the chunk stored raw, always 4096 bytes (2.4.1.3.10 pads a short last chunk with zeros, so it decompresses
to the data and then the padding). The size field caps token sequences at 4096 bytes, so a chunk whose tokens would
be longer, compressible or not and full or not, is stored raw (2.4.1.3.7). VBA source always compresses; the
projects we write never hold a raw chunk, and the tests check every chunk length through oletools' decompressor.
"""
from __future__ import annotations

CHUNK = 4096           # bytes of input per chunk
_RAW_HEADER = 0x3000 | (CHUNK + 2 - 3)      # flag 0, signature 0b011, size 4098 - 3
_COMPRESSED = 0xB000                        # flag 1, signature 0b011


def compress(data: bytes) -> bytes:
    """The CompressedContainer of `data` (b"\\x01" alone for no data)."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), CHUNK):
        out += compress_chunk(data[start:start + CHUNK])
    return bytes(out)


def compress_chunk(chunk: bytes) -> bytes:
    """One CompressedChunk, header included: token sequences when they fit 4096 bytes, else raw and zero-padded."""
    body = _token_sequences(chunk)
    if len(body) <= CHUNK:
        return (_COMPRESSED | (len(body) + 2 - 3)).to_bytes(2, "little") + body
    return _RAW_HEADER.to_bytes(2, "little") + chunk.ljust(CHUNK, b"\0")


def _token_sequences(chunk: bytes) -> bytes:
    """Greedy LZ77 over one chunk: at each position the longest earlier match of >= 3 bytes, else a literal."""
    body, pos, n = bytearray(), 0, len(chunk)
    seen: dict[bytes, list[int]] = {}  # every 3-byte prefix -> the positions it starts at, oldest first
    while pos < n:
        flag_at, flags = len(body), 0
        body.append(0)
        for bit in range(8):
            if pos >= n:
                break
            length, offset = _longest_match(chunk, pos, seen)
            if length >= 3:
                bits = max((pos - 1).bit_length(), 4)  # offset bits grow with the position (2.4.1.3.19.1)
                body += (((offset - 1) << (16 - bits)) | (length - 3)).to_bytes(2, "little")
                flags |= 1 << bit
            else:
                length = 1
                body.append(chunk[pos])
            for i in range(pos, pos + length):
                seen.setdefault(chunk[i:i + 3], []).append(i)
            pos += length
        body[flag_at] = flags
    return bytes(body)


def _longest_match(chunk: bytes, pos: int, seen: dict[bytes, list[int]]) -> tuple[int, int]:
    """(length, offset) of the longest earlier copy of the bytes at `pos`, capped at what a copy token can hold."""
    bits = max((pos - 1).bit_length(), 4) if pos > 0 else 4
    max_len, n = (0xFFFF >> bits) + 3, len(chunk)
    best_len, best_off = 0, 0
    for cand in reversed(seen.get(chunk[pos:pos + 3], ())):
        length = 0
        while length < max_len and pos + length < n and chunk[cand + length] == chunk[pos + length]:
            length += 1
        if length > best_len:
            best_len, best_off = length, pos - cand
            if length == max_len:
                break
    return best_len, best_off
