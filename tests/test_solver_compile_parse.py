"""The formula parser and Excel's semantics that bite, checked on hand-known values (no spreadsheet needed)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from openpyxl import Workbook

from solver_workbooks import open_book
from xlcollab.solver.compile import compile_cells
from xlcollab.solver.forms import group_formulas, parse_formula, template
from xlcollab.solver.parse import Binary, Call, Missing, Name, Num, ParseError, Ref, Unary, parse_tree
from xlcollab.solver.refs import MAX_ROW, cell_label, parse_cells, quote_sheet, split_sheet
from xlcollab.solver.values import distinct


def tree(text: str, row: int = 1, col: int = 1):
    return parse_formula(text, row, col)[1]


def test_unary_minus_binds_tighter_than_power() -> None:
    assert tree("=-2^2") == Binary("^", Unary("-", Num(2.0)), Num(2.0))
    assert tree("=2*-3^2") == Binary("*", Num(2.0), Binary("^", Unary("-", Num(3.0)), Num(2.0)))


def test_power_is_left_associative_and_percent_is_postfix() -> None:
    assert tree("=2^3^2") == Binary("^", Binary("^", Num(2.0), Num(3.0)), Num(2.0))
    assert tree("=1+2%") == Binary("+", Num(1.0), Unary("%", Num(2.0)))
    assert tree("=1%%") == Unary("%", Unary("%", Num(1.0)))


def test_operator_precedence_from_comparison_down() -> None:
    t = tree('=1+2*3&"x"="7x"')
    assert isinstance(t, Binary) and t.op == "="
    assert t.left.op == "&" and t.left.left == Binary("+", Num(1.0), Binary("*", Num(2.0), Num(3.0)))


def test_empty_arguments_and_prefixes() -> None:
    assert tree("=IF(A1,1,)").args[2] == Missing()
    assert tree("=F(,)") == Call("F", (Missing(), Missing()))
    assert tree("=F()") == Call("F", ())
    assert tree("=_xlfn._xlws.SORT(A1:A3)").name == "SORT"
    assert tree("=_xlfn.STDEV.S(A1:A3)").name == "STDEV.S"


def test_references_are_stored_relative_to_their_cell() -> None:
    assert tree("=B3", 5, 4) == Ref(None, -2, -2, -2, -2, (True, True, True, True))
    assert tree("=$B3", 5, 4) == Ref(None, -2, 2, -2, 2, (True, False, True, False))
    assert tree("='Odd (1)+2'!$A$1:B2", 1, 1) == Ref("Odd (1)+2", 1, 1, 1, 1, (False, False, True, True))
    assert tree("='it''s'!A1").sheet == "it's"
    assert tree("=SUM(A:A)", 3, 3).args[0] == Ref(None, 1, -2, MAX_ROW, -2, (False, True, False, True), "col")
    assert tree("=myname*2").left == Name("myname")
    assert tree("=Sheet2!rate").sheet == "Sheet2"


def test_range_operator_with_a_function() -> None:
    t = tree("=A1:INDEX(B1:B3,2)")
    assert t.op == ":" and isinstance(t.left, Ref) and t.right.name == "INDEX"
    assert tree("=Sheet1!A1:Sheet1!B2").op == ":"


@pytest.mark.parametrize("text", ["=A1 B1", "=T[@C]", "=[1]Sheet1!A1", "=Sheet1:Sheet3!A1", "=SUM(1", "=(1"])
def test_unsupported_syntax_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_tree(text[1:], 1, 1)


def test_filled_formulas_share_one_key_and_one_tree() -> None:
    k1, t1 = parse_formula("=B2*2+$A$1", 2, 3)
    k2, t2 = parse_formula("=B3*2+$A$1", 3, 3)
    k3, _ = parse_formula("=B2*2+$A$1", 3, 3)  # same text, other cell: another form
    assert k1 == k2 and t1 is t2 and k1 != k3
    assert template('=A1&"B2"', 1, 1)[0].endswith('&"B2"')  # text in quotes is not a reference


def test_group_formulas_merges_blocks_filled_down_and_across() -> None:
    from openpyxl.utils import get_column_letter as col
    texts, rows, cols = [], [], []
    for r in range(31, 46):
        for c in range(9, 24):
            texts.append(f"=IF(ISNUMBER({col(c)}{r - 24}),MMULT($B{r}:$F{r},{col(c)}$24:{col(c)}$28),0)")
            rows.append(r)
            cols.append(c)
    texts += ["=SUM(A:A)", "=SUM(A:A)"]
    rows += [1, 1]
    cols += [2, 3]
    groups = group_formulas(texts, np.array(rows), np.array(cols))
    sizes = sorted(len(idx) for _, _, _, idx in groups)
    assert sizes == [1, 1, 225]  # whole-column A:A from B1 and from C1 are different R1C1 forms


def test_sheet_names_and_cells() -> None:
    assert quote_sheet("dotprod") == "dotprod" and quote_sheet("Odd (1)+2") == "'Odd (1)+2'"
    assert quote_sheet("A1") == "'A1'" and quote_sheet("it's") == "'it''s'"
    assert split_sheet("'Odd (1)+2'!A1:B3") == ("Odd (1)+2", "A1:B3")
    assert parse_cells("'s'!$A$1:$B$2,'s'!$D$1", "x") == [("s", 1, 1), ("s", 1, 2), ("s", 2, 1), ("s", 2, 2), ("s", 1, 4)]
    assert cell_label(("my sheet", 3, 2)) == "'my sheet'!B3"
    # unquoted: a letter, _ or a character from U+00A1 to U+FFFF first, then those, digits and dots
    for plain in ("é.1", "中文表", "_x", "a¡", "a\uffff"):
        assert quote_sheet(plain) == plain
    for odd in ("a\xa0b", "\xa0", "a😀", "😀", "1a", "a-b", "a b"):  # below U+00A1 or above U+FFFF: quoted
        assert quote_sheet(odd) == f"'{odd}'"


def test_distinct_is_np_unique() -> None:
    rng = np.random.default_rng(0)
    for a in (rng.integers(-5, 50, 300), rng.integers(0, 3, (4, 7)), rng.random(10) < 0.5, np.zeros(0, np.int64),
              np.array([7])):
        got = distinct(a)
        assert got.dtype == a.dtype and np.array_equal(got, np.unique(a))


# -- semantics, evaluated through the compiler ---------------------------------------------------------------------------
CASES = {
    "=-2^2": 4.0, "=2^3^2": 64.0, "=2*-3^2": 18.0, "=50%": 0.5, "=1+2%": 1.02, "=2^-1": 0.5,
    "=IF(TRUE,1,)": 1.0, "=IF(FALSE,1,)": 0.0, "=IF(FALSE,1)": False, "=_xlfn.SUM(1,2)": 3.0,
    "=MATCH(2.5,{1,2,3})": 2.0, "=MATCH(2,{3,2,1},-1)": 2.0, "=MATCH(\"B\",{\"a\",\"b\"},0)": 2.0,
    "=SUM(B1:B3)": 5.0, "=SUM(\"3\",1)": 4.0, "=SUMPRODUCT(B1:B3,C1:C3)": 8.0, "=AVERAGE(B1:B3)": 2.5,
    "=COUNT(B1:B3)": 2.0, "=COUNTA(B1:B4)": 4.0, "=B9+1": 1.0, '="abc"="ABC"': True, '="a"<"B"': True,
    '=1<"a"': True, '="z"<TRUE': True, "=1/0": "#DIV/0!", "=#N/A+1": "#N/A", "=SQRT(-1)": "#NUM!",
    '="3"+1': 4.0, '="x"+1': "#VALUE!", '=1.5&"x"': "1.5x", '=TRUE&""': "TRUE", "=ROUND(2.5,0)": 3.0,
    "=ROUND(-2.5,0)": -3.0, "=ROUND(1.005,2)": 1.01, "=INT(-1.5)": -2.0, "=FLOOR(-2.5,2)": -4.0,
    "=FLOOR(7.3,2)": 6.0, "=LOG(8,2)": 3.0, "=LOG(100)": 2.0, "=POWER(2,10)": 1024.0, "=ABS(-3)": 3.0,
    "=AND(B1:B3)": True, "=OR(0,B9)": False, "=NOT(0)": True, "=IFERROR(1/0,7)": 7.0, "=CHOOSE(2,5,6,7)": 6.0,
    "=ISNUMBER(B2)": False, "=ISTEXT(B2)": True, "=ISBLANK(B9)": True, "=ISNA(#N/A)": True,
    "=ROWS(B1:C4)*COLUMNS(B1:C4)": 8.0, "=ROW()": None, "=SUMXMY2({1,2},{3,5})": 13.0,
    "=SUMIF(B1:B4,\">1\")": 5.0, "=COUNTIF(B1:B4,\"x*\")": 1.0, "=INDEX({1,2;3,4},2,1)": 3.0,
    "=VLOOKUP(2,{1,10;2,20},2,FALSE)": 20.0, "=HLOOKUP(2,{1,2;10,20},2)": 20.0, "=MIN(B1:B3)": 2.0,
    "=MAX(B1:B3,-1)": 3.0, "=PRODUCT(B1:B3)": 6.0, "=PRODUCT(B2)": 0.0, "=MOD(-7,3)": 2.0, "=MOD(7,-3)": -2.0,
    "=MOD(1,0)": "#DIV/0!", "=_xlfn.SINGLE(D1:D200)": None, "=SUMSQ(B1:B3,1)": 14.0, "=MMULT({1,2},{3;4})": 11.0, "=SUM(TRANSPOSE({1,2}))": 3.0,
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict[str, object]:
    wb = Workbook()
    ws = wb.active
    ws.title = "S"
    ws["B1"], ws["B2"], ws["B3"], ws["B4"] = 2, "text", 3, "xyz"
    ws["C1"], ws["C3"] = 1, 2
    for r in range(1, 201):
        ws.cell(r, 4, float(r))
    texts = list(CASES)
    for i, text in enumerate(texts, start=1):
        ws.cell(i, 1, text)
    path = tmp_path_factory.mktemp("semantics") / "semantics.xlsx"
    wb.save(path)
    comp = compile_cells(open_book(path), [], [[("S", 1, 1)]])  # one output: the sheet is touched
    values = comp.values(comp.x0)
    return {t: values[("S", i, 1)] for i, t in enumerate(texts, start=1)}


@pytest.mark.parametrize("text", list(CASES))
def test_excel_semantics(text: str, evaluated) -> None:
    want, got = CASES[text], evaluated[text]
    if text in ("=ROW()", "=_xlfn.SINGLE(D1:D200)"):
        want = float(list(CASES).index(text) + 1)
    if isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-12), f"{text}: {got!r}"
    else:
        assert got == want and type(got) is type(want), f"{text}: {got!r}, want {want!r}"
