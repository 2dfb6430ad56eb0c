"""Excel Solver's model as a workbook stores it: the hidden sheet-scoped `solver_*` names, read into cells.

Excel saves the model of each sheet as hidden names local to that sheet (DESIGN §2): `solver_opt` the objective
cell, `solver_adj` the variable cells (comma-separated areas), `solver_typ` 1 max / 2 min / 3 value of
`solver_val`, `solver_neg` 1 = variables without a lower bound of their own are >= 0, `solver_eng` 1 GRG / 2 Simplex
LP / 3 Evolutionary, and `solver_num` constraints `solver_lhsN` `solver_relN` (1 <=, 2 =, 3 >=, 4 int, 5 bin,
6 dif) `solver_rhsN`. A name's text is a range, `#REF!` (Excel's leftover when a referenced cell was deleted), a
number, or a formula. This module reads them (as OpenSolver's model reader does) and knows nothing of formulas:
the compiler evaluates what the cells compute.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Union

from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.errors import WorkbookError
from xlcollab.solver.refs import Cell, parse_area, split_areas

RELATIONS = {1: "<=", 2: "=", 3: ">=", 4: "int", 5: "bin", 6: "dif"}
GOALS = {1: "max", 2: "min", 3: "value"}
ENGINES = {1: "grg", 2: "lp", 3: "evolutionary"}
TYPE_WORDS = {"int": "integer", "bin": "binary", "dif": "alldiff"}  # what Excel stores as the RHS of 4-6

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Formula:
    """A right-hand side Excel keeps as a formula (e.g. `=2*Sheet1!$B$1`), evaluated on `sheet`."""
    text: str
    sheet: str


Rhs = Union[tuple[Cell, ...], float, Formula, None]


@dataclass(frozen=True)
class Constraint:
    """lhs rel rhs, row-major cells; rhs: cells, a constant, a formula, or None for int/bin/dif."""
    lhs: tuple[Cell, ...]
    rel: str
    rhs: Rhs
    label: str  # how messages name it: "solver_lhs2" or "--constraint 'A1:A3<=B1'"


@dataclass(frozen=True)
class SolverModel:
    """One sheet's Solver model; `objective` None means: find a feasible point."""
    sheet: str
    objective: Cell | None
    variables: tuple[Cell, ...]
    goal: str = "min"             # max, min or value
    value: float = 0.0            # the target of goal "value"
    engine: str = "grg"           # grg, lp, evolutionary (solver_eng)
    nonnegative: bool = True      # Excel's default: "Make Unconstrained Variables Non-Negative"
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)


# -- the text of one name ------------------------------------------------------------------------------------
def _fail(book: Book, sheet: str, message: str, cell: str | None = None) -> WorkbookError:
    return WorkbookError(message, sheet=sheet, cell=cell, path=book.name)


def is_ref_error(text: str) -> bool:
    """Excel's leftover of a deleted reference: "Sheet1!#REF!", "#REF!$A$1", "'a'!#REF!,B2"."""
    return "#REF!" in text.upper()


def number(text: str) -> float | None:
    """The number a name holds ("2", "=0.5", "1E-06"), else None."""
    t = text.strip().lstrip("=").strip()
    return float(t) if _NUMBER.match(t) else None


def cells(book: Book, sheet: str, text: str, what: str, _depth: int = 0) -> tuple[Cell, ...]:
    """The cells of a reference text (areas, quoted sheets, defined names), row-major per area, in order."""
    body = text.strip().lstrip("=").strip()
    if is_ref_error(body):
        raise _fail(book, sheet, f"{what}: {body} points at a deleted cell; Excel leaves #REF! behind when a "
                    "referenced cell is deleted: set the model again in Solver or give it with --objective/--vars")
    out: list[Cell] = []
    for part in split_areas(body):
        try:
            area = parse_area(part.strip())
        except ValueError:
            area = None
        if area is None:
            out += _named_cells(book, sheet, part.strip(), what, _depth)
            continue
        target, a, b = area
        target = target or sheet
        if a.row is None or a.col is None:
            raise _fail(book, sheet, f"{what} ({body}) covers whole rows or columns; give the cells themselves")
        if target not in book.sheet_names():
            raise _fail(book, sheet, f"{what} ({body}) refers to sheet '{target}', which the workbook does not have")
        out += [(target, r, c) for r in range(min(a.row, b.row), max(a.row, b.row) + 1)
                for c in range(min(a.col, b.col), max(a.col, b.col) + 1)]
    return tuple(out)


def _named_cells(book: Book, sheet: str, area: str, what: str, depth: int) -> list[Cell]:
    """A defined name used as a reference ("prices", "Sheet1!prices"): sheet scope first, then the workbook's."""
    scope, _, name = area.rpartition("!")
    scope = (scope[1:-1].replace("''", "'") if scope.startswith("'") else scope) or sheet
    found = None
    if re.fullmatch(r"[A-Za-z_\\][\w.\\]*", name) and depth < 8:
        if scope in book.sheet_names():
            found = book.names(scope).get(name)
        if found is None:
            found = book.global_names().get(name)
    if found is None:
        raise _fail(book, sheet, f"{what} ({area}) is neither a cell range nor a defined name of this workbook")
    return list(cells(book, scope if scope in book.sheet_names() else sheet, found, what, depth + 1))


def _code(book: Book, sheet: str, names: dict[str, str], key: str, table: dict[int, str], default: str) -> str:
    text = names.get(key)
    if text is None:
        return default
    value = number(text)
    if value is None or value not in table:
        raise _fail(book, sheet, f"{key} is {text!r}; Excel writes one of {', '.join(str(k) for k in table)} there")
    return table[int(value)]


def _flag(text: str | None, default: bool) -> bool:
    """Excel's booleans: 1 yes, 2 (or 0) no; legacy "=TRUE"/"=FALSE"."""
    if text is None:
        return default
    t = text.strip().lstrip("=").strip().strip('"').upper()
    return t in ("1", "TRUE") if t in ("0", "1", "2", "TRUE", "FALSE") else default


# -- the whole model -----------------------------------------------------------------------------------------
def has_model(book: Book, sheet: str) -> bool:
    """Whether `sheet` stores a Solver model (variable cells or an objective)."""
    names = book.names(sheet)
    return "solver_adj" in names or "solver_opt" in names


def read_model(book: Book, sheet: str) -> SolverModel:
    """The Solver model `sheet` stores; WorkbookError (naming the name) for a model that cannot be used."""
    names = book.names(sheet)
    if "solver_adj" not in names:
        raise _fail(book, sheet, "holds no Solver model (no solver_adj name): give one with --objective CELL "
                    "--vars RANGES [--max|--min|--value V] [--constraint 'A1:A3<=B1:B3']")
    objective = None
    if names.get("solver_opt", "").strip():
        found = cells(book, sheet, names["solver_opt"], "the objective (solver_opt)")
        if len(found) != 1:
            raise _fail(book, sheet, f"the objective (solver_opt = {names['solver_opt']}) must be one cell, "
                        f"it covers {len(found)}")
        objective = found[0]
    goal = _code(book, sheet, names, "solver_typ", GOALS, "min")
    value = number(names.get("solver_val", "0"))
    if goal == "value" and value is None:
        raise _fail(book, sheet, f"solver_val must be a number for 'value of', found {names.get('solver_val')!r}")
    model = SolverModel(sheet, objective, cells(book, sheet, names["solver_adj"], "the variable cells (solver_adj)"),
                        goal, value or 0.0, _code(book, sheet, names, "solver_eng", ENGINES, "grg"),
                        _flag(names.get("solver_neg"), True), tuple(_constraints(book, sheet, names)))
    return model


def _constraints(book: Book, sheet: str, names: dict[str, str]) -> list[Constraint]:
    count = number(names.get("solver_num", "0"))
    if count is None or count < 0 or count != int(count):
        raise _fail(book, sheet, f"solver_num must be a whole number, found {names.get('solver_num')!r}")
    out = []
    for i in range(1, int(count) + 1):
        keys = (f"solver_lhs{i}", f"solver_rel{i}", f"solver_rhs{i}")
        missing = [k for k in keys if k not in names]
        if missing:
            raise _fail(book, sheet, f"solver_num says {int(count)} constraints but {missing[0]} is missing")
        rel = _code(book, sheet, names, keys[1], RELATIONS, "<=")
        lhs = cells(book, sheet, names[keys[0]], f"the left side of constraint {i} ({keys[0]})")
        out.append(Constraint(lhs, rel, rhs_of(book, sheet, names[keys[2]], rel, f"{keys[2]}"), keys[0]))
    return out


def rhs_of(book: Book, sheet: str, text: str, rel: str, what: str) -> Rhs:
    """A right-hand side: None for int/bin/dif, a constant, cells, or a formula; #REF! refused."""
    if rel in TYPE_WORDS:
        return None
    value = number(text)
    if value is not None:
        return value
    body = text.strip().lstrip("=").strip()
    if is_ref_error(body):
        cells(book, sheet, body, f"the right side {what}")  # raises, naming it
    try:
        return cells(book, sheet, body, f"the right side {what}")
    except WorkbookError:
        if not body:
            raise _fail(book, sheet, f"the right side {what} is empty") from None
        return Formula("=" + body, sheet)


# -- what the command line adds ------------------------------------------------------------------------------
_CONSTRAINT = re.compile(r"^(?P<lhs>(?:'[^']*'|[^<>='])+?)\s*(?P<rel><=|>=|=<|=>|=|\bint\b|\bbin\b|\bdif\b)\s*(?P<rhs>.*)$", re.I)


def parse_constraint(book: Book, sheet: str, text: str) -> Constraint:
    """--constraint "A1:A3<=B1:B3", "B2>=0", "C1:C4 int", "D1=2*E1" (a formula right side)."""
    m = _CONSTRAINT.match(text.strip())
    if not m or not m["lhs"].strip():
        raise _fail(book, sheet, f"cannot read --constraint {text!r}; write it as 'A1:A3<=B1:B3', 'B2>=0' or 'C1:C4 int'")
    rel = {"=<": "<=", "=>": ">="}.get(m["rel"].lower(), m["rel"].lower())
    label = f"--constraint {text!r}"
    lhs = cells(book, sheet, m["lhs"], f"the left side of {label}")
    if rel in TYPE_WORDS:
        if m["rhs"].strip():
            raise _fail(book, sheet, f"{label}: nothing may follow '{rel}'")
        return Constraint(lhs, rel, None, label)
    if not m["rhs"].strip():
        raise _fail(book, sheet, f"{label} has no right side")
    return Constraint(lhs, rel, rhs_of(book, sheet, m["rhs"], rel, label), label)


def with_options(book: Book, sheet: str, model: SolverModel | None, *, objective: str | None = None,
                 variables: str | None = None, goal: str | None = None, value: float | None = None,
                 constraints: list[str] | tuple[str, ...] = (), nonnegative: bool | None = None) -> SolverModel:
    """The stored model (or none) with what the command line supplies or overrides."""
    if model is None:
        if variables is None:
            read_model(book, sheet)  # raises: no model, and how to give one
        model = SolverModel(sheet, None, ())
    if objective is not None:
        found = cells(book, sheet, objective, f"--objective {objective}")
        if len(found) != 1:
            raise _fail(book, sheet, f"--objective {objective} must be one cell, it covers {len(found)}")
        model = replace(model, objective=found[0])
    if variables is not None:
        model = replace(model, variables=cells(book, sheet, variables, f"--vars {variables}"))
    if goal is not None:
        model = replace(model, goal=goal, value=model.value if value is None else float(value))
    if nonnegative is not None:
        model = replace(model, nonnegative=nonnegative)
    if constraints:
        model = replace(model, constraints=model.constraints + tuple(parse_constraint(book, sheet, c) for c in constraints))
    return model


# -- checks before compiling ---------------------------------------------------------------------------------
def checked(book: Book, model: SolverModel) -> SolverModel:
    """The model ready to compile: overlapping variable cells once, merged cells resolved, every rule checked.

    A variable area that covers a merged range keeps only its top-left cell (the one that holds the value);
    a variable on a hidden part of a merged range alone, a protected sheet, an int/bin/dif constraint on
    cells that are not variables and left/right sides of different sizes are refused, naming the cell.
    """
    sheet = model.sheet
    if not model.variables:
        raise _fail(book, sheet, "the Solver model has no variable cells (solver_adj / --vars)")
    variables = _without_merged_tails(book, sheet, list(dict.fromkeys(model.variables)))
    for name in sorted({c[0] for c in variables}):
        if book.is_protected(name):
            raise _fail(book, name, "the sheet is protected, so its variable cells cannot change; unprotect it "
                        "(Review > Unprotect Sheet) and solve again", cell_name(*next(c for c in variables if c[0] == name)[1:]))
    known = set(variables)
    for c in model.constraints:
        if c.rel in TYPE_WORDS:
            stray = next((x for x in c.lhs if x not in known), None)
            if stray is not None:
                raise _fail(book, stray[0], f"{c.label}: an {TYPE_WORDS[c.rel]} constraint must be on variable "
                            "cells, and this cell is not one", cell_name(*stray[1:]))
        elif isinstance(c.rhs, tuple) and len(c.rhs) not in (1, len(c.lhs)) and len(c.lhs) != 1:
            raise _fail(book, sheet, f"{c.label}: the left side has {len(c.lhs)} cells and the right side "
                        f"{len(c.rhs)}; they must match, or one side be a single cell")
    return replace(model, variables=tuple(variables))


def _without_merged_tails(book: Book, sheet: str, variables: list[Cell]) -> list[Cell]:
    chosen = set(variables)
    drop: set[Cell] = set()
    for name in sorted({c[0] for c in variables}):
        for ref in book.merged_cells(name):
            r0, c0, r1, c1 = bounds(ref)
            block = {(name, r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
            tail = (block - {(name, r0, c0)}) & chosen
            if not tail:
                continue
            if (name, r0, c0) not in chosen:
                bad = min(tail)
                raise _fail(book, name, f"variable cell {cell_name(*bad[1:])} is inside the merged cell {ref}; only "
                            f"its top-left cell {cell_name(r0, c0)} holds a value", cell_name(*bad[1:]))
            drop |= tail
    return [c for c in variables if c not in drop]
