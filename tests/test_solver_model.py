"""Reading Excel Solver's stored model (xlcollab.solver.model) from the names as Excel writes them."""
from __future__ import annotations

from typing import Any

import pytest

from xlcollab.book.base import Book, bounds, cell_name
from xlcollab.errors import WorkbookError
from xlcollab.solver.model import Formula, SolverModel, checked, parse_constraint, read_model, with_options

ODD = "Odd (1)+2"


class MemoryBook(Book):
    """A workbook in a dict: {sheet: {"B3": value}}, sheet-scoped and global names, merged and protected sheets."""

    def __init__(self, cells: dict[str, dict[str, Any]], names: dict[str, dict[str, str]] | None = None,
                 global_names: dict[str, str] | None = None, merged: dict[str, list[str]] | None = None,
                 protected: tuple[str, ...] = ()) -> None:
        self.cells, self._scoped, self._global = cells, names or {}, global_names or {}
        self.merged, self.protected, self.name = merged or {}, protected, "memory.xlsx"
        super().__init__()

    def _sheet_names(self) -> list[str]:
        return list(self.cells)

    def _names(self, sheet: str) -> dict[str, str]:
        return dict(self._scoped.get(sheet, {}))

    def _global_names(self) -> dict[str, str]:
        return dict(self._global)

    def _merged_cells(self, sheet: str) -> list[str]:
        return list(self.merged.get(sheet, []))

    def _is_protected(self, sheet: str) -> bool:
        return sheet in self.protected

    def _used_range(self, sheet: str) -> str:
        return "A1:Z50"

    def _read(self, sheet: str, ref: str) -> list[list[Any]]:
        r0, c0, r1, c1 = bounds(ref)
        return [[self.cells[sheet].get(cell_name(r, c)) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]

    def _commit(self, writes: dict[str, dict[str, Any]], cached: dict[str, dict[str, Any]]) -> None:
        for sheet, cells in writes.items():
            self.cells[sheet].update(cells)


def excel_names(**extra: str) -> dict[str, str]:
    """A model as Excel 2016 saves it (the options it always writes, then the model's own names)."""
    base = {"solver_cvg": "0.0001", "solver_drv": "1", "solver_est": "1", "solver_itr": "2147483647",
            "solver_mip": "2147483647", "solver_nod": "2147483647", "solver_pre": "0.000001", "solver_ver": "3",
            "solver_num": "0", "solver_neg": "1", "solver_eng": "1", "solver_typ": "2", "solver_val": "0"}
    return base | extra


def book_with(names: dict[str, str], **kw) -> MemoryBook:
    return MemoryBook({"Sheet1": {"A1": 1.0}, ODD: {"A1": 2.0}, "data": {}}, {"Sheet1": names}, **kw)


def test_a_whole_model_as_excel_stores_it() -> None:
    names = excel_names(
        solver_opt="Sheet1!$E$1", solver_adj=f"Sheet1!$A$1:$B$2,'{ODD}'!$C$3,Sheet1!$B$2:$B$3", solver_typ="1",
        solver_eng="2", solver_neg="2", solver_num="5",
        solver_lhs1="Sheet1!$D$1:$D$3", solver_rel1="1", solver_rhs1="Sheet1!$F$1:$F$3",
        solver_lhs2="Sheet1!$D$4", solver_rel2="3", solver_rhs2="2.5",
        solver_lhs3="Sheet1!$A$1:$A$2", solver_rel3="4", solver_rhs3='"integer"',
        solver_lhs4=f"'{ODD}'!$C$3", solver_rel4="5", solver_rhs4="binary",
        solver_lhs5="Sheet1!$D$5", solver_rel5="2", solver_rhs5="Sheet1!$A$1*2+'Odd (1)+2'!$A$1")
    m = read_model(book_with(names), "Sheet1")
    assert m.objective == ("Sheet1", 1, 5)
    assert m.goal == "max" and m.engine == "lp" and m.nonnegative is False
    # row-major per area, areas in order; the overlap (B2) is still there until checked()
    assert m.variables == (("Sheet1", 1, 1), ("Sheet1", 1, 2), ("Sheet1", 2, 1), ("Sheet1", 2, 2), (ODD, 3, 3),
                           ("Sheet1", 2, 2), ("Sheet1", 3, 2))
    rels = [(c.rel, c.rhs) for c in m.constraints]
    assert rels[0] == ("<=", (("Sheet1", 1, 6), ("Sheet1", 2, 6), ("Sheet1", 3, 6)))
    assert rels[1] == (">=", 2.5) and rels[2] == ("int", None) and rels[3] == ("bin", None)
    assert rels[4] == ("=", Formula("=Sheet1!$A$1*2+'Odd (1)+2'!$A$1", "Sheet1"))
    assert [c.label for c in m.constraints] == [f"solver_lhs{i}" for i in range(1, 6)]
    ok = checked(book_with(names), m)
    assert ok.variables == (("Sheet1", 1, 1), ("Sheet1", 1, 2), ("Sheet1", 2, 1), ("Sheet1", 2, 2), (ODD, 3, 3),
                            ("Sheet1", 3, 2))


def test_value_of_defaults_and_legacy_booleans() -> None:
    m = read_model(book_with({"solver_opt": "=Sheet1!$A$9", "solver_adj": "=Sheet1!$A$1", "solver_typ": "3",
                              "solver_val": "12.5", "solver_neg": "=FALSE"}), "Sheet1")
    assert (m.goal, m.value, m.nonnegative, m.engine, m.constraints) == ("value", 12.5, False, "grg", ())
    m = read_model(book_with({"solver_adj": "Sheet1!$A$1", "solver_opt": ""}), "Sheet1")
    assert m.objective is None and m.goal == "min" and m.nonnegative  # Excel's defaults; no objective: feasibility


def test_names_used_as_references() -> None:
    names = excel_names(solver_opt="Sheet1!total", solver_adj="prices,Sheet1!$C$1")
    book = book_with(names | {"total": "Sheet1!$H$8"}, global_names={"prices": "data!$A$1:$A$3"})
    m = read_model(book, "Sheet1")
    assert m.objective == ("Sheet1", 8, 8)
    assert m.variables == (("data", 1, 1), ("data", 2, 1), ("data", 3, 1), ("Sheet1", 1, 3))


@pytest.mark.parametrize("key, text", [("solver_adj", "Sheet1!#REF!"), ("solver_opt", "#REF!$A$1"),
                                       ("solver_adj", "Sheet1!$A$1,Sheet1!#REF!"), ("solver_rhs1", "Sheet1!#REF!"),
                                       ("solver_lhs1", "#REF!")])
def test_ref_leftovers_are_refused_naming_the_name(key: str, text: str) -> None:
    names = excel_names(solver_opt="Sheet1!$E$1", solver_adj="Sheet1!$A$1", solver_num="1",
                        solver_lhs1="Sheet1!$A$1", solver_rel1="1", solver_rhs1="3") | {key: text}
    with pytest.raises(WorkbookError, match=r"#REF!") as err:
        read_model(book_with(names), "Sheet1")
    assert "sheet 'Sheet1'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("names, words", [
    ({}, ["holds no Solver model", "--objective", "--vars"]),
    ({"solver_adj": "Sheet1!$A$1", "solver_opt": "Sheet1!$A$2:$A$3"}, ["must be one cell"]),
    ({"solver_adj": "Sheet1!$A$1", "solver_typ": "7"}, ["solver_typ", "'7'"]),
    ({"solver_adj": "Sheet1!$A$1", "solver_num": "2", "solver_lhs1": "Sheet1!$A$1", "solver_rel1": "1",
      "solver_rhs1": "1"}, ["solver_lhs2 is missing"]),
    ({"solver_adj": "Nowhere!$A$1"}, ["sheet 'Nowhere'"]),
    ({"solver_adj": "not_a_name"}, ["neither a cell range nor a defined name"]),
])
def test_unusable_models_are_refused(names: dict[str, str], words: list[str]) -> None:
    with pytest.raises(WorkbookError) as err:
        read_model(book_with(names), "Sheet1")
    for word in words:
        assert word in str(err.value)


def test_merged_cells_keep_their_top_left_cell() -> None:
    book = book_with({"solver_adj": "Sheet1!$A$1:$C$1"}, merged={"Sheet1": ["B1:C1"]})
    assert checked(book, read_model(book, "Sheet1")).variables == (("Sheet1", 1, 1), ("Sheet1", 1, 2))
    book = book_with({"solver_adj": "Sheet1!$C$1:$C$2"}, merged={"Sheet1": ["B1:C1"]})
    with pytest.raises(WorkbookError, match=r"cell C1.*inside the merged cell B1:C1.*top-left cell B1"):
        checked(book, read_model(book, "Sheet1"))


def test_checked_refuses_protected_sheets_stray_types_and_size_mismatches() -> None:
    book = book_with({"solver_adj": f"'{ODD}'!$A$1"}, protected=(ODD,))
    with pytest.raises(WorkbookError, match=r"sheet 'Odd \(1\)\+2', cell A1: the sheet is protected"):
        checked(book, read_model(book, "Sheet1"))
    book = book_with({"solver_adj": "Sheet1!$A$1", "solver_num": "1", "solver_lhs1": "Sheet1!$B$1",
                      "solver_rel1": "4", "solver_rhs1": "integer"})
    with pytest.raises(WorkbookError, match=r"cell B1: solver_lhs1: an integer constraint must be on variable cells"):
        checked(book, read_model(book, "Sheet1"))
    book = book_with({"solver_adj": "Sheet1!$A$1", "solver_num": "1", "solver_lhs1": "Sheet1!$B$1:$B$3",
                      "solver_rel1": "1", "solver_rhs1": "Sheet1!$C$1:$C$2"})
    with pytest.raises(WorkbookError, match=r"left side has 3 cells and the right side 2"):
        checked(book, read_model(book, "Sheet1"))
    with pytest.raises(WorkbookError, match="no variable cells"):
        checked(book, SolverModel("Sheet1", None, ()))


def test_command_line_constraints_and_overrides() -> None:
    book = book_with({})
    c = parse_constraint(book, "Sheet1", "A1:A3<=B1:B3")
    assert c.rel == "<=" and len(c.lhs) == 3 and c.rhs == (("Sheet1", 1, 2), ("Sheet1", 2, 2), ("Sheet1", 3, 2))
    assert parse_constraint(book, "Sheet1", "B2 >= -1.5").rhs == -1.5
    assert parse_constraint(book, "Sheet1", f"'{ODD}'!C1:C4 int").rel == "int"
    assert parse_constraint(book, "Sheet1", "D1=2*E1").rhs == Formula("=2*E1", "Sheet1")
    assert parse_constraint(book, "Sheet1", "D1=<4").rel == "<="
    with pytest.raises(WorkbookError, match="cannot read --constraint"):
        parse_constraint(book, "Sheet1", "<=3")
    m = with_options(book, "Sheet1", None, objective="E5", variables="A1:B1,A1", goal="max", constraints=["A1<=3"])
    assert m.objective == ("Sheet1", 5, 5) and m.goal == "max" and len(m.variables) == 3 and len(m.constraints) == 1
    with pytest.raises(WorkbookError, match="holds no Solver model"):
        with_options(book, "Sheet1", None, objective="E5")
    stored = read_model(book_with({"solver_adj": "Sheet1!$A$1", "solver_opt": "Sheet1!$B$1", "solver_typ": "1"}), "Sheet1")
    m = with_options(book, "Sheet1", stored, goal="value", value=3.0, nonnegative=False)
    assert (m.goal, m.value, m.nonnegative, m.objective) == ("value", 3.0, False, ("Sheet1", 1, 2))
