"""The oldest torch xlcollab runs on: the APIs it relies on, the release each first appeared in, and checks of them.

    python scripts/torch_floor.py floor              # the floor pyproject.toml states (torch>=X)
    python scripts/torch_floor.py installed          # every API checked in the torch this Python imports
    python scripts/torch_floor.py static [X ...]     # every API checked in release X's own Python sources
                                                     # (default: the floor and the release before it)

`static` fetches the release's macOS arm64 wheel from PyPI with `pip download` (a CPU build, ~65 MB; the Python
sources are the same on every platform) and reads the files each check names; it runs none of that torch. A floor
is right when every API is in the floor's sources and at least one is missing from the release before it.
scripts/check_torch_floor.sh runs the tests on the floor itself where its CPU wheel can be installed.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _init_params(source: str, cls: str) -> set[str]:
    """Parameter names of `cls.__init__` in a module's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    return {x.arg for x in a.args + a.kwonlyargs + a.posonlyargs}
    return set()


def _function_params(source: str, name: str) -> set[str]:
    """Parameter names of the module-level function `name`."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            return {x.arg for x in a.args + a.kwonlyargs + a.posonlyargs}
    return set()


def _fused_devices(source: str) -> set[str]:
    """The device names torch/utils/_foreach_utils.py lists as having fused optimizer kernels."""
    match = re.search(r"def _get_fused_kernels_supported_devices\(\).*?return \[(.*?)\]", source, re.S)
    return set(re.findall(r'"(\w+)"', match.group(1))) if match else set()


@dataclass(frozen=True)
class Api:
    """One API the package relies on, where its Python source says so, and the first torch release with it among
    those checked (2.2, 2.3, 2.4, 2.6, 2.7: so "2.2" means "2.2 or earlier")."""

    what: str
    since: str
    file: str                      # path inside the torch package
    present: Callable[[str], bool]  # the file's source -> is the API there?
    used_by: str


APIS = (
    Api("Adam(decoupled_weight_decay=...)", "2.7", "torch/optim/adam.py",
        lambda s: "decoupled_weight_decay" in _init_params(s, "Adam"), "core.fit.torch_optimizer: --optimizer adam, "
        "decoupled decay"),
    Api("Adam/AdamW/SGD(fused=...)", "2.3", "torch/optim/sgd.py",
        lambda s: "fused" in _init_params(s, "SGD"), "core.fit.torch_optimizer"),
    Api("fused optimizer kernels on the CPU", "2.4", "torch/utils/_foreach_utils.py",
        lambda s: "cpu" in _fused_devices(s), "core.fit.torch_optimizer: fused=True for CPU parameters"),
    Api("torch.load(weights_only=...)", "2.2", "torch/serialization.py",
        lambda s: "weights_only" in _function_params(s, "load"), "core.modelfile.load"),
    Api("torch.random.fork_rng(devices=...)", "2.2", "torch/random.py",
        lambda s: "devices" in _function_params(s, "fork_rng"), "core.fit.CollabFit.fit_tensors"),
)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def floor() -> str:
    """The X of `torch>=X` in pyproject.toml."""
    match = re.search(r'"torch>=([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    if match is None:
        raise SystemExit("pyproject.toml states no torch>=X")
    return match.group(1)


def check(read: Callable[[str], str]) -> dict[str, bool]:
    """Each API's presence, reading files of one torch through `read(path inside the package)`."""
    out = {}
    for api in APIS:
        try:
            out[api.what] = api.present(read(api.file))
        except (KeyError, FileNotFoundError):
            out[api.what] = False
    return out


def installed() -> dict[str, bool]:
    """The checks on the torch this Python imports."""
    import torch

    root = Path(torch.__file__).parent.parent
    return check(lambda path: (root / path).read_text())


def static(version: str, folder: Path) -> dict[str, bool]:
    """The checks on release `version`'s sources, from its macOS arm64 wheel on PyPI."""
    subprocess.run([sys.executable, "-m", "pip", "download", f"torch=={version}", "--no-deps", "--only-binary=:all:",
                    "--platform", "macosx_11_0_arm64", "-d", str(folder), "-q"], check=True)
    wheel = next(folder.glob(f"torch-{version}-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        return check(lambda path: zf.read(path).decode())


def previous(version: str) -> str:
    major, minor = version_key(version)[:2]
    return f"{major}.{minor - 1}.0"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "floor"
    if command == "floor":
        print(floor())
        return 0
    if command == "installed":
        results = {"installed": installed()}
    elif command == "static":
        versions = argv[1:] or [f"{floor()}.0" if floor().count(".") == 1 else floor(), previous(floor())]
        with tempfile.TemporaryDirectory() as tmp:
            results = {v: static(v, Path(tmp)) for v in versions}
    else:
        raise SystemExit(__doc__)
    for where, found in results.items():
        for api in APIS:
            mark = "yes" if found[api.what] else "NO "
            print(f"torch {where}: {mark}  {api.what} (since {api.since}; {api.used_by})")
    if command == "static" and not argv[1:]:
        at_floor, before = results.values()
        ok = all(at_floor.values()) and not all(before.values())
        print(f"floor torch>={floor()}: {'right' if ok else 'WRONG'} (every API at the floor; "
              f"{'not all' if not all(before.values()) else 'all'} in {previous(floor())})")
        return 0 if ok else 1
    return 0 if all(all(found.values()) for found in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
