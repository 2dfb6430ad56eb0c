"""Excel formula text -> an immutable syntax tree whose references are relative to the formula's own cell.

openpyxl's tokenizer (MIT) splits the text; a small Pratt parser gives Excel's precedence: `:` > unary minus
> `%` > `^` (left-associative, so -2^2 = 4 and 2^3^2 = 64) > `* /` > `+ -` > `&` > comparisons. References
are stored R1C1-style (offsets from the host cell unless `$`-absolute), so the formulas of a filled block
parse to one tree: `parse_formula` caches by the text's R1C1 form and returns that form as the grouping key.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from openpyxl.formula.tokenizer import Token, Tokenizer, TokenizerError

from xlcollab.solver.refs import MAX_COL, MAX_ROW, parse_area


class ParseError(Exception):
    """A formula the compiler cannot read; the caller names the cell."""


# -- the tree --------------------------------------------------------------------------------------------
class Node:
    """Base of the syntax tree (frozen dataclasses: hashable, shared between the cells of a block)."""


@dataclass(frozen=True)
class Num(Node):
    value: float


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Err(Node):
    code: str


@dataclass(frozen=True)
class Missing(Node):
    """An empty argument, as in IF(A1,1,)."""


@dataclass(frozen=True)
class ArrayLit(Node):
    rows: tuple[tuple[float | str | bool, ...], ...]


@dataclass(frozen=True)
class Ref(Node):
    """A rectangle; each coordinate is an offset from the host cell where its `rel` flag is set, else absolute.

    `whole` is "col" for A:A-style references (rows 1..MAX_ROW) and "row" for 3:3-style ones.
    """
    sheet: str | None
    r0: int
    c0: int
    r1: int
    c1: int
    rel: tuple[bool, bool, bool, bool]
    whole: str = ""


@dataclass(frozen=True)
class Name(Node):
    name: str
    sheet: str | None = None


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" or "%"
    arg: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


# -- R1C1 templates: the cache key and the grouping key ---------------------------------------------------
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


def group_formulas(texts: Sequence[str], rows: np.ndarray, cols: np.ndarray
                   ) -> list[tuple[str, Node | None, str | None, np.ndarray]]:
    """Group formula cells by their R1C1 form: [(key, tree, why it cannot be parsed, member indices)].

    Fast for filled blocks: cells whose texts differ only in digits are told apart by their row offsets with
    numpy, and each R1C1 form is rewritten and parsed once, not once per cell.
    """
    by_shape: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        by_shape.setdefault(_DIGITS.sub("#", t), []).append(i)
    forms: dict[str, list[np.ndarray]] = {}
    for members in by_shape.values():
        idx = np.array(members)
        for part in _split_by_offsets(texts, rows, cols, idx):
            m0 = part[0]
            key, _ = template(_body(texts[m0]), int(rows[m0]), int(cols[m0]))
            forms.setdefault(key, []).append(part)
    out = []
    for parts in forms.values():
        idx = np.concatenate(parts)
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
    try:
        digits = np.array([[int(d) for d in _DIGITS.findall(texts[i])] for i in idx], dtype=np.int64)
    except (ValueError, OverflowError):
        return [idx[[k]] for k in range(len(idx))]
    digits[:, rel_rows] -= rows[idx][:, None]
    offsets = np.concatenate([digits, np.array(rel_cols, dtype=np.int64)[None, :] - cols[idx][:, None]], axis=1)
    _, inverse = np.unique(offsets, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [idx[inverse == u] for u in np.unique(inverse)]


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
        tree, corners = _Parser(body, row, col).parse()
        if corners != count:  # the template missed a reference: never share this tree
            key = f"{key}\x00@{row},{col}"
        if len(_CACHE) > 100_000:
            _CACHE.clear()
        _CACHE[key] = tree
    return key, tree


# -- the parser --------------------------------------------------------------------------------------------
_INFIX = {"=": 10, "<>": 10, "<": 10, ">": 10, "<=": 10, ">=": 10, "&": 20, "+": 30, "-": 30, "*": 40, "/": 40,
          "^": 50, ":": 80}
_PERCENT, _PREFIX = 60, 70


class _Parser:
    """Pratt parser over openpyxl's tokens; also counts the A1 corners it read (to validate the template)."""

    def __init__(self, text: str, row: int, col: int) -> None:
        self.row, self.col = row, col
        self.corners = 0
        try:
            tokens = Tokenizer("=" + text).items
        except TokenizerError as exc:
            raise ParseError(f"cannot read the formula ={text} ({exc})") from None
        self.tokens = _normalise(tokens, text)
        self.i = 0

    def parse(self) -> tuple[Node, int]:
        if not self.tokens:
            raise ParseError("empty formula")
        tree = self.expr(0)
        if self.i != len(self.tokens):
            raise ParseError(f"unexpected {self.tokens[self.i].value!r}")
        return tree, self.corners

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ParseError("the formula ends too early")
        self.i += 1
        return tok

    def expr(self, min_bp: int) -> Node:
        left = self.prefix(self.take())
        while (tok := self.peek()) is not None:
            if tok.type == Token.OP_POST:
                if _PERCENT < min_bp:
                    break
                self.take()
                left = Unary("%", left)
            elif tok.type == Token.OP_IN:
                bp = _INFIX.get(tok.value)
                if bp is None:
                    raise ParseError(f"unknown operator {tok.value!r}")
                if bp < min_bp:
                    break
                self.take()
                left = Binary(tok.value, left, self.expr(bp + 1))
            else:
                break
        return left

    def prefix(self, tok: Token) -> Node:
        if tok.type == Token.OP_PRE:
            arg = self.expr(_PREFIX)
            return Unary("-", arg) if tok.value == "-" else arg
        if tok.type == Token.OPERAND:
            return self.operand(tok)
        if tok.type == Token.FUNC and tok.subtype == Token.OPEN:
            return self.call(tok.value[:-1])
        if tok.type == Token.PAREN and tok.subtype == Token.OPEN:
            inner = self.expr(0)
            close = self.take()
            if close.type != Token.PAREN:
                raise ParseError("unbalanced parentheses")
            return inner
        if tok.type == Token.ARRAY and tok.subtype == Token.OPEN:
            return self.array()
        raise ParseError(f"unexpected {tok.value!r}")

    def call(self, name: str) -> Node:
        name = function_name(name)
        args: list[Node] = []
        if self._is(self.peek(), Token.FUNC, Token.CLOSE):
            self.take()
            return Call(name, ())
        while True:
            tok = self.peek()
            empty = tok is not None and (self._is(tok, Token.SEP, Token.ARG) or self._is(tok, Token.FUNC, Token.CLOSE))
            args.append(Missing() if empty else self.expr(0))
            tok = self.take()
            if self._is(tok, Token.FUNC, Token.CLOSE):
                return Call(name, tuple(args))
            if not self._is(tok, Token.SEP, Token.ARG):
                raise ParseError(f"unexpected {tok.value!r} in {name}(")

    @staticmethod
    def _is(tok: Token | None, type_: str, subtype: str) -> bool:
        return tok is not None and tok.type == type_ and tok.subtype == subtype

    def array(self) -> Node:
        rows: list[list[float | str | bool]] = [[]]
        while True:
            tok = self.peek()
            if tok is None:
                raise ParseError("{ is not closed")
            if tok.type == Token.ARRAY and tok.subtype == Token.CLOSE:
                self.take()
                if len({len(r) for r in rows}) != 1:
                    raise ParseError("array constant rows differ in length")
                return ArrayLit(tuple(tuple(r) for r in rows))
            if tok.type == Token.SEP:
                self.take()
                if tok.subtype == Token.ROW:
                    rows.append([])
                continue
            item = self.expr(0)
            if isinstance(item, Unary) and item.op == "-" and isinstance(item.arg, Num):
                item = Num(-item.arg.value)
            if not isinstance(item, (Num, Str, Bool, Err)):
                raise ParseError("an array constant holds only numbers, text, TRUE/FALSE and errors")
            rows[-1].append(getattr(item, "value", None) if not isinstance(item, Err) else item)

    def operand(self, tok: Token) -> Node:
        v = tok.value
        if tok.subtype == Token.NUMBER:
            return Num(float(v))
        if tok.subtype == Token.TEXT:
            return Str(v[1:-1].replace('""', '"'))
        if tok.subtype == Token.LOGICAL:
            return Bool(v.upper() == "TRUE")
        if tok.subtype == Token.ERROR:
            return Err(v.upper())
        return self.reference(v)

    def reference(self, v: str) -> Node:
        if v.upper().endswith("#REF!"):
            return Err("#REF!")
        if "[" in v:
            raise ParseError(f"external or structured references are not supported ({v})")
        if v.count("!") == 2 and ":" in v:  # Sheet1!A1:Sheet1!B2
            left, right = _split_range_op(v)
            if left and parse_area(left) and parse_area(right):
                return Binary(":", self.reference(left), self.reference(right))
        try:
            area = parse_area(v)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
        if area is None:
            sheet, _, rest = v.rpartition("!") if "!" in v else (None, "", v)
            if ":" in rest:
                raise ParseError(f"not a reference: {v}")
            return Name(rest, sheet.strip("'").replace("''", "'") if sheet else None)
        sheet, a, b = area
        if ":" in (sheet or ""):
            raise ParseError(f"3-D references across sheets are not supported ({v})")
        whole = "col" if a.row is None else "row" if a.col is None else ""
        self.corners += 1 if a is b else 2
        r0, r1 = (1, MAX_ROW) if whole == "col" else (a.row, b.row)
        c0, c1 = (1, MAX_COL) if whole == "row" else (a.col, b.col)
        rel = [not a.row_abs and whole != "col", not a.col_abs and whole != "row",
               not b.row_abs and whole != "col", not b.col_abs and whole != "row"]
        rows = [r - self.row if f else r for r, f in ((r0, rel[0]), (r1, rel[2]))]
        cols = [c - self.col if f else c for c, f in ((c0, rel[1]), (c1, rel[3]))]
        return Ref(sheet, rows[0], cols[0], rows[1], cols[1], tuple(rel), whole)


def _split_range_op(v: str) -> tuple[str, str]:
    """Split "'a:b'!A1:'a:b'!B2" at the colon between its two references (outside quotes)."""
    quoted = False
    for i, ch in enumerate(v):
        if ch == "'":
            quoted = not quoted
        elif ch == ":" and not quoted and "!" in v[:i] and "!" in v[i:]:
            return v[:i], v[i + 1:]
    return "", v


def function_name(raw: str) -> str:
    """"_xlfn._xlws.SORT" -> "SORT": the prefixes newer Excel functions carry in files."""
    name = raw.upper()
    for prefix in ("_XLFN.", "_XLWS.", "_XLPM."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _normalise(tokens: list[Token], text: str) -> list[Token]:
    """Drop whitespace (refusing the intersection operator) and split openpyxl's "A1:INDEX(" tokens."""
    out: list[Token] = []
    for k, tok in enumerate(tokens):
        if tok.type == Token.WSPACE:
            before, after = (tokens[k - 1] if k else None), (tokens[k + 1] if k + 1 < len(tokens) else None)
            if (before is not None and after is not None and _ends_operand(before) and _starts_operand(after)):
                raise ParseError("the intersection operator (a space between two references) is not supported")
            continue
        v = tok.value
        if tok.type in (Token.FUNC, Token.OPERAND) and ":" in v and not v.startswith(("'", '"')) \
                and (tok.type == Token.FUNC or v.startswith(":")):
            head, _, rest = v.rpartition(":") if tok.type == Token.FUNC else ("", ":", v[1:])
            if head:
                out.append(Token(head, Token.OPERAND, Token.RANGE))
            out.append(Token(":", Token.OP_IN))
            out.append(Token(rest, tok.type, tok.subtype))
            continue
        out.append(tok)
    return out


def _ends_operand(tok: Token) -> bool:
    return tok.type == Token.OPERAND or tok.subtype == Token.CLOSE


def _starts_operand(tok: Token) -> bool:
    return tok.type == Token.OPERAND or (tok.type in (Token.FUNC, Token.PAREN) and tok.subtype == Token.OPEN)
