"""The package's layers, checked from the source: data flows down, nothing imports from a layer above it, no cycles.

Order, lowest first (README, "Design"): errors < core < book < solver < sheets < excel < cli. A module may import
from its own layer and the layers below; every import counts, including those inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xlcollab"
LAYERS = ("errors", "core", "book", "solver", "sheets", "excel", "cli")
TOP = {"__init__": "errors", "__main__": "cli"}  # the package root re-exports the error family; -m runs the CLI


def layer_of(module: str) -> str:
    """'xlcollab.book.filebook' -> 'book'."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    return TOP.get(head, head)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every xlcollab module `path` imports, at any depth of the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("xlcollab")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("xlcollab"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).exists()
                          or (PACKAGE.parent / (f"{base}.{a.name}".replace(".", "/") + ".py")).exists()}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    """'a (layer) imports b (layer)' for every import of a module from a layer above its own."""
    bad = []
    for module, deps in g.items():
        mine = LAYERS.index(layer_of(module))
        for dep in deps:
            if dep != "xlcollab" and LAYERS.index(layer_of(dep)) > mine:
                bad.append(f"{module} ({layer_of(module)}) imports {dep} ({layer_of(dep)})")
    return sorted(bad)


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the graph's own modules (depth-first search), or None."""
    edges = {m: sorted(d for d in deps if d in g and d != m) for m, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in edges[m]:
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_every_module_is_in_a_known_layer():
    unknown = {m for m in graph() if layer_of(m) not in LAYERS}
    assert not unknown, f"modules outside the documented layers {LAYERS}: {sorted(unknown)}"


def test_no_module_imports_from_a_layer_above_it():
    bad = upward_imports(graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_find_what_they_look_for():
    """The checks can fail: an upward import and a cycle in a made-up graph are both found."""
    assert "xlcollab.errors" in imports_of(PACKAGE / "core" / "data.py")
    made_up = {"xlcollab.core.a": {"xlcollab.book.b"}, "xlcollab.book.b": {"xlcollab.core.a"}}
    assert upward_imports(made_up) == ["xlcollab.core.a (core) imports xlcollab.book.b (book)"]
    assert find_cycle(made_up) == ["xlcollab.book.b", "xlcollab.core.a", "xlcollab.book.b"]



SOLVE_IMPORTS = """
import json, sys
from xlcollab.cli import main
code = main(["solve", sys.argv[1], "--sheet", "dotprod", "--out", sys.argv[2]])
never = ("xlcollab.excel", "xlwings", "pandas", "numpy.ma", "xlcollab.sheets.graddesc")
print(json.dumps({"code": code, "loaded": [m for m in never if m in sys.modules]}))
"""


def test_the_solve_command_runs_without_the_excel_layer(tmp_path):
    """`xlcollab solve` on a file never loads the Excel layer: importing xlcollab.excel loads the macros, xlwings
    and pandas, a quarter of a second of every solve process that no file solve needs. Nor numpy.ma (np.unique's
    first call loads it: solver.values.distinct instead, 8 ms) or the graddesc package (6 ms), which a collab tab
    never uses."""
    import json
    import subprocess
    import sys

    from xlcollab.sheets.collab import build_workbook

    path = build_workbook(tmp_path / "cf.xlsx")
    proc = subprocess.run([sys.executable, "-c", SOLVE_IMPORTS, str(path), str(tmp_path / "out.xlsx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"code": 0, "loaded": []}
    assert (tmp_path / "out.xlsx").stat().st_size > 0


def test_the_program_exits_with_mains_status_and_freezes_gc_only_there(tmp_path):
    """`python -m xlcollab` (and the console script) run main() and exit with its status, the report complete on
    stdout, skipping the exit's garbage collections (gc.freeze); main() called in a process that goes on, as the
    tests and the add-in call it, leaves the garbage collector as it was."""
    import gc
    import json
    import subprocess
    import sys

    from xlcollab.cli import main
    from xlcollab.sheets.collab import build_workbook

    path = build_workbook(tmp_path / "cf.xlsx")
    solve = [sys.executable, "-m", "xlcollab", "solve", str(path), "--sheet", "dotprod"]
    done = subprocess.run([*solve, "--out", str(tmp_path / "out.xlsx"), "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sheets"]["dotprod"]["status"] == "locally optimal"
    bad = subprocess.run([*solve[:4], str(tmp_path / "missing.xlsx"), "--sheet", "dotprod"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith("xlcollab: error:") and "missing.xlsx" in bad.stderr
    probe = ("import gc, sys\nfrom xlcollab.cli import run\nsys.argv = ['xlcollab', 'solve', sys.argv[1], '--sheet', "
             "'nothere']\ntry:\n    run()\nexcept SystemExit as end:\n    print(end.code, gc.get_freeze_count() > 0)")
    code, froze = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                                 timeout=300).stdout.split()
    assert (code, froze) == ("1", "True")  # main's status, and the objects frozen for the exit
    frozen = gc.get_freeze_count()
    assert main(["solve", str(path), "--sheet", "dotprod", "--out", str(tmp_path / "again.xlsx")]) == 0
    assert gc.get_freeze_count() == frozen
