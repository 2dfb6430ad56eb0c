"""Which torch device a fit runs on: CUDA only when it is there and the problem is big enough to gain.

The one device check (`check_device`) lives here and needs no torch, so settings are checked before torch loads.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from xlcollab.core import checks
from xlcollab.errors import SettingsError

if TYPE_CHECKING:
    import torch

# Below this many training ratings a CPU epoch takes a fraction of a second, less than CUDA's start-up
# and transfers cost; every spreadsheet tab (Excel's sheets stop at ~1M rows) stays on the CPU under "auto".
CUDA_MIN_RATINGS = 1_000_000


def check_device(value: Any, what: str = "device") -> str:
    """"auto", "cpu", "cuda" or "cuda:N"; CheckError otherwise."""
    if not (isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value)):
        raise checks.CheckError(f"{what} must be auto, cpu, cuda or cuda:N, found {checks.describe(value)}")
    return value


def pick_device(device: str, n_ratings: int) -> torch.device:
    """"auto": CUDA when present and n_ratings >= CUDA_MIN_RATINGS, else CPU; "cpu"/"cuda[:N]" force."""
    import torch

    try:
        check_device(device)
    except checks.CheckError as exc:
        raise SettingsError(str(exc)) from None
    if device == "auto":
        use = torch.cuda.is_available() and n_ratings >= CUDA_MIN_RATINGS
        return torch.device("cuda" if use else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"device '{device}': no CUDA device is available (torch.cuda.is_available() is False)")
    return torch.device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on n torch intra-op threads (None: torch's setting), then restore the count."""
    import torch

    before = torch.get_num_threads()
    try:
        if n:
            torch.set_num_threads(n)
        yield
    finally:
        torch.set_num_threads(before)
