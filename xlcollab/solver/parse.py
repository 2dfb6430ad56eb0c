"""Excel formula text -> an immutable syntax tree whose references are relative to the formula's own cell.

openpyxl's tokenizer (MIT) splits the text; a small Pratt parser gives Excel's precedence: `:` > unary minus
> `%` > `^` (left-associative, so -2^2 = 4 and 2^3^2 = 64) > `* /` > `+ -` > `&` > comparisons. References
are stored R1C1-style (offsets from the host cell unless `$`-absolute), so the formulas of a filled block
parse to one tree (see `forms.py`, which groups them).
"""
from __future__ import annotations

from dataclasses import dataclass

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


# -- the parser --------------------------------------------------------------------------------------------
_INFIX = {"=": 10, "<>": 10, "<": 10, ">": 10, "<=": 10, ">=": 10, "&": 20, "+": 30, "-": 30, "*": 40, "/": 40,
          "^": 50, ":": 80}
_PERCENT, _PREFIX = 60, 70


def parse_tree(text: str, row: int, col: int) -> tuple[Node, int]:
    """The tree of formula `text` (without "=") in the cell at (row, col), and how many A1 corners it read."""
    return _Parser(text, row, col).parse()


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
