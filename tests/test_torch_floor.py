"""The torch floor: pyproject.toml and the README state the same one, it is the newest release among the APIs the
package relies on, and the checks of those APIs recognise them (in the installed torch, which has them all).
Whether release X itself has them is scripts/check_torch_floor.sh's job (it needs the network)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("torch_floor", REPO / "scripts" / "torch_floor.py")
torch_floor = sys.modules["torch_floor"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_floor)


def test_readme_states_the_pyproject_floor():
    floor = torch_floor.floor()
    readme = (REPO / "README.md").read_text()
    assert re.findall(r"torch \(>= ([0-9.]+)\)", readme) == [floor]
    assert f'"torch>={floor}"' in (REPO / "scripts" / "setup.sh").read_text()


def test_the_floor_is_the_newest_api_release():
    floor = torch_floor.version_key(torch_floor.floor())
    assert max(torch_floor.version_key(api.since) for api in torch_floor.APIS) == floor


def test_every_api_check_recognises_the_installed_torch():
    assert torch_floor.version_key(torch.__version__) >= torch_floor.version_key(torch_floor.floor())
    assert torch_floor.installed() == {api.what: True for api in torch_floor.APIS}


def test_the_checks_refuse_sources_without_the_api():
    """Each check reads its file: the same file with the API's name removed is refused."""
    root = Path(torch.__file__).parent.parent
    for api, name in zip(torch_floor.APIS, ("decoupled_weight_decay", "fused", '"cpu"', "weights_only", "devices")):
        source = (root / api.file).read_text()
        assert name in source and not api.present(source.replace(name, "renamed")), api.what
