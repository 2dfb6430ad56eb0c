"""Ratings from disk at MovieLens-25M size: how fast a 25-million-row ratings.csv reads, and what a fit holds in memory.

    .venv/bin/python benchmarks/bench_stream.py                   # writes /tmp/xlcollab-25m/ratings.csv (~650 MB)
    .venv/bin/python benchmarks/bench_stream.py --rows 1e6 --keep  # smaller; keep the file for the next run

Reading: pyarrow's CSV reader alone, pandas with engine="pyarrow", the whole `data.load_ratings` (reading plus its
checks: blank cells, ids, pairs rated twice) and `stream.spill` (the streaming reader of --memory-budget: reading,
the same checks, encoding, the split, written to disk), each in a fresh process with its imports done before the
clock starts (peak memory includes torch's ~300 MiB). Fitting: one epoch of `CollabFit` (batch 2^16: the default
1024 would take the CPU ~15 minutes an epoch at this size) in memory and streamed under a budget, each in a fresh
process that reports its own peak resident memory. The load average is printed beside every time: on a shared
machine, rerun when it is low. The generated files live in /tmp and are deleted afterwards unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from bench_common import load, table  # noqa: E402


def write_ratings(path: Path, n: int, seed: int = 0) -> None:
    """ML-25M's ratings.csv layout (userId,movieId,rating,timestamp), distinct pairs, skewed like MovieLens."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    n_users, n_items = max(2, n * 162_541 // 25_000_095), max(2, n * 209_171 // 25_000_095)
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, np.int64)
    while len(keys) < n:
        m = int((n - len(keys)) * 1.1) + 16
        keys = np.unique(np.concatenate([keys, (rng.random(m) ** 2 * n_users).astype(np.int64) * n_items
                                         + (rng.random(m) ** 3 * n_items).astype(np.int64)]))
    keys = np.sort(rng.choice(keys, n, replace=False))  # MovieLens files are sorted by user, then movie
    users, items = keys // n_items + 1, keys % n_items + 1
    del keys
    ratings = rng.integers(1, 11, n) / 2
    stamps = rng.integers(789_652_009, 1_574_327_703, n)
    table_ = pa.table({"userId": users, "movieId": items, "rating": ratings, "timestamp": stamps})
    pcsv.write_csv(table_, path, write_options=pcsv.WriteOptions(quoting_style="none"))


READ_RUN = """
import json, resource, sys, tempfile, time
sys.path.insert(0, {repo!r})
import pandas as pd, pyarrow.csv as pcsv
from xlcollab.core import stream
from xlcollab.core.data import load_ratings
path, how = {path!r}, {how!r}
t = time.perf_counter()  # imports (torch's among them) are not reading
if how == "pyarrow":
    n = pcsv.read_csv(path).num_rows
elif how == "pandas":
    n = len(pd.read_csv(path, engine="pyarrow"))
elif how == "load_ratings":
    n = len(load_ratings(path))
else:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        sp = stream.spill(path, tmp, chunk_rows=1 << 22)
        n = sp.n_train + sp.n_valid
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": n,
                   "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

FIT_RUN = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from xlcollab.core.fit import CollabFit
t = time.perf_counter()
est = CollabFit(epochs=1, batch_size=1 << 16, lr=0.02, device="cpu", memory_budget={budget!r}, progress=False)
est.fit({path!r})
print(json.dumps({{"seconds": time.perf_counter() - t, "rmse": est.valid_rmse_, "fit_seconds": est.fit_seconds_,
                   "model_rmse": est.model_valid_rmse_, "sittings": 0 if est.sessions_ is None else len(est.sessions_),
                   "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=float, default=25_000_095, help="ratings in the generated file (default 25M)")
    p.add_argument("--folder", default="/tmp/xlcollab-25m", help="where the file is written (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the generated file (reused by the next run)")
    p.add_argument("--reads", default="pyarrow,pandas,load_ratings,spill", help="which readers to time")
    p.add_argument("--fits", default="memory,stream", help="which fits to run (memory, stream; '' for none)")
    p.add_argument("--budget", default="1GB", help="--memory-budget of the streamed fit (default 1GB)")
    args = p.parse_args(argv)
    n = int(args.rows)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ratings.csv"
    try:
        if not path.exists():
            t = time.perf_counter()
            write_ratings(path, n)
            print(f"wrote {path} ({path.stat().st_size / 2 ** 20:,.0f} MiB, {n:,} ratings) in "
                  f"{time.perf_counter() - t:.1f} s\n")
        print(f"## reading {path} ({path.stat().st_size / 2 ** 20:,.0f} MiB) on {os.cpu_count()} CPU cores\n")
        rows = []
        for how in [h for h in args.reads.split(",") if h]:
            before = load()
            r = child(READ_RUN.format(repo=str(REPO), path=str(path), how=how))
            rows.append({"reader": how, "seconds": f"{r['seconds']:.1f}", "rows": f"{r['rows']:,}",
                         "peak MiB": f"{r['peak_mib']:,.0f}", "load before": before, "load after": load()})
        print(table(rows, ["reader", "seconds", "rows", "peak MiB", "load before", "load after"]) + "\n")
        rows = []
        for how in [h for h in args.fits.split(",") if h]:
            budget = args.budget if how == "stream" else None
            before = load()
            r = child(FIT_RUN.format(repo=str(REPO), path=str(path), budget=budget))
            rows.append({"fit (1 epoch, batch 2^16, CPU)": f"{how}" + (f" (budget {budget})" if budget else ""),
                         "whole s": f"{r['seconds']:.1f}", "loop s": f"{r['fit_seconds']:.1f}",
                         "valid RMSE": f"{r['rmse']:.4f}", "the model alone": f"{r['model_rmse']:.4f}",
                         "sittings": f"{r['sittings']:,}", "peak MiB": f"{r['peak_mib']:,.0f}",
                         "load before": before, "load after": load()})
        if rows:
            print(table(rows, ["fit (1 epoch, batch 2^16, CPU)", "whole s", "loop s", "valid RMSE", "the model alone",
                               "sittings", "peak MiB", "load before", "load after"]) + "\n")
        print(f"(this process: peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
