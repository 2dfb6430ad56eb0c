"""Every ribbon action end to end, the way Excel runs it: the Python statement the add-in's VBA hands RunPython, run
with the Book of the calling workbook, on workbook files and on a live LibreOffice over UNO (the same macro code)."""
from __future__ import annotations

import shutil

import openpyxl
import pytest

from xlcollab.book import libreoffice, unobook
from xlcollab.book.filebook import FileBook
from xlcollab.excel import macros, ribbon

needs_lo = pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")


def command(macro: str, **chosen: str) -> str:
    """What the ribbon's Sub for `macro` hands RunPython with these drop-down items chosen, built as its VBA does
    (`Keyword`: a number unquoted, text quoted, "as the sheet says" left out; `Joined`: comma-separated)."""
    parts = []
    for key in ribbon.PASSES[macro]:
        value = chosen.get(key, ribbon.SHEET)
        if value != ribbon.SHEET:
            parts.append(f"{key}={value}" if value.isdigit() else f"{key}='{value}'")
    return f"import xlcollab.excel as x; x.{macro}({', '.join(parts)})"


def test_the_commands_offer_only_what_the_drop_downs_hold():
    for macro, keys in ribbon.PASSES.items():
        for key in keys:
            assert key in ribbon.CHOICES
    assert command("solve", device="cpu", multistart="4") == "import xlcollab.excel as x; x.solve(device='cpu', multistart=4)"
    assert command("run") == "import xlcollab.excel as x; x.run()"


class Caller(FileBook):
    """A workbook file as the calling workbook: the sheet whose button was clicked, and what Excel would show."""

    def __init__(self, path, active: str) -> None:
        super().__init__(path)
        self.active, self.messages, self.alerts, self.boxes = active, [], [], []

    def active_sheet(self) -> str:
        return self.active

    def status(self, message: str) -> None:
        self.messages.append(message)

    def alert(self, message: str) -> None:
        self.alerts.append(message)

    def inform(self, message: str) -> None:
        self.boxes.append(message)


def click(monkeypatch, book, statement: str) -> None:
    """Run a RunPython statement with `book` as xlwings' Book.caller()."""
    monkeypatch.setattr(macros, "caller_book", lambda: book)
    exec(statement, {})


@pytest.fixture
def copy(bundled, tmp_path):
    return lambda kind: shutil.copy(bundled[kind], tmp_path / bundled[kind].name)


# -- workbook files ---------------------------------------------------------------------------------------------
@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice not installed")
def test_solve_from_the_ribbon_on_a_file(monkeypatch, copy, tmp_path):
    path = copy("collab")
    book = Caller(path, "bias")
    click(monkeypatch, book, command("solve", optimizer="adam", device="cpu"))
    assert book.alerts == [] and book.messages[-1].startswith("xlcollab: Solve done: locally optimal, objective 'bias'!")
    assert "(adam, " in book.messages[-1] and "on cpu" in book.messages[-1]
    assert book.boxes == [book.messages[-1].removeprefix("xlcollab: ")]  # and in a box: a Solve takes a while
    final = float(book.messages[-1].split("-> ")[1].split(",")[0])
    (out,) = libreoffice.recalc([path], tmp_path / "recalc")  # LibreOffice's own formulas agree with the message
    rmse = openpyxl.load_workbook(out, data_only=True)["bias"][FileBook(path).ref_of("bias", "rmse")].value
    assert rmse == pytest.approx(final, abs=5e-5)
    assert FileBook(path).read_name("bias", "last_run")[0][-1] == "adam"


def test_a_ribbon_choice_a_collab_tab_cannot_take_is_refused_naming_it(monkeypatch, copy):
    path = copy("collab")
    before = path.read_bytes()
    book = Caller(path, "dotprod")
    click(monkeypatch, book, command("solve", engine="lp"))
    assert path.read_bytes() == before
    assert len(book.alerts) == 1 and "engine 'lp'" in book.alerts[0] and book.alerts[0].startswith("xlcollab Solve failed")


# -- a foreign workbook: any sheet's Excel Solver model (the engines' generated acceptance cases) ------------------
def foreign(name: str, folder) -> "Path":
    from test_solver_workbooks import CASES
    path = folder / f"{name}.xlsx"
    CASES[name].build().save(path)
    return path


@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice not installed")
def test_solve_a_foreign_workbooks_solver_model_from_the_ribbon(monkeypatch, tmp_path):
    path = foreign("lp_max_wyndor", tmp_path)  # Wyndor Glass: max 3x + 5y, optimum 36 at (2, 6)
    book = Caller(path, "Model")
    click(monkeypatch, book, command("solve"))
    assert book.alerts == [] and book.boxes[-1].startswith("Solve done: optimal, objective 'Model'!E3: 0 -> 36, lp, ")
    solved = FileBook(path)
    assert solved.read("Model", "B1:C1")[0] == [pytest.approx(2.0, abs=1e-9), pytest.approx(6.0, abs=1e-9)]
    (out,) = libreoffice.recalc([path], tmp_path / "recalc")  # LibreOffice's own SUMPRODUCT agrees
    assert openpyxl.load_workbook(out, data_only=True)["Model"]["E3"].value == pytest.approx(36.0, abs=1e-9)


def test_ribbon_engine_device_and_multistart_reach_the_solver(monkeypatch, tmp_path):
    path = foreign("rosenbrock", tmp_path)  # min 1 + (1-x)^2 + 100 (y-x^2)^2 = 1 at (1, 1)
    book = Caller(path, "Model")
    click(monkeypatch, book, command("solve", engine="evolutionary", device="cpu", multistart="4"))
    assert book.alerts == [] and "on cpu" in book.boxes[-1] and ", multistart" in book.boxes[-1]
    assert FileBook(path).read("Model", "B1:B2") == [[pytest.approx(1.0, abs=1e-4)], [pytest.approx(1.0, abs=1e-4)]]
    path = foreign("lp_max_wyndor", tmp_path)
    book = Caller(path, "Model")
    click(monkeypatch, book, command("solve", engine="lp", optimizer="adam", multistart="4"))
    assert book.alerts == [] and ", lp, " in book.boxes[-1]  # a linear model: the descent settings do not apply
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("Notes")
    wb.save(path)
    before = path.read_bytes()
    sheetless = Caller(path, "Notes")  # a sheet without a model: the one-line reason, nothing written
    click(monkeypatch, sheetless, command("solve"))
    assert path.read_bytes() == before and "no Solver model" in sheetless.alerts[0]


# -- a live LibreOffice ----------------------------------------------------------------------------------------
@pytest.mark.libreoffice
@needs_lo
def test_ribbon_actions_on_a_live_libreoffice(monkeypatch, office, copy):
    book = office.open(copy("collab"))
    try:
        book.activate("dotprod")
        click(monkeypatch, book, command("solve", optimizer="lbfgs", device="cpu"))
        assert book.alerts == [] and "(lbfgs, " in book.messages[-1]
        final = float(book.messages[-1].split("-> ")[1].split(",")[0])
        assert book.value("dotprod", book.ref_of("dotprod", "rmse")) == pytest.approx(final, abs=5e-5)
    finally:
        book.close()
    book = office.open(copy("graddesc"))
    try:
        book.activate("adam")
        click(monkeypatch, book, command("run"))
        click(monkeypatch, book, command("run"))
        assert book.read_name("adam", "epoch") == [[10.0]] and book.alerts == []
        click(monkeypatch, book, command("reset"))
        assert book.read_name("adam", "epoch") == [[0.0]]
    finally:
        book.close()


@pytest.mark.libreoffice
@needs_lo
def test_solve_a_foreign_workbook_live(monkeypatch, office, tmp_path):
    book = office.open(foreign("lp_max_wyndor", tmp_path))
    try:
        book.activate("Model")
        click(monkeypatch, book, command("solve"))
        assert book.alerts == [] and book.messages[-1].startswith("xlcollab: Solve done: optimal, objective")
        assert book.value("Model", "E3") == pytest.approx(36.0, abs=1e-9)  # LibreOffice recomputes the objective
        assert book.values("Model", "B1:C1") == [[pytest.approx(2.0, abs=1e-9), pytest.approx(6.0, abs=1e-9)]]
    finally:
        book.close()
