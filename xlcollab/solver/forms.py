"""Formulas grouped by R1C1 form: the text rewritten with offsets from its cell, the key of a filled block.

`template` rewrites every A1 reference of a formula relative to its cell ("=B2*2" in C2 and "=B3*2" in C3
both become "=C[-1]R[0]*2"); equal templates mean one tree. `group_formulas` does this for a whole sheet
fast: texts that differ only in digits are told apart by their offsets with numpy, and each form is
rewritten and parsed once.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from xlcollab.solver.parse import Node, ParseError, parse_tree
from xlcollab.solver.refs import MAX_COL, MAX_ROW

_LEFT, _RIGHT = r"(?<![\w.$])", r"(?![\w(.!])"
_A1 = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|'
                 + _LEFT + r"(?P<cols>(\$?)([A-Za-z]{1,3}):(\$?)([A-Za-z]{1,3}))" + _RIGHT
                 + "|" + _LEFT + r"(?P<rows>(\$?)(\d+):(\$?)(\d+))" + _RIGHT
                 + "|" + _LEFT + r"(?P<cell>(\$?)([A-Za-z]{1,3})(\$?)(\d+))" + _RIGHT)


def template(text: str, row: int, col: int) -> tuple[str, int]:
    """The text with each A1 reference corner written relative to (row, col), and how many it rewrote."""
    count = 0

    def rel_col(dollar: str, letters: str) -> str:
        c = _col_index(letters)
        return f"C{c}" if dollar else f"C[{c - col}]"

    def rel_row(dollar: str, digits: str) -> str:
        return f"R{digits}" if dollar else f"R[{int(digits) - row}]"

    def sub(m: re.Match) -> str:
        nonlocal count
        g = m.groups()
        if m["cols"]:
            count += 2
            return f"\x00{rel_col(g[1], g[2])}:{rel_col(g[3], g[4])}\x00"
        if m["rows"]:
            count += 2
            return f"\x00{rel_row(g[6], g[7])}:{rel_row(g[8], g[9])}\x00"
        if m["cell"] and _col_index(g[12]) <= MAX_COL and 1 <= int(g[14]) <= MAX_ROW:
            count += 1
            return f"\x00{rel_col(g[11], g[12])}{rel_row(g[13], g[14])}\x00"
        return m[0]
    return _A1.sub(sub, text), count


@lru_cache(maxsize=4096)
def _col_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


_CACHE: dict[str, Node] = {}
_DIGITS = re.compile(r"\d+")
_MASK_DIGITS = str.maketrans("0123456789", "##########")


Grouping = list[tuple[str, "Node | None", "str | None", np.ndarray]]
_GROUPED: dict[tuple, Grouping] = {}  # the last sheets grouped: a solve run again on an unchanged sheet reuses them
_GROUPED_CELLS, _GROUPED_SHEETS = 20_000, 8


def group_formulas(texts: Sequence[str], rows: np.ndarray, cols: np.ndarray) -> Grouping:
    """Group formula cells by their R1C1 form: [(key, tree, why it cannot be parsed, member indices)].

    Fast for filled blocks: cells whose texts differ only in digits are told apart by their row offsets with
    numpy, and each R1C1 form is rewritten and parsed once, not once per cell. The grouping of a sheet of up to
    20,000 formulas is kept for the next compile of the same cells (the same texts at the same places).
    """
    if len(texts) > _GROUPED_CELLS:
        return _group(texts, rows, cols)
    key = (tuple(texts), np.asarray(rows).tobytes(), np.asarray(cols).tobytes())
    found = _GROUPED.get(key)
    if found is None:
        found = _GROUPED[key] = _group(texts, rows, cols)
        for _, _, _, idx in found:
            idx.setflags(write=False)
        while len(_GROUPED) > _GROUPED_SHEETS:
            del _GROUPED[next(iter(_GROUPED))]
    return found


def _group(texts: Sequence[str], rows: np.ndarray, cols: np.ndarray) -> Grouping:
    by_shape: dict[str, list[int]] = {}
    for i, t in enumerate(texts):  # digits masked one by one (A9 and A10 differ here; their R1C1 keys join them)
        by_shape.setdefault(t.translate(_MASK_DIGITS), []).append(i)
    forms: dict[str, list[np.ndarray]] = {}
    for members in by_shape.values():
        idx = np.array(members)
        for part in _split_by_offsets(texts, rows, cols, idx):
            m0 = part[0]
            key, _ = template(_body(texts[m0]), int(rows[m0]), int(cols[m0]))
            forms.setdefault(key, []).append(part)
    out = []
    for parts in sorted(forms.values(), key=lambda ps: min(int(p[0]) for p in ps)):  # in reading order
        idx = np.sort(np.concatenate(parts))
        m0 = idx[0]
        try:
            key, tree = parse_formula(texts[m0], int(rows[m0]), int(cols[m0]))
        except ParseError as exc:
            out.append((f"\x00bad@{rows[m0]},{cols[m0]}", None, str(exc), idx))
            continue
        if "\x00@" not in key:
            out.append((key, tree, None, idx))
            continue
        for i in idx:  # the template missed a reference: every cell on its own
            try:
                k, t = parse_formula(texts[i], int(rows[i]), int(cols[i]))
                out.append((k, t, None, np.array([i])))
            except ParseError as exc:
                out.append((f"\x00bad@{rows[i]},{cols[i]}", None, str(exc), np.array([i])))
    return out


def _body(text: str) -> str:
    return text[1:] if text.startswith("=") else text


def _split_by_offsets(texts: Sequence[str], rows: np.ndarray, cols: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
    """Cells whose texts differ only in digits, split by their references' offsets (equal parts: equal R1C1)."""
    if len(idx) == 1:
        return [idx]
    rel_rows, rel_cols = _roles(_body(texts[idx[0]]))
    runs = _DIGITS.findall(" ".join([texts[i] for i in idx]))  # every text has the same number of digit runs
    try:
        digits = np.array(list(map(int, runs)), dtype=np.int64).reshape(len(idx), -1)
    except (ValueError, OverflowError):
        return [idx[[k]] for k in range(len(idx))]
    digits[:, rel_rows] -= rows[idx][:, None]
    offsets = np.concatenate([digits, np.array(rel_cols, dtype=np.int64)[None, :] - cols[idx][:, None]], axis=1)
    parts = []
    while len(idx) and len(parts) < 8:  # a filled block is one R1C1 form, or a few (INDEX(..., 1), (..., 2), ...)
        same = (offsets == offsets[0]).all(1)
        parts.append(idx[same])
        idx, offsets = idx[~same], offsets[~same]
    if len(idx):
        _, inverse = np.unique(offsets, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        parts += [idx[inverse == u] for u in range(inverse.max() + 1)]  # each distinct row's cells
    return parts


def _roles(body: str) -> tuple[np.ndarray, list[int]]:
    """Which digit runs of the text are relative rows, and the column numbers of its relative columns."""
    row_spans: set[tuple[int, int]] = set()
    rel_cols: list[int] = []
    for m in _A1.finditer(body):
        g = m.groups()
        if m["cols"]:
            rel_cols += [_col_index(g[i + 1]) for i in (1, 3) if not g[i]]
        elif m["rows"]:
            row_spans |= {m.span(i + 2) for i in (6, 8) if not g[i]}
        elif m["cell"]:
            if not g[11]:
                rel_cols.append(_col_index(g[12]))
            if not g[13]:
                row_spans.add(m.span(15))
    runs = [m.span() for m in _DIGITS.finditer(body)]
    return np.array([span in row_spans for span in runs], dtype=bool), rel_cols


def parse_formula(text: str, row: int, col: int) -> tuple[str, Node]:
    """(grouping key, tree) of formula `text` ("=..." or without "=") in the cell at (row, col).

    Cells whose formulas are the same up to relative offsets get the same key and the same tree object.
    """
    body = text[1:] if text.startswith("=") else text
    key, count = template(body, row, col)
    tree = _CACHE.get(key)
    if tree is None:
        tree, corners = parse_tree(body, row, col)
        if corners != count:  # the template missed a reference: never share this tree
            key = f"{key}\x00@{row},{col}"
        if len(_CACHE) > 100_000:
            _CACHE.clear()
        _CACHE[key] = tree
    return key, tree
