"""What the machine can afford: work whose memory or time would not fit is refused up front, with the estimate.

`check_memory` compares an estimate with the memory available now (Linux: MemAvailable; elsewhere the physical
memory); `check_time` with `max_seconds()` (24 hours; XLCOLLAB_MAX_HOURS changes it). Both take `force` for the
rare user who means it (the CLI's --force).
"""
from __future__ import annotations

import os
from collections.abc import Callable

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


def check_memory(need: float, what: str, *, kind: Kind = SettingsError, force: bool = False, hint: str = "") -> None:
    """Refuse `what` when it needs more memory than is available now (unless `force`)."""
    have = available_memory()
    if force or have is None or need <= have:
        return
    raise kind(f"{what} needs about {size(need)} of memory, more than the {size(have)} available"
               + (f"; {hint}" if hint else "") + (" (or --force)" if kind is SettingsError else ""))


def check_time(seconds: float, what: str, *, kind: Kind = SettingsError, force: bool = False, hint: str = "") -> None:
    """Refuse `what` when its shortest possible run is longer than `max_seconds()` (unless `force`)."""
    limit = max_seconds()
    if force or seconds <= limit:
        return
    raise kind(f"{what} would take at least {duration(seconds)} (the limit is {duration(limit)}, "
               f"XLCOLLAB_MAX_HOURS)" + (f"; {hint}" if hint else "") + " (or --force)")
