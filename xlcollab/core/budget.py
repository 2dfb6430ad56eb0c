"""What the machine can afford: work whose memory or time would not fit is refused up front, with the estimate.

`check_memory` compares an estimate with the memory available now (Linux: MemAvailable; elsewhere the physical
memory); `check_time` with `max_seconds()` (24 hours; XLCOLLAB_MAX_HOURS changes it). Both take `force` for the
rare user who means it (the CLI's --force).
"""
from __future__ import annotations

import os
from collections.abc import Callable

from xlcollab.core.settings import fit_epochs
from xlcollab.errors import SettingsError, XlcollabError

Kind = Callable[[str], XlcollabError]
GiB = 1 << 30


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get now without swapping; None where the platform does not say."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def max_seconds() -> float:
    """The longest run accepted without --force."""
    text = os.environ.get("XLCOLLAB_MAX_HOURS", "").strip()
    try:
        return float(text) * 3600 if text else 24 * 3600.0
    except ValueError:
        raise SettingsError(f"XLCOLLAB_MAX_HOURS must be a number of hours, found {text!r}") from None


def size(n: float) -> str:
    """Bytes as messages write them: "16.5 GB", "730 MB"."""
    return f"{n / GiB:,.1f} GB" if n >= GiB else f"{n / (1 << 20):,.0f} MB"


def duration(seconds: float) -> str:
    """"3.2 hours", "41 days", "12 years"."""
    for unit, span in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= span:
            return f"{seconds / span:,.1f} {unit}"
    return f"{seconds:.0f} seconds"


#: the share of the available memory one job may plan to take (the rest is the system's and other programs')
MEMORY_SHARE = 0.8


def check_memory(need: float, what: str, *, kind: Kind = SettingsError, force: bool = False, hint: str = "") -> None:
    """Refuse `what` when it needs more than MEMORY_SHARE of the memory available now (unless `force`)."""
    have = available_memory()
    if force or have is None or need <= MEMORY_SHARE * have:
        return
    raise kind(f"{what} needs about {size(need)} of memory, more than this machine can spare ({MEMORY_SHARE:.0%} of "
               f"the {size(have)} available)" + (f"; {hint}" if hint else "")
               + (" (or --force)" if kind is SettingsError else ""))


def check_time(seconds: float, what: str, *, kind: Kind = SettingsError, force: bool = False, hint: str = "") -> None:
    """Refuse `what` when its shortest possible run is longer than `max_seconds()` (unless `force`)."""
    limit = max_seconds()
    if force or seconds <= limit:
        return
    raise kind(f"{what} would take at least {duration(seconds)} (the limit is {duration(limit)}, "
               f"XLCOLLAB_MAX_HOURS)" + (f"; {hint}" if hint else "") + " (or --force)")


#: rating updates a second no machine beats (a large GPU at 64 factors): a fit's time estimate is a lower bound
FIT_RATINGS_PER_SECOND = 1e8
#: seconds one full-batch step of a sheet solve takes at the least (measured: 1-3 ms on the bundled tabs)
SOLVE_STEP_SECONDS = 1e-4
_TORCH_OVERHEAD = 400 << 20  # the torch runtime itself


def fit_memory(n_ratings: int, n_users: int, n_items: int, n_factors: int, batch_size: int | None,
               n_hidden: int = 10) -> float:
    """Bytes a CollabFit needs at least: parameters with their gradient and two optimizer buffers (float32),
    the looked-up rows of one batch with their gradients, and the ratings as tensors and frames."""
    params = (n_users + n_items) * (n_factors + 1) + 2 * n_factors * n_hidden
    batch = n_ratings if batch_size is None else min(batch_size, n_ratings)
    return 16.0 * params + 5 * 4.0 * batch * (n_factors + 1) + 60.0 * n_ratings + _TORCH_OVERHEAD


def check_fit(n_ratings: int, n_users: int, n_items: int, s: dict, *, force: bool = False) -> None:
    """Refuse, before training, a fit whose memory or time would exceed what the machine has (SettingsError)."""
    need = fit_memory(n_ratings, n_users, n_items, s["n_factors"], s["batch_size"], s.get("hidden", (10,))[0])
    check_memory(need, f"a fit of {n_ratings:,} ratings ({n_users:,} users, {n_items:,} movies) with "
                 f"{s['n_factors']:,} factors" + (", full batch" if s["batch_size"] is None else ""), force=force,
                 hint="use fewer factors or a smaller --batch-size")
    train = int(n_ratings * (1 - s["valid_pct"]))  # as data.split_indices counts them
    epochs = fit_epochs(s, train)  # epochs None: the rule the fit will apply
    work = epochs * train * max(1.0, s["n_factors"] / 64)
    check_time(work / FIT_RATINGS_PER_SECOND, f"{epochs:,} epochs over {train:,} training ratings with "
               f"{s['n_factors']:,} factors", force=force, hint="use fewer epochs")


def check_solve(epochs: int, *, force: bool = False) -> None:
    """Refuse a sheet solve whose steps alone would run past the time limit."""
    check_time(epochs * SOLVE_STEP_SECONDS, f"--epochs {epochs:,} (each step at least "
               f"{SOLVE_STEP_SECONDS * 1e3:g} ms)", force=force, hint="use fewer epochs")
