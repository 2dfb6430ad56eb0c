"""`xlcollab fit` on a real terminal: run in a pseudo-terminal of 80 columns, its bytes fed through pyte (a VT100
emulator), the final screen must show the epoch table row after row, with no progress-bar line left between them."""
from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

pyte = pytest.importorskip("pyte", reason="pyte is in the test extra: pip install -e .[test]")

COLUMNS, LINES = 80, 40
ROW = re.compile(r"^ {4}(\d) +\d\.\d{4} +\d\.\d{4} +\d\.\d\de[-+]\d\d +\d+\.\d\d$")  # a whole table row


def run_on_terminal(argv: list[str], cwd: Path, timeout: float = 300) -> tuple[int, bytes, list[str]]:
    """Run argv with stdin, stdout and stderr on one pseudo-terminal of COLUMNS x LINES; return its exit status, the
    bytes it wrote and the screen a terminal shows at the end (pyte, one string per line, trailing blanks cut)."""
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(LINES), "TERM": "xterm"}
    proc = subprocess.Popen(argv, stdin=side, stdout=side, stderr=side, cwd=cwd, env=env, close_fds=True)
    os.close(side)
    chunks = []
    try:
        while select.select([main], [], [], timeout)[0]:
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        code = proc.wait(timeout=60)
    raw = b"".join(chunks)
    screen = pyte.Screen(COLUMNS, LINES)
    pyte.ByteStream(screen).feed(raw)
    return code, raw, [line.rstrip() for line in screen.display]


def test_fit_table_and_progress_bar_share_a_terminal(tmp_path, small_ratings):
    f = small_ratings.frame.rename(columns={"user": "userId", "item": "movieId"})
    f[["userId", "movieId", "rating"]].to_csv(tmp_path / "r.csv", index=False)
    code, raw, screen = run_on_terminal([sys.executable, "-m", "xlcollab", "fit", "r.csv", "--factors", "3",
                                         "--epochs", "4", "--batch-size", "64"], tmp_path)
    text = "\n".join(screen)
    assert code == 0, text
    assert b"%|" in raw  # the bar was drawn: stderr is a terminal
    lines = [line for line in screen if line]
    header = lines.index("epoch  train_rmse  valid_rmse         lr  seconds")
    assert lines[header - 1] == "447 train / 112 valid ratings (split seed 42)"
    rows = lines[header + 1:header + 5]
    assert [ROW.match(line).group(1) if ROW.match(line) else line for line in rows] == ["1", "2", "3", "4"]
    assert lines[header + 5:header + 7] == ["model dotbias: 3 factors, y_range 0 to 5.5",
                                            "adam lr 0.005 annealed, 4 epochs, batches of 64, wd 0.1 (biases 0.01, l2)"]
    assert lines[header + 7].startswith("valid RMSE ") and lines[header + 8].startswith("valid MAE ")
    assert lines[header + 9].startswith("  precision ") and len(lines) == header + 10
    assert not re.search(r"%\||epoch/s|\bfit:", text)  # nothing of the bar is left on the screen
    assert all(len(line) < COLUMNS for line in lines)  # no line ran into the edge and wrapped
