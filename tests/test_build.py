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
