"""Generated workbooks for the solver's tests and benchmarks: small models that together use every formula
feature the compiler supports (and the bad models it must refuse), written with openpyxl as formula text.

Each `Case` names its file, its variable cells and the output cells to compile; an error case says which
words the one-line error must hold. The formulas avoid the corners where LibreOffice (the test oracle) and
Excel disagree: no TRUE/FALSE or blanks inside ranges that SUM/SUMXMY2/ISNUMBER read (LibreOffice stores
booleans as numbers and counts blanks as 0 in SUMXMY2), no approximate MATCH on unsorted data, no 0^0.
"""
from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openpyxl import Workbook, load_workbook
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula

from xlcollab.book.filebook import FileBook
from xlcollab.solver.refs import Cell, parse_cells


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], Workbook]
    variables: str                      # "'Sheet'!$B$2:$B$4,Other!A1" as Solver's names write them
    outputs: tuple[str, ...]            # one output range per entry
    error: tuple[str, ...] = ()         # words the WorkbookError must contain (an error case)
    notes: tuple[str, ...] = ()         # words the compile notes must contain
    file: str = ""                      # another case's file (error cases share one workbook)

    @property
    def stem(self) -> str:
        return self.file or self.name

    def variable_cells(self) -> list[Cell]:
        return parse_cells(self.variables, "")

    def output_cells(self) -> list[list[Cell]]:
        return [parse_cells(o, "") for o in self.outputs]


def _put(ws, cells: dict[str, object]) -> None:
    for ref, value in cells.items():
        ws[ref] = value


def _fill(ws, first: str, formula: str, rows: int = 0, cols: int = 0) -> None:
    """Write `formula` (written for `first`) filled down `rows` and right `cols` more cells, relative refs shifted."""
    c0 = ws[first]
    for i in range(rows + 1):
        for j in range(cols + 1):
            target = ws.cell(c0.row + i, c0.column + j)
            target.value = _moved(formula, first, target.coordinate)


def _moved(formula: str, origin: str, target: str) -> str:
    """`formula` written for `origin` as it reads copied to `target` (relative references shifted)."""
    from openpyxl.formula.translate import Translator
    return Translator(formula, origin=origin).translate_formula(target)


def _name(wb: Workbook, name: str, text: str, sheet=None) -> None:
    dn = DefinedName(name, attr_text=text)
    if sheet is None:
        wb.defined_names[name] = dn
    else:
        sheet.defined_names[name] = dn


# -- the models -------------------------------------------------------------------------------------------------
def arith() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "Model"
    _put(ws, {"A2": "a", "A3": "b", "A4": "c", "B2": 1.5, "B3": -0.7, "B4": 2.2})
    _fill(ws, "C2", "=B2*2+B3/4-B4^2", rows=2)
    _fill(ws, "D2", "=-B2^2+2^3^2/100+5%*B3", rows=2)
    _fill(ws, "E2", "=IF(B2>B3,B2-B3,B3-B2)", rows=2)
    _fill(ws, "F2", '=IF(A2&"x"="ax",B2*3,B2)', rows=2)
    _fill(ws, "G2", "=IF(AND(B2>0,OR(B3<0,NOT(B4=0))),B2,-B2)", rows=2)
    _fill(ws, "H2", "=(B2-1)*(B2+1)/(2+B3*B3)", rows=2)
    ws["J2"] = "=SUM(C2:H4)"
    ws["J3"] = "=C2-D3*E4+F2/G3"
    ws["J4"] = '=IF(A3="B",1,2)*(B2<>B3)+(A2<A3)*B4-(A4>="C")*B2'
    return wb


def aggregates() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "Agg"
    _put(ws, {"A1": 3, "A2": "text", "A4": 4.5, "A5": -2, "A6": 7, "B1": 0.8, "B2": 1.3, "B3": 2.1})
    _put(ws, {"C1": "=SUM(A1:A6,B1:B3,2)", "C2": "=SUMSQ(A1:A6,B1:B3)", "C3": "=AVERAGE(A1:A6,B1:B3)",
              "C4": "=COUNT(A1:A6,B1:B3)*B1", "C5": "=COUNTA(A1:A6)+B2", "C6": "=MIN(A1:A6,B1:B3)+MAX(B1:B3,A1:A6)",
              "C7": "=MIN(B1,B2)*MAX(B1,B3,0.5)", "C8": "=ABS(B1-B3)+SQRT(B2)+EXP(B1/2)",
              "C9": "=LN(B3)+LOG(B2,2)+LOG(B3)+LOG10(B1+1)+POWER(B2,1.5)", "C10": "=SUM(B1:B3)/COUNT(A1:A6)",
              "C11": "=AVERAGE(B1,B2*2,A1)-MAX(A5,-B3)", "D1": datetime.datetime(2020, 1, 1, 12), "C12": "=D1*B1",
              "C13": "=PRODUCT(B1:B3,2)+MOD(B3*10+0.5,3)+SIGN(B1-1)+SIN(B1)+COS(B2)+TANH(B3)+PI()/10"})
    return wb


def lookups() -> Workbook:
    wb = Workbook()
    t = wb.active
    t.title = "Tables"
    for i, (key, val, w, desc) in enumerate(zip((10, 20, 30, 40, 50), (0.4, 1.1, -0.6, 2.3, 0.9),
                                                (3, 1, 4, 1, 5), (50, 40, 30, 20, 10)), start=2):
        _put(t, {f"A{i}": key, f"B{i}": val, f"C{i}": w, f"K{i}": desc})
    for j, col in enumerate("EFGHI", start=1):
        _put(t, {f"{col}1": j, f"{col}2": 0.1 * j + 0.05})
    _put(t, {"M2": "apple", "M3": "Banana", "M4": "cherry"})
    c = wb.create_sheet("Calc")
    _put(c, {"A2": 20, "A3": 35, "A4": 50})
    _fill(c, "B2", "=INDEX(Tables!$B$2:$B$6,MATCH(A2,Tables!$A$2:$A$6,1))", rows=2)
    _fill(c, "C2", "=VLOOKUP(A2,Tables!$A$2:$C$6,2,TRUE)*VLOOKUP(A2,Tables!$A$2:$C$6,3)", rows=2)
    _put(c, {"D2": "=VLOOKUP(30,Tables!$A$2:$C$6,2,FALSE)",
             "E2": "=HLOOKUP(3,Tables!$E$1:$I$2,2,FALSE)+HLOOKUP(4.5,Tables!$E$1:$I$2,2)",
             "F2": "=INDEX(Tables!$B$2:$C$6,MATCH(35,Tables!$K$2:$K$6,-1),1)",
             "G2": '=INDEX(Tables!$B$2:$B$6,MATCH("banana",Tables!$M$2:$M$4,0))',
             "H2": "=SUM(OFFSET(Tables!$B$2,1,0,3,1))",
             "I2": "=CHOOSE(2,Tables!B2,Tables!B3,Tables!B4)*CHOOSE(3,1,2,3)",
             "J2": "=SUMPRODUCT(INDEX(Tables!$B$2:$C$6,0,1),Tables!$C$2:$C$6)",
             "K2": "=SUM(INDEX(Tables!$B$2:$C$6,2,0))+INDEX(Tables!$E$2:$I$2,4)",
             "M2": '=INDEX(Tables!$B$2:$B$6,MATCH("ch*",Tables!$M$2:$M$4,0))',
             "N2": "=INDEX(Tables!$C$2:$C$6,MATCH(A3,Tables!$A$2:$A$6))*Tables!B6"})  # MATCH's default type: 1
    _fill(c, "L2", "=INDEX(Tables!$B$2:$B$6,MATCH(A2,Tables!$A$2:$A$6,0))", rows=2)  # L3: #N/A (35 is no key)
    return wb


def criteria() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "Crit"
    for i, (cat, num, var) in enumerate(zip("a b a c ab b".split(), (1, 2, 3, 4, 5, 6), (0.5, 1.5, 2.5, -1, 0.25, 3)),
                                        start=2):
        _put(ws, {f"A{i}": cat, f"B{i}": num, f"C{i}": var})
    _put(ws, {"E2": '=SUMIF(A2:A7,"a",C2:C7)', "E3": '=SUMIF(B2:B7,">2",C2:C7)', "E4": '=SUMIF(A2:A7,"<>b",C2:C7)',
              "E5": '=SUMIF(A2:A7,"a*",C2:C7)', "E6": '=SUMIFS(C2:C7,A2:A7,"b",B2:B7,">=2")',
              "E7": '=COUNTIF(A2:A7,"a")*C2+COUNTIFS(A2:A7,"a*",B2:B7,"<4")*C3',
              "E8": '=SUMIF(B2:B7,3,C2:C7)+SUMIF(B2:B7,"<=2")', "E9": '=AVERAGEIF(A2:A7,"b",C2:C7)',
              "F2": "a", "F3": "b", "F4": "c"})
    _fill(ws, "G2", "=SUMIF($A$2:$A$7,F2,$C$2:$C$7)", rows=2)
    return wb


def arrays() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "Arr"
    _put(ws, {"A1": 0.5, "B1": 1.2, "A2": -0.3, "B2": 0.8, "D1": 1, "E1": 2, "D2": 3, "E2": 4})
    ws["G1"] = ArrayFormula("G1:H2", "=MMULT(A1:B2,D1:E2)")
    ws["J1"] = ArrayFormula("J1:K2", "=TRANSPOSE(A1:B2)")
    ws["M1"] = ArrayFormula("M1:M2", "=A1:A2*D1:D2+B1:B2")
    ws["Q1"] = ArrayFormula("Q1:R1", "=MMULT(A1:B1,$D$1:$E$2)")
    ws["Q2"] = ArrayFormula("Q2:R2", "=MMULT(A2:B2,$D$1:$E$2)")
    ws["N4"] = ArrayFormula("N4", "=SUM(A1:B2*D1:E2)")
    ws["N6"] = ArrayFormula("N6", "=SUM(IF(A1:B2>0,A1:B2*D1:E2,-SQRT(-A1:B2)))")
    ws["S1"] = ArrayFormula("S1:U3", "=TRANSPOSE(A1:B2)")  # a result smaller than its range: #N/A around it
    ws["W1"] = ArrayFormula("W1:X3", "=A1:B1*2")           # one row repeated down the range
    _put(ws, {"N1": "=SUMPRODUCT(A1:B2,D1:E2)", "N2": "=SUMXMY2(A1:B2,D1:E2)",
              "N3": "=SUM(G1:H2)+SUM(J1:K2)*2+SUM(M1:M2)", "N5": "=MMULT(A1:B1,D1:D2)"})
    return wb


def outer() -> Workbook:
    """MMULT filled over grids (dotprod's user row x movie column): a full grid, one with holes, 2x2 array formulas
    in a grid (a product per cell larger than 1x1), and a factor cell holding text (#VALUE! along its row)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Outer"
    for i, row in enumerate(((0.5, -1.2), (0.3, 0.8), (1.1, "n/a"), (-0.7, 0.4))):
        _put(ws, {f"A{3 + i}": row[0], f"B{3 + i}": row[1]})
    for j, col in enumerate("DEFG"):
        _put(ws, {f"{col}1": 0.2 * j - 0.5, f"{col}2": 1.5 - 0.6 * j})
    _fill(ws, "D3", "=MMULT($A3:$B3,D$1:D$2)", rows=3, cols=3)
    _fill(ws, "I3", "=MMULT($A3:$B3,D$1:D$2)*2", rows=3, cols=3)
    ws["I6"] = ws["K3"] = None  # holes: the product of every pair, then the cells' own picked
    for host in ("N3", "P3", "N5", "P5"):
        ref = f"{host}:{chr(ord(host[0]) + 1)}{int(host[1:]) + 1}"
        ws[host] = ArrayFormula(ref, _moved("=MMULT($A3:$B4,D$1:E$2)", "N3", host))
    _put(ws, {"S1": "=SUM(D3:G4)+SUM(D6:G6)+SUM(I4:L4)+SUM(N3:Q4)"})
    return wb


ODD = "Odd (1)+2"


def sheets() -> Workbook:
    wb = Workbook()
    inputs = wb.active
    inputs.title = "Inputs"
    _put(inputs, {"B2": 1.7, "B3": -0.4, "C2": 0.3})
    odd = wb.create_sheet(ODD)
    out = wb.create_sheet("Out")
    _name(wb, "rate", "Inputs!$C$2")
    _name(wb, "scale", "2.5")
    _name(wb, "block", f"'{ODD}'!$A$1:$A$3", sheet=odd)
    _name(wb, "odd", f"'{ODD}'!$A$1:$A$3", sheet=out)
    _put(odd, {"A1": "=Inputs!$B$2*rate", "A2": "=Inputs!$B$3+scale", "A3": "=A1*A2", "A4": "=SUM(block)*2"})
    _put(out, {"B2": f"='{ODD}'!A3+SUM('{ODD}'!A1:A2)", "B3": "=SUMPRODUCT(odd,odd)", "D2": "=B2*2",
               "B4": "=D2+E3"})
    out.merge_cells("D2:E3")
    return wb


def rounding() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "R"
    _put(ws, {"B1": 1.234, "B2": 5.678, "C1": "=ROUND(3.14159,2)*B1", "C2": "=INT(7.9)+FLOOR(7.3,2)*B2",
              "C3": "=ROUND(B1*10,0)+B2", "C4": "=INT(B2)+FLOOR(B1,0.5)"})
    return wb


def iferror() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "E"
    _put(ws, {"A1": 2, "A2": 0, "A3": 4, "B1": 1.5, "B2": 2.5, "B3": 0.5, "A5": "word"})
    _fill(ws, "C1", "=IFERROR(B1/A1,B1*10)", rows=2)
    _put(ws, {"D1": "=IFERROR(1/(B1-B1),7)+B2", "D2": "=IF(B3>1,SQRT(B3-1),B3*3)", "D3": "=IFERROR(SQRT(B1-2),B1^2)",
              "D4": "=IF(B3<1,B2,LN(B3-1))", "E1": "=ISNUMBER(A1)+ISTEXT(A5)*2+ISBLANK(A9)*4+ISERROR(A2/0)*8"})
    return wb


def long_form(n_rows: int = 40, n_users: int = 6, n_items: int = 5, k: int = 3, seed: int = 0) -> Workbook:
    """A movielens_emb-like tab: factors looked up per rating row (INDEX/MATCH), SUMPRODUCT, RMSE."""
    rng = np.random.default_rng(seed)
    wb = Workbook()
    ws = wb.active
    ws.title = "long"
    top = 4
    for u in range(n_users):
        ws.cell(top + u, 1, 100 + u)
        for j in range(k):
            ws.cell(top + u, 2 + j, round(float(rng.normal(0, 0.5)), 6))
    icol = 3 + k
    for i in range(n_items):
        ws.cell(top + i, icol, 500 + i)
        for j in range(k):
            ws.cell(top + i, icol + 1 + j, round(float(rng.normal(0, 0.5)), 6))
    first = top + max(n_users, n_items) + 2
    uref = f"$B${top}:${_col(1 + k)}${top + n_users - 1}"
    iref = f"${_col(icol + 1)}${top}:${_col(icol + k)}${top + n_items - 1}"
    ukeys, ikeys = f"$A${top}:$A${top + n_users - 1}", f"${_col(icol)}${top}:${_col(icol)}${top + n_items - 1}"
    users = rng.integers(0, n_users, n_rows)
    items = rng.integers(0, n_items, n_rows)
    c_pred, c_err = 4 + 2 * k, 5 + 2 * k
    for r in range(n_rows):
        row = first + r
        ws.cell(row, 1, 100 + int(users[r]))
        ws.cell(row, 2, 500 + int(items[r]))
        ws.cell(row, 3, float(rng.integers(1, 11)) / 2)
        for j in range(k):
            ws.cell(row, 4 + j, f"=INDEX({uref},MATCH($A{row},{ukeys},0),{j + 1})")
            ws.cell(row, 4 + k + j, f"=INDEX({iref},MATCH($B{row},{ikeys},0),{j + 1})")
        ws.cell(row, c_pred, f"=SUMPRODUCT({_col(4)}{row}:{_col(3 + k)}{row},{_col(4 + k)}{row}:{_col(3 + 2 * k)}{row})")
        ws.cell(row, c_err, f"=({_col(c_pred)}{row}-C{row})^2")
    ws.cell(2, 2, f"=SQRT(AVERAGE({_col(c_err)}{first}:{_col(c_err)}{first + n_rows - 1}))")
    _name(wb, "solver_adj", f"long!$B${top}:${_col(1 + k)}${top + n_users - 1},long!{iref}", sheet=ws)
    _name(wb, "solver_opt", "long!$B$2", sheet=ws)
    return wb


def _col(n: int) -> str:
    from openpyxl.utils import get_column_letter
    return get_column_letter(n)


def bad() -> Workbook:
    """Models the compiler must refuse (one sheet each) and one it must accept: an objective without variables."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Cycle"
    _put(ws, {"C1": 1.0, "A1": "=B1+C1", "B1": "=A1*2"})
    ws = wb.create_sheet("Unsup")
    _put(ws, {"B1": 0.5, "A1": "=NPV(0.1,B1,B1)", "A2": "=TODAY()*B1", "A3": "=NPV(0.1,2,3)+B1"})
    ws = wb.create_sheet("Lookup")
    _put(ws, {"A1": 1, "A2": 2, "A3": 3, "B1": 2, "C1": "=MATCH(B1,A1:A3,0)", "C2": "=SUM(OFFSET(A1,B1,0))"})
    ws = wb.create_sheet("Text")
    _put(ws, {"B1": 0.5, "A1": '=IF(B1>0,"pos",B1)', "A2": '=B1&"x"', "A3": '="abc"', "A4": "=A3&B1"})
    ws = wb.create_sheet("Err")
    _put(ws, {"B1": 0.5, "A1": "=1/0", "A2": "=A1+B1", "A3": "=A2*2"})
    ws = wb.create_sheet("VarFormula")
    _put(ws, {"A1": "=2*3", "B1": "=A1*2"})
    ws = wb.create_sheet("Const")
    _put(ws, {"A1": 3, "A2": "=A1*2", "B1": 1.0})
    ws = wb.create_sheet("Mixed")
    _put(ws, {"B1": 1.5, "A1": "=B1*2", "A2": "=NPV(0.1,B1,1)", "A3": "=A2+1", "A4": "=A1+B1", "A5": "=C1+C2",
              "C1": "=C2*2", "C2": "=C1+1",
              "A6": "=1/(B1-2)", "A7": "=SQRT(B1-3)"})
    ws = wb.create_sheet("NoSheet")
    _put(ws, {"B1": 1.0, "A1": "=Nowhere!A1+B1"})
    return wb


CASES: list[Case] = [
    Case("arith", arith, "Model!$B$2:$B$4", ("Model!$J$2:$J$4", "Model!$C$2:$H$4")),
    Case("aggregates", aggregates, "Agg!$B$1:$B$3", ("Agg!$C$1:$C$13",)),
    Case("lookups", lookups, "Tables!$B$2:$B$6,Tables!$E$2:$I$2",
         ("Calc!$B$2:$K$2", "Calc!$B$3:$C$4", "Calc!$L$2,Calc!$L$4,Calc!$M$2:$N$2")),
    Case("criteria", criteria, "Crit!$C$2:$C$7", ("Crit!$E$2:$E$9", "Crit!$G$2:$G$4")),
    Case("arrays", arrays, "Arr!$A$1:$B$2", ("Arr!$G$1:$H$2,Arr!$J$1:$K$2,Arr!$M$1:$M$2", "Arr!$N$1:$N$6",
                                             "Arr!$Q$1:$R$2")),
    Case("sheets", sheets, "Inputs!$B$2:$B$3", ("Out!$B$2:$B$4", f"'{ODD}'!$A$4")),
    Case("rounding", rounding, "R!$B$1:$B$2", ("R!$C$1:$C$4",), notes=("ROUND", "INT", "FLOOR")),
    Case("iferror", iferror, "E!$B$1:$B$3", ("E!$C$1:$C$3", "E!$D$1:$D$4")),
    Case("outer", outer, "Outer!$A$3:$A$6,Outer!$B$3:$B$4,Outer!$B$6,Outer!$D$1:$G$2",
         ("Outer!$D$3:$G$4,Outer!$D$6:$G$6", "Outer!$I$4:$L$4", "Outer!$N$3:$Q$4", "Outer!$S$1")),
    Case("longform", long_form, "long!$B$4:$D$9,long!$G$4:$I$8", ("long!$B$2", "long!$J$12:$K$51")),
]

ERROR_CASES: list[Case] = [
    Case("cycle", bad, "Cycle!$C$1", ("Cycle!$A$1",), error=("circular reference", "Cycle", "A1", "B1"), file="bad"),
    Case("npv", bad, "Unsup!$B$1", ("Unsup!$A$1",), error=("Unsup", "A1", "NPV"), file="bad"),
    Case("today", bad, "Unsup!$B$1", ("Unsup!$A$2",), error=("Unsup", "A2", "TODAY"), file="bad"),
    Case("npv_const", bad, "Unsup!$B$1", ("Unsup!$A$3",), error=("Unsup", "A3", "NPV"), file="bad"),
    Case("match_var", bad, "Lookup!$B$1", ("Lookup!$C$1",), error=("Lookup", "C1", "MATCH", "variables"), file="bad"),
    Case("offset_var", bad, "Lookup!$B$1", ("Lookup!$C$2",), error=("Lookup", "C2", "OFFSET", "variables"), file="bad"),
    Case("if_text", bad, "Text!$B$1", ("Text!$A$1",), error=("Text", "A1", "IF"), file="bad"),
    Case("concat_var", bad, "Text!$B$1", ("Text!$A$2",), error=("Text", "A2", "&"), file="bad"),
    Case("text_out", bad, "Text!$B$1", ("Text!$A$3",), error=("Text", "A3", "text"), file="bad"),
    Case("text_arith", bad, "Text!$B$1", ("Text!$A$4",), error=("Text", "A4", "&"), file="bad"),
    Case("error_out", bad, "Err!$B$1", ("Err!$A$3",), error=("Err", "A3", "#DIV/0!", "A1"), file="bad"),
    Case("var_formula", bad, "VarFormula!$A$1", ("VarFormula!$B$1",), error=("VarFormula", "A1", "formula"), file="bad"),
    Case("no_sheet", bad, "NoSheet!$B$1", ("NoSheet!$A$1",), error=("NoSheet", "A1", "Nowhere"), file="bad"),
]


def save(case: Case, folder: Path, x: np.ndarray | None = None, stem: str | None = None) -> Path:
    """Write the case's workbook (with the variables set to x when given) as folder/<stem>.xlsx."""
    path = Path(folder) / f"{stem or case.stem}.xlsx"
    case.build().save(path)
    if x is not None:
        wb = load_workbook(path)
        for (sheet, r, c), v in zip(case.variable_cells(), x):
            wb[sheet].cell(r, c).value = float(v)
        wb.save(path)
    return path


def open_book(path: Path | str) -> FileBook:
    """The workbook as the compiler reads it."""
    return FileBook(path)


def engine_values(path: Path) -> dict[tuple[str, int, int], object]:
    """Every cell's cached value in the file (what openpyxl's data_only=True reads), by (sheet, row, col)."""
    wb = load_workbook(path, data_only=True)
    return {(ws.title, c.row, c.column): c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row}


def assert_same(ours: object, theirs: object, where: str) -> None:
    """Numbers to 1e-9 relative; TRUE/FALSE also as LibreOffice's 1/0; text and error values exactly."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        assert theirs is not None and float(ours) == float(theirs), f"{where}: ours {ours!r}, LibreOffice {theirs!r}"
    elif isinstance(ours, float):
        assert isinstance(theirs, (int, float)), f"{where}: ours {ours!r}, LibreOffice {theirs!r}"
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12), f"{where}: ours {ours!r}, LibreOffice {theirs!r}"
    else:
        assert ours == theirs, f"{where}: ours {ours!r}, LibreOffice {theirs!r}"
