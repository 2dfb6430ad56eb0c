"""The button macros end to end: on workbook files (FileBook) and on a live LibreOffice (UnoBook over UNO)."""
from __future__ import annotations

import functools
import re
import shutil
import sys
from types import SimpleNamespace

import openpyxl
import xlwings
import pytest

from xlcollab import excel
from xlcollab.book import libreoffice, unobook
from xlcollab.excel import vba, xlsm
from xlcollab.errors import WorkbookError, XlcollabError
from xlcollab.book.filebook import FileBook
from xlcollab.sheets import collab, graddesc

needs_lo = pytest.mark.skipif(not unobook.available(), reason="LibreOffice or python3-uno not installed")
EPOCHS = dict(epochs=2, n_factors=8)  # fit_movielens kept short: the layer, not the model, is under test


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("macros")
    c = collab.build_workbook(root / "collab_filter.xlsx")
    g = graddesc.build_workbook(root / "graddesc.xlsx")
    return {"collab": c, "graddesc": g, "collab_xlsm": xlsm.make_xlsm(c, root / "collab_filter.xlsm", collab.BUTTONS)}


@pytest.fixture(scope="module")
def slice_(_embedded_ratings):
    """The 25 most active users x 25 most rated movies (a fast fit with a 15-user crosstab inside)."""
    from xlcollab.core.data import Ratings, crosstab
    table = crosstab(_embedded_ratings, 25)
    f = _embedded_ratings.frame
    frame = f[f["user"].isin(table.index) & f["item"].isin(table.columns)].reset_index(drop=True)
    return Ratings(frame, _embedded_ratings.titles.loc[list(table.columns)], "25 x 25 slice")


@pytest.fixture
def copy(built, tmp_path):
    def make(kind: str, name: str | None = None):
        src = built[kind]
        return shutil.copy(src, tmp_path / (name or src.name))
    return make


class Recording(FileBook):
    """A FileBook that keeps what a live application would show in its status bar and message boxes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages, self.alerts = [], []

    def status(self, message):
        self.messages.append(message)

    def alert(self, message):
        self.alerts.append(message)


# -- (a) workbook files --------------------------------------------------------------------------------
@pytest.mark.libreoffice
@pytest.mark.skipif(not libreoffice.available(), reason="LibreOffice not installed")
def test_solve_on_a_file_then_libreoffice_computes_torchs_rmse(copy, tmp_path):
    path = copy("collab")
    book = Recording(path)
    result = excel.solve(book, "bias")
    assert result["final_rmse"] < result["start_rmse"] and book.alerts == []
    assert book.messages[-1] == (f"xlcollab: Solve done: {result['status']}, objective 'bias'!Z4: "
                                 f"{result['start_rmse']:.6g} -> {result['final_rmse']:.6g}, grg (adam, 1000 epochs), "
                                 f"{result['seconds']:.2f} s on cpu")
    (out,) = libreoffice.recalc([path], tmp_path / "recalc")
    ws = openpyxl.load_workbook(out, data_only=True)["bias"]
    cell = FileBook(path).ref_of("bias", "rmse")
    assert ws[cell].value == pytest.approx(result["final_rmse"], rel=1e-9)


def test_run_and_reset_on_a_file(copy):
    path = copy("graddesc")
    first = excel.run(FileBook(path), "momentum")
    second = excel.run(FileBook(path), "momentum", epochs=3)
    assert (first["epoch"], second["epoch"]) == (5, 8)
    book = FileBook(path)
    assert book.read_name("momentum", "epoch") == [[8]]
    assert book.read_name("momentum", "a")[0][0] == pytest.approx(second["a"], rel=1e-15)
    trace = book.read_name("momentum", "trace")
    assert [row[0] for row in trace[:9]] == [1, 2, 3, 4, 5, 6, 7, 8, None]
    cleared = excel.reset(FileBook(path), "momentum")
    assert cleared["cleared"] == 8
    book = FileBook(path)
    assert (book.read_name("momentum", "a"), book.read_name("momentum", "b")) == ([[1]], [[1]])
    assert all(v is None for row in book.read_name("momentum", "trace")[:9] for v in row)


@pytest.mark.parametrize("macro, sheet, message", [
    (excel.solve, "adam", "holds no Solver model: set one up in Excel's Solver"),
    (excel.run, "data", "Run and Reset work on the graddesc optimizer tabs"),
    (excel.reset, "compare", "Run and Reset work on the graddesc optimizer tabs"),
    (excel.run, "no such tab", "Run and Reset work on the graddesc optimizer tabs"),
])
def test_macro_on_a_sheet_that_is_not_ours(copy, macro, sheet, message):
    path = copy("graddesc")
    before = path.read_bytes()
    book = Recording(path)
    with pytest.raises(WorkbookError, match=message):
        macro(book, sheet)
    assert path.read_bytes() == before
    assert len(book.alerts) == 1 and message in book.alerts[0] and book.alerts[0].startswith("xlcollab ")


def test_failure_mid_solve_leaves_the_file_as_it_was(copy):
    path = copy("collab")
    book = FileBook(path)
    r0 = book.ref_of("dotprod", "ratings").split(":")[0]
    book.write("dotprod", r0, "five stars")
    book.commit()
    before = path.read_bytes()
    book = Recording(path)
    with pytest.raises(XlcollabError, match=rf"cell {r0}"):
        excel.solve(book, "dotprod")
    assert path.read_bytes() == before
    assert book.pending() == {} and r0 in book.alerts[0]


def test_entry_points_need_a_calling_workbook():
    with pytest.raises(XlcollabError, match="no calling Excel workbook"):
        excel.solve()


def test_fit_movielens_on_a_macro_enabled_file(copy, slice_):
    olevba = pytest.importorskip("oletools.olevba")
    path = copy("collab_xlsm")
    book = Recording(path)
    result = excel.fit_movielens(book, **EPOCHS)
    model = excel.model_path_for(path)
    assert result["model"] == str(model) and model.is_file()
    assert any(m.startswith("xlcollab: epoch 2/2, validation RMSE") for m in book.messages)
    wb = openpyxl.load_workbook(path, keep_vba=True)
    assert wb.sheetnames == list(collab.TABS) + ["xlwings.conf", "results"]
    ws = wb["results"]
    assert [c.value for c in ws[3][:3]] == ["epoch", "train RMSE", "validation RMSE"]
    assert [ws.cell(4 + i, 1).value for i in range(3)] == [1, 2, None]
    assert ws.cell(5, 3).value == pytest.approx(result["model_valid_rmse"], rel=1e-12)  # by epoch: the model alone
    assert result["valid_rmse"] < result["model_valid_rmse"]  # + session effects (MovieLens has timestamps)
    titles = sorted(_chart_title(ch) for ch in ws._charts)
    assert titles == ["Movies on the first two principal axes of their factors", "RMSE by epoch"]
    recs = [r for r in ws.iter_rows(values_only=True) if isinstance(r[1], int) and isinstance(r[3], float)]
    assert len(recs) == 15 * 10
    user, title, pred = recs[0][0], recs[0][2], recs[0][3]
    udf = excel.XC_RECOMMEND(user, 1, str(model))
    assert udf[1] == [title, pytest.approx(pred, rel=1e-9)]
    code = olevba.VBA_Parser(str(path))
    assert {name: c for _, _, name, c in code.extract_macros()}["xlcollab.bas"] == vba.module_source()
    excel.fit_movielens(FileBook(path), ratings=slice_, **EPOCHS)  # again: results replaced, not duplicated
    assert openpyxl.load_workbook(path).sheetnames.count("results") == 1


def test_fit_movielens_to_out_keeps_the_original(copy, tmp_path, slice_):
    path = copy("collab")
    before = path.read_bytes()
    out = tmp_path / "fitted.xlsx"
    result = excel.fit_movielens(FileBook(path, out=out), ratings=slice_, **EPOCHS)
    assert path.read_bytes() == before
    assert result["model"] == str(tmp_path / "fitted.xlcollab.pt")
    assert openpyxl.load_workbook(out).sheetnames[-1] == "results"


def test_fit_movielens_that_cannot_put_its_sheet_keeps_the_earlier_model(copy, tmp_path, slice_):
    path = copy("collab")
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("results", 0)  # a 'results' sheet of the user's, not the last one: the sheet cannot be replaced
    wb.save(path)
    model = excel.model_path_for(path)
    model.write_bytes(b"an earlier model")
    before = path.read_bytes()
    book = Recording(path)
    with pytest.raises(WorkbookError, match="has a sheet 'results' that is not the last one"):
        excel.fit_movielens(book, ratings=slice_, **EPOCHS)
    assert path.read_bytes() == before and model.read_bytes() == b"an earlier model"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, model.name])  # no scratch file left
    assert len(book.alerts) == 1 and "not the last one" in book.alerts[0]


def test_fit_movielens_that_cannot_save_its_model_leaves_the_workbook(copy, tmp_path, slice_):
    path = copy("collab")
    before = path.read_bytes()
    with pytest.raises(XlcollabError, match="cannot save the model at .*no_such_folder"):
        excel.fit_movielens(FileBook(path), model_path=tmp_path / "no_such_folder" / "m.pt", ratings=slice_, **EPOCHS)
    assert path.read_bytes() == before


def test_a_file_has_no_active_sheet_to_guess(copy):
    path = copy("graddesc")
    before = path.read_bytes()
    book = Recording(path)
    with pytest.raises(NotImplementedError, match="active sheet"):
        excel.run(book)
    assert path.read_bytes() == before and "active sheet" in book.alerts[0]


def _chart_title(chart):
    return "".join(r.t for p in chart.title.tx.rich.p for r in (p.r or []))


# -- (b) a live LibreOffice ------------------------------------------------------------------------------


@pytest.mark.libreoffice
@needs_lo
def test_solve_the_active_sheet_live(office, copy):
    book = office.open(copy("collab"))
    try:
        book.activate("bias")
        before = book.read_name("dotprod", "movie_factors")
        result = excel.solve(book)
        rmse = book.value("bias", book.ref_of("bias", "rmse"))
        assert rmse == pytest.approx(result["final_rmse"], rel=1e-9)  # LibreOffice's own formulas agree with torch
        assert book.read_name("dotprod", "movie_factors") == before    # only the active tab was solved
        assert book.alerts == [] and f"{result['start_rmse']:.6g} -> {result['final_rmse']:.6g}, " in book.messages[-1]
    finally:
        book.close()


@pytest.mark.libreoffice
@needs_lo
def test_run_and_reset_live_match_the_file_backend(office, copy):
    path, twin = copy("graddesc"), copy("graddesc", "twin.xlsx")
    on_file = excel.run(FileBook(twin), "adamw")
    book = office.open(path)
    try:
        book.activate("adamw")
        live = excel.run(book)
        assert live["a"] == pytest.approx(on_file["a"], rel=1e-12) and live["epoch"] == 5
        file_trace = FileBook(twin).read_name("adamw", "trace")[:6]
        live_trace = book.read_name("adamw", "trace")[:6]
        for got, want in zip(live_trace, file_trace):
            assert got == pytest.approx(want, rel=1e-12) if want[0] is not None else all(v is None for v in got)
        excel.reset(book)
        assert (book.read_name("adamw", "a"), book.read_name("adamw", "epoch")) == ([[1.0]], [[0.0]])
    finally:
        book.close()


@pytest.mark.libreoffice
@needs_lo
def test_fit_movielens_live_writes_the_results_sheet_with_charts(office, copy, tmp_path, slice_):
    book = office.open(copy("collab"))
    try:
        result = excel.fit_movielens(book, model_path=tmp_path / "live.pt", ratings=slice_, **EPOCHS)
        assert "results" in book.sheet_names()
        charts = {c["title"]: c for c in book.charts("results")}
        assert charts["RMSE by epoch"]["type"] == "com.sun.star.chart.LineDiagram"
        assert charts["RMSE by epoch"]["series"] == 2
        scatter = charts["Movies on the first two principal axes of their factors"]
        assert (scatter["type"], scatter["x_title"], scatter["y_title"]) == ("com.sun.star.chart.XYDiagram", "axis 1", "axis 2")
        assert book.read("results", "C5")[0][0] == pytest.approx(result["model_valid_rmse"], rel=1e-12)
        excel.fit_movielens(book, model_path=tmp_path / "live.pt", ratings=slice_, **EPOCHS)
        assert book.sheet_names().count("results") == 1
        assert book.read("results", "A1")[0][0].startswith("xlcollab fit of 25 x 25 slice")
    finally:
        book.close()


@pytest.mark.libreoffice
@needs_lo
def test_failure_live_shows_the_reason_and_writes_nothing(office, copy):
    book = office.open(copy("collab"))
    try:
        book.activate("dotprod")
        first = book.ref_of("dotprod", "ratings").split(":")[0]
        book.write("dotprod", first, "abc")
        book.commit()
        before = book.read_name("dotprod", "user_factors")
        with pytest.raises(XlcollabError):
            excel.solve(book)
        assert book.read_name("dotprod", "user_factors") == before
        assert len(book.alerts) == 1 and first in book.alerts[0]
        with pytest.raises(WorkbookError, match="Run and Reset work on the graddesc optimizer tabs"):
            excel.run(book)
        assert len(book.alerts) == 2
    finally:
        book.close()


# -- Excel itself ------------------------------------------------------------------------------------------
def _excel_available() -> bool:
    if not sys.platform.startswith(("win", "darwin")):
        return False
    try:
        import xlwings as xw
        return xw.apps.count >= 0
    except Exception:
        return False


@pytest.mark.excel
@pytest.mark.skipif(not _excel_available(), reason="needs Microsoft Excel")
def test_solve_in_excel(copy):
    import xlwings as xw
    from xlcollab.book.xlbook import XlwingsBook
    app = xw.App(visible=False)
    try:
        book = XlwingsBook(app.books.open(str(copy("collab"))))
        result = excel.solve(book, "dotprod")
        assert book.book.sheets["dotprod"].range(book.ref_of("dotprod", "rmse")).value == pytest.approx(result["final_rmse"], rel=1e-9)
    finally:
        app.quit()


@pytest.mark.libreoffice
@needs_lo
def test_results_grafted_into_a_file_open_in_libreoffice_with_buttons_intact(office, copy, slice_):
    path = copy("collab_xlsm")
    excel.fit_movielens(FileBook(path), ratings=slice_, **EPOCHS)
    book = office.open(path)
    try:
        assert book.sheet_names()[-1] == "results"
        assert sorted(c["type"] for c in book.charts("results")) == ["com.sun.star.chart.LineDiagram",
                                                                      "com.sun.star.chart.XYDiagram"]
        forms = book.doc.Sheets.getByName("dotprod").DrawPage.Forms
        bound = [e.ScriptCode for f in range(forms.Count) for i in range(forms.getByIndex(f).Count)
                 for e in forms.getByIndex(f).getScriptEvents(i)]
        assert bound == [f"vnd.sun.star.script:VBAProject.xlcollab.{sub}?language=Basic&location=document"
                         for sub in ("XcSolve", "XcFitMovielens")]
    finally:
        book.close()


# -- the xlwings backend, against a stand-in for Excel's object model ------------------------------------
class FakeRange:
    """xlwings' Range semantics: one cell -> scalar, one row/column -> flat list, else list of lists."""

    def __init__(self, sheet, r0, c0, r1, c1, ndim=None):
        self.sheet, self.box, self.ndim = sheet, (r0, c0, r1, c1), ndim

    def options(self, ndim=None):
        return FakeRange(self.sheet, *self.box, ndim=ndim)

    def _grid(self, f):
        r0, c0, r1, c1 = self.box
        return [[f(self.sheet.cells.get((r, c))) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]

    @property
    def value(self):
        g = self._grid(lambda v: None if isinstance(v, str) and v.startswith("=") else v)
        if self.ndim == 2:
            return g
        if len(g) == 1 and len(g[0]) == 1:
            return g[0][0]
        return g[0] if len(g) == 1 else [row[0] for row in g] if len(g[0]) == 1 else g

    @value.setter
    def value(self, v):
        r0, c0, _, _ = self.box
        rows = v if isinstance(v, list) and v and isinstance(v[0], list) else [v if isinstance(v, list) else [v]]
        for i, row in enumerate(rows):
            for j, x in enumerate(row):
                self.sheet.cells[(r0 + i, c0 + j)] = x
                self.sheet.book.writes += 1

    @property
    def formula(self):
        g = self._grid(lambda v: "" if v is None else v if isinstance(v, str) else str(v))
        return g[0][0] if len(g) == 1 and len(g[0]) == 1 else tuple(tuple(r) for r in g)


class FakeSheet:
    def __init__(self, book, name, cells, names):
        self.book, self.name, self.cells = book, name, cells
        self.names = [SimpleNamespace(name=f"'{name}'!{k}", refers_to="=" + v) for k, v in names.items()]

    def range(self, ref, *_):
        from xlcollab.book.base import bounds
        if isinstance(ref, tuple):
            return FakeRange(self, ref[0], ref[1], ref[0], ref[1])
        r0, c0, r1, c1 = bounds(ref)
        return FakeRange(self, r0, c0, r1, c1)


class FakeSheets(list):
    def __getitem__(self, key):
        return next(s for s in self if s.name == key) if isinstance(key, str) else list.__getitem__(self, key)


def fake_excel_book(path, active):
    """An xw.Book stand-in holding a workbook file's cells (formulas as text) and sheet-scoped names."""
    wb = openpyxl.load_workbook(path)
    names = FileBook(path)
    app = SimpleNamespace(screen_updating=True, calculate=lambda: None, status_bar=None, alerts=[])
    app.alert = lambda message, **kw: app.alerts.append(message)
    app.properties = functools.partial(xlwings.App.properties, app)  # xlwings' own save-and-restore of app settings
    book = SimpleNamespace(name=path.name, fullname=str(path), app=app, writes=0)
    book.sheets = FakeSheets(FakeSheet(book, ws.title, {(c.row, c.column): c.value for row in ws.iter_rows() for c in row
                                                        if c.value is not None}, names.names(ws.title)) for ws in wb)
    book.sheets.active = book.sheets[active]
    return book


def test_xlwings_backend_runs_the_same_macro_as_the_file_backend(copy):
    from xlcollab.book.xlbook import XlwingsBook
    path, twin = copy("graddesc"), copy("graddesc", "twin.xlsx")
    fake = fake_excel_book(path, "rmsprop")
    book = XlwingsBook(fake)
    live = excel.run(book)                                   # the active sheet, as a button click
    on_file = excel.run(FileBook(twin), "rmsprop")
    assert live == pytest.approx({**on_file, "seconds": live["seconds"]})
    assert book.read_name("rmsprop", "trace")[:6] == FileBook(twin).read_name("rmsprop", "trace")[:6]
    assert book.read_name("rmsprop", "a") == FileBook(twin).read_name("rmsprop", "a")
    assert fake.app.status_bar.startswith(f"xlcollab: Run done: epoch {live['epoch']}: a = {live['a']:.6g}, ")
    assert fake.app.screen_updating is True
    writes = fake.writes
    with pytest.raises(WorkbookError, match="holds no Solver model"):
        excel.solve(book)                                    # rmsprop holds no Solver model
    assert fake.writes == writes and fake.app.alerts[-1].startswith("xlcollab Solve failed")
    book.write("rmsprop", book.ref_of("rmsprop", "steps").split(":")[0].replace("A", "E"), 1.0)
    with pytest.raises(WorkbookError, match="refusing to overwrite the formula"):
        book.commit()
    assert fake.writes == writes


# -- settings in cells -------------------------------------------------------------------------------------------
def _with_settings(path, sheet, rows):
    """Give `sheet` a settings block (label | value rows) under the sheet-scoped name `settings`, far right."""
    from openpyxl.workbook.defined_name import DefinedName
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    for i, (label, value) in enumerate(rows, start=1):
        ws.cell(i, 60, label), ws.cell(i, 61, value)
    ws.defined_names["settings"] = DefinedName("settings", attr_text=f"'{sheet}'!$BH$1:$BI${len(rows)}")
    wb.save(path)


def test_the_buttons_read_the_tabs_settings_cells(copy):
    path = copy("collab")
    _with_settings(path, "bias", [("optimizer", "sgd"), ("lr", 0.01), ("epochs", 7), ("device", "cpu"),
                                  ("multistart", None)])
    result = excel.solve(Recording(path), "bias")
    assert (result["optimizer"], result["lr"], result["epochs"], result["device"]) == ("sgd", 0.01, 7, "cpu")
    again = excel.solve(Recording(path), "bias", optimizer="adam", epochs=3)  # a ribbon choice wins over the cell
    assert (again["optimizer"], again["lr"], again["epochs"]) == ("adam", 0.01, 3)
    path = copy("graddesc")
    _with_settings(path, "adam", [("epochs", 3)])
    assert excel.run(FileBook(path), "adam")["epoch"] == 3


@pytest.mark.parametrize("rows, cell, message", [
    ([("lr", -1)], "BI1", "the learning rate must be a number > 0, found -1"),
    ([("optimizer", "adam"), ("device", "gpu")], "BI2", "the device must be one of auto, cpu, cuda, found 'gpu'"),
    ([("speed", 3)], "BH1", "the settings block has a row 'speed'"),
    ([("engine", "lp")], None, "GRG solves it, not engine 'lp'"),
    ([("multistart", 0)], "BI1", "multistart must be a whole number in [1, 100000], found 0"),
])
def test_a_bad_setting_names_its_cell_and_writes_nothing(copy, rows, cell, message):
    path = copy("collab")
    _with_settings(path, "dotprod", rows)
    before = path.read_bytes()
    book = Recording(path)
    with pytest.raises(XlcollabError, match=re.escape(message)):
        excel.solve(book, "dotprod")
    assert path.read_bytes() == before
    assert cell is None or f"sheet 'dotprod', cell {cell}: " in book.alerts[0]
