"""`xlcollab demo`, the README's first command: it builds, solves and fits, and prints the figures the README states.

The collab table's RMSEs must be the README's solve table (itself checked against a fresh solve by test_readme), the
fit's validation RMSE the README's default figure, and the saved files must carry the solved RMSE as the cached value
of each tab's `rmse` cell, so a reader without a spreadsheet engine sees what the demo printed.
"""
from __future__ import annotations

import re

import openpyxl

from test_readme import REPO, readme_solve_table
from xlcollab.book.base import bounds
from xlcollab.book.filebook import FileBook
from xlcollab.cli import main


def _readme_rmses() -> dict[str, str]:
    table = readme_solve_table()
    column = [c.strip() for c in table[0].strip("|").split("|")].index("RMSE after `solve`")
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in table[2:]]
    return {cells[0].strip("`"): re.match(r"\d+\.\d+", cells[column]).group(0) for cells in rows}


def test_demo_prints_the_readmes_figures_and_saves_them(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    printed = dict(re.findall(r"^(\w+)\s+\d+\.\d{4}\s+(\d+\.\d{4})\s+\d+\.\d{2}\s+cpu$", out, re.M))
    assert printed == _readme_rmses()
    fit = re.search(r"validation RMSE (\d\.\d{4}) after (\d+) epochs.*\(the model alone (\d\.\d{4});", out)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert fit, out
    assert f"Validation RMSE on the seed-42 split: **{fit.group(1)}** (the model alone: {fit.group(3)}" in readme
    assert re.search(r"^adagrad_fastai\s+\d+\.\d{4}\s+\d+\.\d{4}\s+\S+$", out, re.M)  # the long tab name keeps its row
    wb = openpyxl.load_workbook(tmp_path / "collab_filter.xlsx", data_only=True)
    book = FileBook(tmp_path / "collab_filter.xlsx")
    for sheet, rmse in printed.items():
        r, c, _, _ = bounds(book.ref_of(sheet, "rmse"))
        assert f"{wb[sheet].cell(r, c).value:.4f}" == rmse, sheet
