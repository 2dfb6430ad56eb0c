"""Small helpers several test files share: a file's digest (unchanged-input checks) and the CLI run in process."""
from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path
from typing import Any

from xlcollab.cli import main


def sha(path: Path | str) -> str:
    """The file's SHA-256: equal before and after means byte-identical."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_cli(*argv: Any) -> tuple[int, str, str]:
    """`xlcollab ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()
