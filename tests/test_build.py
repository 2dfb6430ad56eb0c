"""`xlcollab build`: reproducible output, and the committed workbooks/ files are what the build writes now."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from xlcollab.cli import main

REPO = Path(__file__).resolve().parents[1]


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built")
    assert main(["build", "--out", str(out)]) == 0
    return out


def test_build_writes_every_bundled_workbook(built: Path) -> None:
    names = sorted(p.name for p in built.iterdir())
    assert names == ["collab_filter.xlsm", "collab_filter.xlsx", "graddesc.xlsm", "graddesc.xlsx"]


def test_build_is_reproducible(built: Path, tmp_path: Path) -> None:
    assert main(["build", "--out", str(tmp_path)]) == 0
    for path in built.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("name", ["collab_filter.xlsx", "graddesc.xlsx", "collab_filter.xlsm", "graddesc.xlsm"])
def test_committed_workbooks_are_up_to_date(built: Path, name: str) -> None:
    committed = REPO / "workbooks" / name
    assert committed.exists(), f"workbooks/{name} is missing: run `xlcollab build`"
    assert parts(committed) == parts(built / name), f"workbooks/{name} is stale: run `xlcollab build` and commit"


def test_each_workbook_declares_its_buttons_and_the_tabs_its_actions_take() -> None:
    from xlcollab.errors import WorkbookError
    from xlcollab.sheets import collab, graddesc

    assert list(graddesc.BUTTONS) == graddesc.OPTIMIZERS and set(graddesc.BUTTONS["adam"]) == {"run", "reset"}
    assert list(collab.BUTTONS) == list(collab.SHEETS) and collab.BUTTONS["dotprod"] == ("solve", "fit_movielens")
    assert graddesc.tabs("all") == graddesc.OPTIMIZERS and graddesc.tabs(["all"]) == graddesc.OPTIMIZERS
    assert graddesc.tabs(["adam", "l2"]) == ["adam", "l2"] and collab.tabs("bias") == ["bias"]
    for tabs, bad, words in ((graddesc.tabs, "compare", "Run and Reset work on the graddesc optimizer tabs"),
                             (graddesc.tabs, [], "Run and Reset work"), (collab.tabs, "adam", "Solve works on the "
                                                                          "collab_filter tabs (dotprod, bias")):
        with pytest.raises(WorkbookError, match=r"^file b\.xlsx.*") as info:
            tabs(bad, path="b.xlsx")
        assert words in str(info.value)


# -- any data in the sheets: xlcollab build --ratings FILE --users N --movies M --factors K ----------------------
def _write_ratings(path: Path, n_users: int, n_movies: int, seed: int) -> None:
    """Ratings of a low-rank taste model, as MovieLens writes them: a CSV with a header, or ml-1m's '::' lines."""
    import numpy as np

    rng = np.random.default_rng(seed)
    users, movies = rng.normal(size=(n_users, 2)), rng.normal(size=(n_movies, 2))
    rows = [(u + 1, 100 + m, float(np.clip(np.round((3 + users[u] @ movies[m]) * 2) / 2, 0.5, 5)), 978300760 + u + m)
            for u in range(n_users) for m in range(n_movies) if rng.random() < 0.95 - 0.5 * (u + m) / (n_users + n_movies)]
    if path.suffix == ".csv":
        path.write_text("userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows))
    else:
        path.write_text("".join(f"{u}::{m}::{r:g}::{t}\n" for u, m, r, t in rows))


@pytest.mark.parametrize("name,users,movies,factors", [("ratings.csv", 20, 20, 8), ("ratings.dat", 5, 7, 2)])
def test_build_from_your_own_ratings(tmp_path: Path, name: str, users: int, movies: int, factors: int) -> None:
    import numpy as np
    import openpyxl

    from xlcollab.book.filebook import FileBook
    from xlcollab.core.data import crosstab, load_ratings
    from xlcollab.sheets import collab

    source = tmp_path / name
    _write_ratings(source, 30, 30, seed=len(name) + users)
    out = tmp_path / "out"
    assert main(["build", "--out", str(out), "--no-xlsm", "--ratings", str(source), "--users", str(users),
                 "--movies", str(movies), "--factors", str(factors)]) == 0
    path = out / "collab_filter.xlsx"
    book, wb = FileBook(path), openpyxl.load_workbook(path)
    table = crosstab(load_ratings(source), max(users, movies)).iloc[:users, :movies]
    grid = [[np.nan if v is None else v for v in row] for row in book.read_name("dotprod", "ratings")]
    np.testing.assert_array_equal(np.array(grid, dtype=float), table.to_numpy())
    assert [v for (v,) in book.read_name("bias", "user_ids")] == list(table.index)
    variables = users * factors + factors * movies
    for sheet in ("dotprod", "movielens_emb", "movielens_1hot"):
        shapes = {name: np.shape(book.read_name(sheet, name)) for name in ("user_factors", "movie_factors")}
        assert sorted(shapes.values()) == sorted([(users, factors), (movies, factors) if sheet != "dotprod"
                                                  else (factors, movies)]), sheet
        names = book.names(sheet)
        assert names["solver_adj"].split(",") == [names[p] for p in collab.PARAMS[sheet]]  # Solver's model, always
        says = "Excel's Solver stops at 200" in (wb[sheet]["A2"].value or "")
        assert says == (variables > 200), (sheet, variables)
    long = book.read_name("movielens_emb", "ratings")
    assert len(long) == int(table.notna().to_numpy().sum())
    assert main(["solve", str(path), "--sheet", "dotprod", "--epochs", "30"]) == 0  # our Solver runs it all the same


def test_build_refuses_ratings_it_cannot_hold(tmp_path: Path, capsys) -> None:
    scale = tmp_path / "ten.csv"
    scale.write_text("userId,movieId,rating\n1,2,9\n2,2,3\n1,3,4\n2,3,5\n")
    assert main(["build", "--out", str(tmp_path / "a"), "--no-xlsm", "--ratings", str(scale)]) == 1
    assert "ratings from 0.5 to 5" in capsys.readouterr().err and not (tmp_path / "a" / "collab_filter.xlsx").exists()
    assert main(["build", "--out", str(tmp_path / "b"), "--no-xlsm", "--users", "0"]) == 1
    assert "--users must be a whole number >= 1" in capsys.readouterr().err
    assert main(["build", "--out", str(tmp_path / "c"), "--no-xlsm", "--ratings", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in capsys.readouterr().err
