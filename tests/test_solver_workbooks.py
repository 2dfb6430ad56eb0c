"""Acceptance: `xlcollab solve` on 30 generated workbooks in layouts unlike ours, each with Excel Solver's names
written as Excel writes them and an optimum known independently (closed form, brute force or scipy). Every
model is solved (to 1e-6 relative) or refused as Excel would, with no per-layout code; LibreOffice recomputes
the solved files and agrees with the objective we report.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.utils.cell import absolute_coordinate, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName

from helpers import run_cli, sha

ODD = "Odd (1)+2"
EXCEL_OPTIONS = {"solver_cvg": "0.0001", "solver_drv": "1", "solver_est": "1", "solver_itr": "2147483647",
                 "solver_mip": "2147483647", "solver_nod": "2147483647", "solver_pre": "0.000001",
                 "solver_scl": "1", "solver_sho": "2", "solver_tim": "2147483647", "solver_tol": "0.01",
                 "solver_ver": "3", "solver_rbv": "1", "solver_rlx": "2", "solver_rsd": "0", "solver_mni": "30",
                 "solver_mrt": "0.075", "solver_msl": "2", "solver_nwt": "1", "solver_ssz": "100"}
REL = {"<=": "1", "=": "2", ">=": "3", "int": "4", "bin": "5", "dif": "6"}


# -- writing workbooks as Excel would ---------------------------------------------------------------------------
def ref(sheet: str, cells: str) -> str:
    """"'Odd (1)+2'!$A$1:$B$2", "Model!$A$1": Excel quotes a sheet name only when it must."""
    name = sheet if re.fullmatch(r"[A-Za-z_][A-Za-z_.]*", sheet) else quote_sheetname(sheet)
    return ",".join(f"{name}!{absolute_coordinate(a)}" for a in cells.split(","))


def put(ws, cells: dict[str, Any]) -> None:
    for addr, value in cells.items():
        ws[addr] = value


def qualified(sheet: str, text: str) -> str:
    """A reference as Excel stores it: sheet-qualified and absolute; a defined name or a qualified one as is."""
    return text if "!" in text or not any(ch.isdigit() for ch in text) else ref(sheet, text)


def store(ws, *, opt: str | None, adj: str, typ: int = 2, val: float = 0, eng: int = 1, neg: int = 1,
          constraints: tuple = ()) -> None:
    """Excel Solver's hidden sheet-scoped names, references qualified with ws's own sheet unless given."""
    sheet = ws.title
    names = dict(EXCEL_OPTIONS)
    names.update(solver_adj=qualified(sheet, adj), solver_typ=str(typ), solver_val=str(val), solver_eng=str(eng),
                 solver_neg=str(neg), solver_num=str(len(constraints)))
    if opt is not None:
        names["solver_opt"] = qualified(sheet, opt)
    for i, (lhs, rel, rhs) in enumerate(constraints, start=1):
        names[f"solver_lhs{i}"] = qualified(sheet, lhs)
        names[f"solver_rel{i}"] = REL[rel]
        if rel in ("int", "bin", "dif"):
            rhs = {"int": '"integer"', "bin": "binary", "dif": '"alldiff"'}[rel]  # both forms occur
        elif isinstance(rhs, str) and not rhs.startswith("="):
            rhs = qualified(sheet, rhs)
        names[f"solver_rhs{i}"] = str(rhs)
    for name, text in names.items():
        ws.defined_names[name] = DefinedName(name, attr_text=text, hidden=True)


def book(*sheets: str) -> openpyxl.Workbook:
    wb = openpyxl.Workbook()
    wb.active.title = sheets[0]
    for s in sheets[1:]:
        wb.create_sheet(s)
    wb.calculation.fullCalcOnLoad = True
    return wb


@dataclass
class Case:
    build: Callable[[], openpyxl.Workbook]
    objective: float | None = None             # the known optimum of the objective cell
    x: dict[str, float] = field(default_factory=dict)  # variable cells ("Sheet!B2") with a unique optimum
    args: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()              # words of the one-line refusal (then exit 1, file untouched)
    sheet: str = "Model"
    engine: str | None = None                  # the engine the outcome must name (prefix)
    check: Callable[[dict[str, float]], None] | None = None  # extra check on all variable values


CASES: dict[str, Case] = {}


def case(name: str, **kw):
    def register(build):
        CASES[name] = Case(build, **kw)
        return build
    return register


# -- linear and integer models ------------------------------------------------------------------------------------
def _wyndor(title: str = "Model") -> openpyxl.Workbook:
    wb = book(title)
    ws = wb[title]
    put(ws, {"A1": "x", "B1": 0, "C1": 0, "A3": "profit", "B3": 3, "C3": 5, "E3": "=SUMPRODUCT(B1:C1,B3:C3)",
             "B4": 1, "C4": 0, "B5": 0, "C5": 2, "B6": 3, "C6": 2, "F4": 4, "F5": 12, "F6": 18,
             "E4": "=SUMPRODUCT($B$1:$C$1,B4:C4)", "E5": "=SUMPRODUCT($B$1:$C$1,B5:C5)",
             "E6": "=SUMPRODUCT($B$1:$C$1,B6:C6)"})
    ws["A8"].comment = Comment("Hillier & Lieberman's Wyndor Glass", "test")
    store(ws, opt="E3", adj="B1:C1", typ=1, eng=2, constraints=(("E4:E6", "<=", "F4:F6"),))
    return wb


case("lp_max_wyndor", objective=36.0, x={"Model!B1": 2.0, "Model!C1": 6.0}, engine="lp")(lambda: _wyndor())


def _diet_data():
    cost = np.array([0.6, 0.35, 0.8, 0.45])
    nutrients = np.array([[20, 5, 30, 10], [2, 8, 4, 6], [1, 0, 5, 2.0]])
    need = np.array([60, 24, 8.0])
    return cost, nutrients, need


def _diet_reference() -> float:
    from scipy.optimize import linprog
    cost, a, need = _diet_data()
    return float(linprog(cost, A_ub=-a, b_ub=-need, bounds=[(0, None)] * 4, method="highs").fun)


@case("lp_min_diet", objective=_diet_reference(), engine="lp")
def _diet() -> openpyxl.Workbook:
    cost, a, need = _diet_data()
    wb = book("Model")
    ws = wb["Model"]
    for j in range(4):
        ws.cell(2, 2 + j, 1.0)           # servings (variables), row 2
        ws.cell(3, 2 + j, float(cost[j]))
        for i in range(3):
            ws.cell(5 + i, 2 + j, float(a[i, j]))
    for i in range(3):
        ws.cell(5 + i, 7, f"=SUMPRODUCT($B$2:$E$2,B{5 + i}:E{5 + i})")
    ws["G3"] = "=SUMPRODUCT(B2:E2,B3:E3)"
    store(ws, opt="G3", adj="B2:E2", typ=2, eng=2,
          constraints=tuple((f"G{5 + i}", ">=", float(need[i])) for i in range(3)))
    return wb


def _transport_data():
    cost = np.array([[4, 6, 9], [5, 3, 8.0]])
    supply, demand = np.array([50, 60.0]), np.array([30, 40, 35.0])
    return cost, supply, demand


def _transport_reference() -> float:
    from scipy.optimize import linprog
    cost, supply, demand = _transport_data()
    a_eq = np.kron(np.eye(2), np.ones(3))
    a_ub = -np.kron(np.ones(2), np.eye(3))
    return float(linprog(cost.ravel(), A_ub=a_ub, b_ub=-demand, A_eq=a_eq, b_eq=supply, method="highs").fun)


@case("lp_transport_equalities", objective=_transport_reference())
def _transport() -> openpyxl.Workbook:
    cost, supply, demand = _transport_data()
    wb = book("Model")
    ws = wb["Model"]
    for i in range(2):
        for j in range(3):
            ws.cell(2 + i, 2 + j, 0)
            ws.cell(6 + i, 2 + j, float(cost[i, j]))
        ws.cell(2 + i, 5, f"=SUM(B{2 + i}:D{2 + i})")
        ws.cell(2 + i, 6, float(supply[i]))
    for j, col in enumerate("BCD"):
        ws[f"{col}4"] = f"=SUM({col}2:{col}3)"
        ws[f"{col}5"] = float(demand[j])
    ws["H1"] = "=SUMPRODUCT(B2:D3,B6:D7)"
    store(ws, opt="H1", adj="B2:D3", constraints=(("E2:E3", "=", "F2:F3"), ("B4:D4", ">=", "B5:D5")))
    return wb


KNAP_W, KNAP_V, KNAP_CAP = [12, 7, 11, 8, 9, 6], [24, 13, 23, 15, 16, 10], 30


def _knapsack_best() -> float:
    return float(max(sum(v * s for v, s in zip(KNAP_V, pick)) for pick in itertools.product((0, 1), repeat=6)
                     if sum(w * s for w, s in zip(KNAP_W, pick)) <= KNAP_CAP))


@case("milp_binary_knapsack", objective=_knapsack_best(), engine="lp",
      check=lambda x: all(v in (0.0, 1.0) for v in x.values()))
def _knapsack() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    for j in range(6):
        ws.cell(1, 2 + j, 0.5)
        ws.cell(2, 2 + j, KNAP_W[j])
        ws.cell(3, 2 + j, KNAP_V[j])
    ws["J2"], ws["J3"], ws["K2"] = "=SUMPRODUCT(B1:G1,B2:G2)", "=SUMPRODUCT(B1:G1,B3:G3)", KNAP_CAP
    store(ws, opt="J3", adj="B1:G1", typ=1, constraints=(("J2", "<=", "K2"), ("B1:G1", "bin", None)))
    return wb


def _production_best() -> tuple[float, tuple[int, int]]:
    best = max(((5 * a + 4 * b, (a, b)) for a in range(0, 20) for b in range(0, 20)
                if 6 * a + 4 * b <= 24.5 and a + 2 * b <= 6.3))
    return float(best[0]), best[1]


@case("milp_integer_production", objective=_production_best()[0],
      x={"Model!B1": float(_production_best()[1][0]), "Model!C1": float(_production_best()[1][1])})
def _production() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=5*B1+4*C1", "D2": "=6*B1+4*C1", "D3": "=B1+2*C1", "E2": 24.5, "E3": 6.3})
    store(ws, opt="D1", adj="B1:C1", typ=1, constraints=(("D2:D3", "<=", "E2:E3"), ("B1:C1", "int", None)))
    return wb


DIF_W = [3.0, 1.0, 4.0, 1.5, 5.0]


@case("milp_alldifferent", objective=min(sum(w * p for w, p in zip(DIF_W, perm))
                                         for perm in itertools.permutations(range(1, 6))),
      check=lambda x: sorted(x.values()) == [1.0, 2.0, 3.0, 4.0, 5.0])
def _alldiff() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    for i, w in enumerate(DIF_W):
        ws.cell(2 + i, 2, 1)
        ws.cell(2 + i, 3, w)
    ws["E1"] = "=SUMPRODUCT(B2:B6,C2:C6)"
    store(ws, opt="E1", adj="B2:B6", constraints=(("B2:B6", "dif", None),))
    return wb


# -- least squares and nonlinear models --------------------------------------------------------------------------
XS = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
YS = np.array([1.3, 2.9, 5.2, 6.8, 9.1, 11.2, 12.8, 15.1, 17.2, 18.7])


def _lstsq(design: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(design, YS, rcond=None)
    return coef, float(((design @ coef - YS) ** 2).sum())


@case("least_squares_line", objective=_lstsq(np.c_[XS, np.ones(10)])[1],
      x={"Fit!E1": _lstsq(np.c_[XS, np.ones(10)])[0][0], "Fit!E2": _lstsq(np.c_[XS, np.ones(10)])[0][1]}, sheet="Fit")
def _line() -> openpyxl.Workbook:
    wb = book("Fit")
    ws = wb["Fit"]
    put(ws, {"D1": "a", "E1": 1.0, "D2": "b", "E2": 0.0, "G1": "=SUMXMY2(B2:B11,C2:C11)"})
    for i, (x, y) in enumerate(zip(XS, YS)):
        ws.cell(2 + i, 1, float(x))
        ws.cell(2 + i, 2, float(y))
        ws.cell(2 + i, 3, f"=$E$1*A{2 + i}+$E$2")
    store(ws, opt="G1", adj="E1:E2", neg=2)
    return wb


@case("rmse_quadratic", objective=math.sqrt(_lstsq(np.c_[XS ** 2, XS, np.ones(10)])[1] / 10), sheet="Fit")
def _quadratic() -> openpyxl.Workbook:
    wb = book("Fit")
    ws = wb["Fit"]
    put(ws, {"F1": 0.5, "G1": 0.5, "H1": 0.5, "J1": "=SQRT(SUMXMY2(B2:B11,C2:C11)/COUNT(B2:B11))"})
    for i, (x, y) in enumerate(zip(XS, YS)):
        ws.cell(2 + i, 1, float(x))
        ws.cell(2 + i, 2, float(y))
        ws.cell(2 + i, 3, f"=$F$1*A{2 + i}^2+$G$1*A{2 + i}+$H$1")
    store(ws, opt="J1", adj="F1:H1", neg=2)
    return wb


@case("rosenbrock", objective=1.0, x={"Model!B1": 1.0, "Model!B2": 1.0})
def _rosenbrock() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": -1.2, "B2": 1.0, "D1": "=1+(1-B1)^2+100*(B2-B1^2)^2"})
    store(ws, opt="D1", adj="B1:B2", neg=2)
    return wb


def _rosen_slsqp() -> float:
    from scipy.optimize import minimize
    res = minimize(lambda z: 1 + (1 - z[0]) ** 2 + 100 * (z[1] - z[0] ** 2) ** 2, [-1.2, 1.0], method="SLSQP",
                   tol=1e-15, bounds=[(-0.5, None), (None, None)],
                   constraints=[{"type": "ineq", "fun": lambda z: 1 - z[0] - z[1]},
                                {"type": "ineq", "fun": lambda z: 0.6 - z[0] + 0.5 * z[1]}])
    return float(res.fun)


@case("rosenbrock_linear_constraints", objective=_rosen_slsqp())
def _rosen_constrained() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": -1.2, "B2": 1.0, "D1": "=1+(1-B1)^2+100*(B2-B1^2)^2", "D2": "=B1+B2", "D3": "=B1-0.5*B2",
             "E3": 0.6})
    store(ws, opt="D1", adj="B1:B2", neg=2,
          constraints=(("D2", "<=", 1), ("D3", "<=", "E3"), ("B1", ">=", -0.5)))
    return wb


@case("max_product_budget", objective=12.5, x={"Model!A1": 5.0, "Model!B1": 2.5})
def _max_product() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"A1": 1, "B1": 1, "C1": "=A1*B1", "C2": "=A1+2*B1"})
    store(ws, opt="C1", adj="A1:B1", typ=1, constraints=(("C2", "<=", 10),))
    return wb


ROOT = float(next(r.real for r in np.roots([1, 0, 1, -10]) if abs(r.imag) < 1e-12))


@case("value_of", objective=10.0, x={"Model!A1": ROOT})
def _value_of() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"A1": 0.5, "B1": "=A1^3+A1"})
    store(ws, opt="B1", adj="A1", typ=3, val=10)
    return wb


@case("no_objective_feasible_point", x={"Model!B1": 3.0, "Model!C1": 2.0})
def _feasibility() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=B1+C1", "D2": "=B1-C1"})
    store(ws, opt=None, adj="B1:C1", constraints=(("D1", "=", 5), ("D2", "=", 1)))
    return wb


@case("objective_on_another_sheet", objective=7.0,
      x={"Model!B1": 1.5, "Model!B2": -2.0, "Model!B3": 4.0})
def _other_sheet() -> openpyxl.Workbook:
    wb = book("Model", "Summary (2)")
    put(wb["Model"], {"B1": 0, "B2": 0, "B3": 0})
    put(wb["Summary (2)"], {"C1": 1.5, "C2": -2.0, "C3": 4.0, "A1": "=7+SUMXMY2(Model!B1:B3,C1:C3)"})
    store(wb["Model"], opt=ref("Summary (2)", "A1"), adj="B1:B3", neg=2)
    return wb


TARGET = {"B2": 1.0, "C2": 2.0, "D2": 3.0, "B3": 4.0, "C3": 5.0, "D3": 6.0, "B4": 7.0, "C4": 8.0, "D4": 9.0}


@case("scattered_overlapping_areas", objective=(0.5 - 3.0) ** 2 + (-1.0 - 7.0) ** 2 + 2.0,
      x={f"Grid!{c}": v for c, v in TARGET.items() if c not in ("D2", "B4")} | {"Grid!F1": 3.0}, sheet="Grid")
def _overlapping() -> openpyxl.Workbook:
    wb = book("Grid")
    ws = wb["Grid"]
    for c, v in TARGET.items():
        ws[c] = 0.0
        ws[c.replace("B", "H").replace("C", "I").replace("D", "J")] = v
    put(ws, {"D2": 0.5, "B4": -1.0, "F1": 0.0, "L1": "=SUMXMY2(B2:D4,H2:J4)+(F1-3)^2+2"})
    store(ws, opt="L1", adj=ref("Grid", "B2:C3") + "," + ref("Grid", "C3:D4") + "," + ref("Grid", "F1") + ","
          + ref("Grid", "B3"), neg=2)
    return wb


def _named_reference() -> float:
    from scipy.optimize import linprog
    return float(linprog([-2, -3, -1.5], A_ub=[[1, 1, 1], [2, 1, 3]], b_ub=[10, 18], bounds=[(0, 4)] * 3,
                         method="highs").fun) * -1


@case("named_ranges", objective=_named_reference(), sheet="Shop")
def _named() -> openpyxl.Workbook:
    wb = book("Shop")
    ws = wb["Shop"]
    put(ws, {"B2": 0, "B3": 0, "B4": 0, "C2": 2, "C3": 3, "C4": 1.5, "D2": 2, "D3": 1, "D4": 3,
             "F1": "=SUMPRODUCT(qty,price)", "F2": "=SUM(qty)", "F3": "=SUMPRODUCT(qty,hours)", "G2": 10, "G3": 18,
             "G5": 4})
    wb.defined_names["qty"] = DefinedName("qty", attr_text=ref("Shop", "B2:B4"))
    wb.defined_names["price"] = DefinedName("price", attr_text=ref("Shop", "C2:C4"))
    ws.defined_names["hours"] = DefinedName("hours", attr_text=ref("Shop", "D2:D4"))
    ws.defined_names["profit"] = DefinedName("profit", attr_text=ref("Shop", "F1"))
    store(ws, opt="Shop!profit", adj="qty", typ=1,
          constraints=(("F2:F3", "<=", "G2:G3"), ("Shop!qty", "<=", "G5")))
    return wb


@case("merged_variable_cells", objective=5.0, x={"Model!B2": 1.0, "Model!B3": 2.0})
def _merged() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B2": 0, "B3": 0, "E1": "=(B2-1)^2+(B3-2)^2+5"})
    ws.merge_cells("B2:C2")
    store(ws, opt="E1", adj="B2:C3", neg=2)
    return wb


@case("quoted_sheet_name", objective=36.0, x={f"{ODD}!B1": 2.0, f"{ODD}!C1": 6.0}, sheet=ODD)
def _quoted() -> openpyxl.Workbook:
    return _wyndor(ODD)


@case("formula_right_side", objective=18.0, x={"Model!B1": 3.0, "Model!C1": 3.0})
def _formula_rhs() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=B1^2+C1^2", "D2": "=B1+C1", "E1": 3})
    store(ws, opt="D1", adj="B1:C1", constraints=(("D2", ">=", "=2*Model!$E$1"),))
    return wb


BIN_T = (0.7, 0.2, 0.6)


def _binary_best() -> float:
    def f(a, b, c):
        return (a - BIN_T[0]) ** 2 + (b - BIN_T[1]) ** 2 + (c - BIN_T[2]) ** 2 + 0.8 * a * c
    return min(f(*p) for p in itertools.product((0, 1), repeat=3))


@case("binary_nonlinear_branch_and_bound", objective=_binary_best(), engine="grg")
def _binary_nl() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": 0,
             "F1": f"=(B1-{BIN_T[0]})^2+(C1-{BIN_T[1]})^2+(D1-{BIN_T[2]})^2+0.8*B1*D1"})
    store(ws, opt="F1", adj="B1:D1", constraints=(("B1:D1", "bin", None),))
    return wb


def _well_min() -> float:
    x = np.linspace(-3, 3, 600001)
    return float(((x ** 2 - 1) ** 2 + 0.3 * x).min())


@case("evolutionary_double_well", objective=_well_min(), engine="multistart")
def _evolutionary() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 1.3, "C1": "=(B1^2-1)^2+0.3*B1"})
    store(ws, opt="C1", adj="B1", eng=3, neg=2, constraints=(("B1", "<=", 3), ("B1", ">=", -3)))
    return wb


def _double_well_grg() -> openpyxl.Workbook:
    wb = _evolutionary()
    wb["Model"].defined_names["solver_eng"].attr_text = "1"
    return wb


CASES["multistart_flag_on_grg"] = Case(_double_well_grg, objective=_well_min(), engine="multistart",
                                       args=("--multistart", "8"))


@case("nonnegative_default", objective=4.0, x={"Model!B1": 0.0, "Model!C1": 1.0})
def _nonneg() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 3, "C1": 3, "D1": "=(B1+2)^2+(C1-1)^2"})
    store(ws, opt="D1", adj="B1:C1", neg=1)
    return wb


CASES["free_flag_overrides_solver_neg"] = Case(_nonneg, objective=0.0, x={"Model!B1": -2.0, "Model!C1": 1.0},
                                               args=("--free",))


@case("model_from_the_command_line", objective=8.0, x={"Model!B1": 2.0, "Model!C1": 2.0},
      args=("--objective", "D1", "--vars", "B1:C1", "--min", "--constraint", "D2>=4"))
def _cli_model() -> openpyxl.Workbook:
    wb = book("Model")
    put(wb["Model"], {"B1": 5, "C1": 0, "D1": "=B1^2+C1^2", "D2": "=B1+C1"})
    return wb


# -- models Excel refuses (and so do we): exit 1, one line, file untouched -----------------------------------------
@case("infeasible_lp", refused=("infeasible",))
def _infeasible() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=B1+C1", "D2": "=B1-C1"})
    store(ws, opt="D1", adj="B1:C1", constraints=(("D1", "<=", 3), ("D2", ">=", 5), ("C1", ">=", 0)))
    return wb


@case("infeasible_nonlinear", refused=("infeasible",))
def _infeasible_nl() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=B1^2+C1^2", "D2": "=B1+C1"})
    store(ws, opt="D1", adj="B1:C1", neg=2, constraints=(("D1", "<=", 1), ("D2", ">=", 3)))
    return wb


@case("unbounded_lp", refused=("unbounded",))
def _unbounded() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"B1": 0, "C1": 0, "D1": "=B1+C1", "D2": "=B1-C1"})
    store(ws, opt="D1", adj="B1:C1", typ=1, constraints=(("D2", "<=", 1),))
    return wb


@case("ref_leftover", refused=("#REF!", "solver_adj"))
def _ref_leftover() -> openpyxl.Workbook:
    wb = _rosenbrock()
    wb["Model"].defined_names["solver_adj"].attr_text = "Model!#REF!"
    return wb


@case("text_in_objective", refused=("cell D1",))
def _text_objective() -> openpyxl.Workbook:
    wb = _rosenbrock()
    wb["Model"]["D1"] = "to do"
    return wb


@case("error_in_constraint", refused=("#DIV/0!", "D2"))
def _error_constraint() -> openpyxl.Workbook:
    wb = _max_product()
    wb["Model"]["D2"] = "=1/0"
    wb["Model"]["C2"] = "=A1+2*B1+D2"
    return wb


@case("circular_reference", refused=("circular",))
def _circular() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"A1": 1, "B1": "=A1+B2", "B2": "=B1*0.5", "C1": "=B1^2"})
    store(ws, opt="C1", adj="A1", neg=2)
    return wb


@case("objective_independent_of_variables", refused=("cell C1", "does not depend"))
def _independent() -> openpyxl.Workbook:
    wb = book("Model")
    ws = wb["Model"]
    put(ws, {"A1": 1, "B1": 2, "C1": "=B1^2+1"})
    store(ws, opt="C1", adj="A1", neg=2)
    return wb


@case("protected_sheet", refused=("protected",))
def _protected() -> openpyxl.Workbook:
    wb = _rosenbrock()
    wb["Model"].protection.sheet = True
    return wb


CASES["simplex_on_a_nonlinear_model"] = Case(_rosenbrock, refused=("not linear", "D1", "--engine grg"),
                                             args=("--engine", "lp"))
CASES["node_limit"] = Case(_binary_nl, refused=("node limit",), args=("--node-limit", "1"))


@case("no_model", refused=("no Solver model", "--objective", "--vars"), args=("--sheet", "Model"))
def _no_model() -> openpyxl.Workbook:
    wb = book("Model")
    put(wb["Model"], {"A1": 1, "B1": "=A1^2"})
    return wb


# -- running them ------------------------------------------------------------------------------------------------
def split(cell: str) -> tuple[str, str]:
    sheet, _, addr = cell.rpartition("!")
    return sheet, addr


def test_there_are_enough_layouts() -> None:
    assert len(CASES) >= 25
    assert sum(bool(c.refused) for c in CASES.values()) >= 8


@pytest.fixture(scope="module")
def solved(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Every case built and solved once: name -> (path, JSON outcome of its sheet or the refusal)."""
    root = tmp_path_factory.mktemp("acceptance")
    done = {}
    for name, c in CASES.items():
        path = root / f"{name}.xlsx"
        c.build().save(path)
        shutil.copy(path, root / f"{name}.orig")
        digest = sha(path)
        rc, out, err = run_cli("solve", path, "--json", *c.args)
        done[name] = (path, {"rc": rc, "out": out, "err": err, "digest": digest})
    return done


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.refused])
def test_solved_to_the_known_optimum(solved, name: str) -> None:
    c = CASES[name]
    path, r = solved[name]
    assert r["rc"] == 0, r["err"]
    outcome = json.loads(r["out"])["sheets"][c.sheet]
    assert outcome["status"] in ("optimal", "locally optimal")
    assert outcome["max_violation"] <= 1e-6
    if c.engine:
        assert outcome["engine"].startswith(c.engine), outcome["engine"]
    if c.objective is not None:
        assert outcome["objective_after"] == pytest.approx(c.objective, rel=1e-6, abs=1e-9)
    wb = openpyxl.load_workbook(path)
    for cell, value in c.x.items():
        sheet, addr = split(cell)
        assert wb[sheet][addr].value == pytest.approx(value, rel=1e-6, abs=1e-7), cell
    if c.check:
        adj = wb[c.sheet].defined_names.get("solver_adj")
        cells = adj.attr_text.split("!")[1].replace("$", "") if adj else ""
        values = {cl.coordinate: cl.value for row in wb[c.sheet][cells] for cl in row}
        c.check(values)
    # the objective's cached value is the solved one: pandas / openpyxl read it without a spreadsheet engine
    if outcome["objective_cell"]:
        sheet, addr = outcome["objective_cell"].rsplit("!", 1)
        cached = openpyxl.load_workbook(path, data_only=True)[sheet.strip("'")][addr].value
        assert cached == pytest.approx(outcome["objective_after"], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.refused])
def test_refused_with_one_line_and_the_file_untouched(solved, name: str) -> None:
    path, r = solved[name]
    assert r["rc"] == 1, r["out"]
    assert r["err"].startswith("xlcollab: error: ") and r["err"].count("\n") == 1, r["err"]
    for word in CASES[name].refused:
        assert word in r["err"], (word, r["err"])
    assert sha(path) == r["digest"]
    assert json.loads(r["out"])["sheets"]  # --json still says what happened


def test_only_the_model_sheet_changes(solved) -> None:
    """Every part but the solved sheet's XML (comments, styles, the rest) survives byte for byte."""
    path, _ = solved["lp_max_wyndor"]
    with zipfile.ZipFile(path.with_suffix(".orig")) as a, zipfile.ZipFile(path) as b:
        assert a.namelist() == b.namelist()
        differ = [n for n in a.namelist() if a.read(n) != b.read(n)]
    assert differ == ["xl/worksheets/sheet1.xml"]


@pytest.mark.libreoffice
def test_libreoffice_recomputes_the_objective_we_report(solved, tmp_path: Path) -> None:
    from xlcollab.book import libreoffice

    if not libreoffice.available():
        pytest.skip("LibreOffice (soffice) is not installed")
    names = [n for n, c in CASES.items() if not c.refused]
    outs = libreoffice.recalc([solved[n][0] for n in names], tmp_path)
    for name, out in zip(names, outs):
        outcome = json.loads(solved[name][1]["out"])["sheets"][CASES[name].sheet]
        if outcome["objective_cell"] is None:
            continue
        sheet, addr = outcome["objective_cell"].rsplit("!", 1)
        value = openpyxl.load_workbook(out, data_only=True)[sheet.strip("'").replace("''", "'")][addr].value
        assert value == pytest.approx(outcome["objective_after"], rel=1e-9, abs=1e-12), name


def test_sheet_all_solves_every_sheet_with_a_model(tmp_path: Path) -> None:
    wb = _rosenbrock()
    other = wb.create_sheet("Second")
    put(other, {"A1": 3, "B1": "=(A1-4)^2+1"})
    store(other, opt="B1", adj="A1", neg=2)
    wb.create_sheet("Notes")["A1"] = "no model here"
    path = tmp_path / "two.xlsx"
    wb.save(path)
    rc, out, err = run_cli("solve", path, "--sheet", "all", "--json")
    assert rc == 0, err
    sheets = json.loads(out)["sheets"]
    assert set(sheets) == {"Model", "Second"}
    assert sheets["Model"]["objective_after"] == pytest.approx(1.0, rel=1e-9)
    assert sheets["Second"]["objective_after"] == pytest.approx(1.0, rel=1e-9)
