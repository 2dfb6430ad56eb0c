"""Which torch device a fit runs on: CUDA only when it is there and the problem is big enough to gain."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from xlcollab.errors import SettingsError

# Below this many training ratings a CPU epoch takes a fraction of a second, less than CUDA's start-up
# and transfers cost; every spreadsheet tab (Excel's sheets stop at ~1M rows) stays on the CPU under "auto".
CUDA_MIN_RATINGS = 1_000_000


def pick_device(device: str, n_ratings: int) -> torch.device:
    """"auto": CUDA when present and n_ratings >= CUDA_MIN_RATINGS, else CPU; "cpu"/"cuda[:N]" force."""
    if device == "auto":
        use = torch.cuda.is_available() and n_ratings >= CUDA_MIN_RATINGS
        return torch.device("cuda" if use else "cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise SettingsError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"device '{device}': no CUDA device is available (torch.cuda.is_available() is False)")
    return torch.device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on n torch intra-op threads (None: torch's setting), then restore the count."""
    before = torch.get_num_threads()
    try:
        if n:
            torch.set_num_threads(n)
        yield
    finally:
        torch.set_num_threads(before)
