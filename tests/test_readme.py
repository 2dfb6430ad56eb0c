"""The README's table of the collab_filter tabs is a fresh solve's: build the workbooks, run `xlcollab solve` with no
flags, and the README's "RMSE after `solve`" column must show its RMSEs to the printed digits, the whole table being
what `benchmarks/bench_collab.py --markdown` prints for that solve."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate it with `python benchmarks/bench_collab.py --markdown` and paste it into README.md"


def bench_collab():
    """benchmarks/bench_collab.py as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_collab", REPO / "benchmarks" / "bench_collab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def readme_solve_table() -> list[str]:
    """The README's Markdown table whose header has the "RMSE after `solve`" column, line by line."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|") and "RMSE after `solve`" in line)
    end = next((k for k in range(start, len(lines)) if not lines[k].startswith("|")), len(lines))
    return lines[start:end]


def test_readme_solve_table_is_a_fresh_solves(tmp_path):
    bench = bench_collab()
    sheets = bench.fresh_solve(tmp_path)
    table = readme_solve_table()
    column = [cell.strip() for cell in table[0].strip("|").split("|")].index("RMSE after `solve`")
    readme = {}
    for row in table[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        readme[cells[0].strip("`")] = re.match(r"\d+\.\d+", cells[column]).group(0)
    fresh = {tab: r["final_rmse"] for tab, r in sheets.items()}
    assert list(readme) == list(fresh), f"the README's tabs are not the workbook's: {REGENERATE}"
    stale = {tab: (readme[tab], f"{rmse:.{len(readme[tab].split('.')[1])}f}") for tab, rmse in fresh.items()
             if f"{rmse:.{len(readme[tab].split('.')[1])}f}" != readme[tab]}
    assert not stale, f"README (tab: README, fresh solve) {stale}: {REGENERATE}"
    assert "\n".join(table) == bench.readme_table(sheets), f"the README's table is not the script's: {REGENERATE}"
