"""What the benchmarks share: the load average for a table's caption, and the Markdown table itself."""
from __future__ import annotations

import os


def load() -> str:
    """The 1-, 5- and 15-minute load averages, for the table's caption."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def table(rows: list[dict], cols: list[str]) -> str:
    """A Markdown table of `rows` under the headers `cols` (a missing value: an empty cell)."""
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows])
