"""xlcollab's full-data fit on a GPU: plain PyTorch, torch.compile, xlcollab's plain and fused paths, side by side.

    python3 benchmarks/bench_gpu.py                       # every section, full size (an H100/H200: ~6 minutes)
    bash benchmarks/gpu_check.sh                          # the same after `pytest -m cuda`, logs in $OUT
    python3 benchmarks/bench_gpu.py --sections speed --scale 0.001 --device cpu   # the code, tiny, on a CPU

Sections (--sections, comma-separated):
  speed      MovieLens-25M-shaped synthetic ratings (162,541 users, 59,047 movies, 25,000,095 ratings; --scale
             shrinks all three), 64 factors, fp32, Adam, batch 2^20: seconds per epoch and ratings per second of
             (a) a plain PyTorch loop (nn.Embedding + torch.optim.Adam, MSE), (b) torch.compile of it, (c) xlcollab's
             fused step on (a)'s maths, (d) xlcollab's plain path and (e) its fused path on the default recipe
             (sigmoid range, per-row L2, Adam 0.9/0.99, annealed lr), (f) and (g) the same two full batch (one
             step an epoch, as Excel Solver takes them); median of --epochs timed epochs after one
             warm-up (torch.compile's and Triton's compile times are printed apart); ratios in the same run.
  tune       the fused recipe's epoch time for each block size x warps of the forward/backward kernel, and at
             popularity skews 1 (uniform) and 3 (8x MovieLens's hottest movie) to show the atomics' contention.
  accuracy   a low-rank-plus-noise set with MovieLens's skew (real-shaped; 80/20 split): valid RMSE of the fused and
             plain paths with the default recipe, beside the noise floor (the RMSE of the true signal).
  crossover  whole fits (CollabFit(device=...).fit on a DataFrame: reading, CUDA's start-up, compiling, the loop) on
             the CPU and on CUDA at growing sizes, each in a fresh process: the size at which CUDA starts to pay.
Every table names the card and the load average.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import load, table  # noqa: E402

from xlcollab.core import fused  # noqa: E402
from xlcollab.core.fit import CollabFit  # noqa: E402

ML25M = (162_541, 59_047, 25_000_095)
SECTIONS = ("speed", "accuracy", "crossover", "tune")  # the order they run in: the target first, tuning last


def card(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2 ** 30:.0f} GiB, {p.multi_processor_count} SMs)"
    return f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- data --------------------------------------------------------------------------------------------------------
def shaped(scale: float, device: torch.device, seed: int = 0, skew: float = 2.0):
    """Random ratings of ML-25M's shape: uniform users, skewed movies (code = n_items * u^skew), half stars.
    skew 2 gives the most-rated movie 0.41 % of the ratings (ML-25M's, Forrest Gump: 81,491 of 25 M, 0.33 %);
    skew 3, the earlier benchmark's, 2.6 %: eight times the contention on the hottest rows' atomic adds."""
    n_users, n_items, n = (max(2, int(round(x * scale))) for x in ML25M)
    g = torch.Generator(device=device).manual_seed(seed)
    users = torch.randint(0, n_users, (n,), generator=g, device=device)
    items = (torch.rand(n, generator=g, device=device).pow(skew) * n_items).long().clamp_(max=n_items - 1)
    ratings = torch.randint(1, 11, (n,), generator=g, device=device).float() / 2
    return n_users, n_items, users, items, ratings


def real_shaped(n: int, seed: int = 0, rank: int = 16, noise: float = 0.7, device: str = "cpu"):
    """n distinct (user, movie) pairs with MovieLens's skew (few users rate much, few movies are rated much), rated
    3.5 + user bias + movie bias + rank-16 taste + noise, rounded to half stars in [0.5, 5]; also the clean signal.
    numpy arrays; drawn with torch on `device` (a GPU makes the 25M set in a second; a CPU in a minute or two)."""
    shrink = math.sqrt(n / ML25M[2])  # users and movies shrink by the square root: ML-25M's density (0.26 %)
    n_users, n_items = (max(8, int(round(x * shrink))) for x in ML25M[:2])
    g = torch.Generator(device=device).manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=device)

    def normal(std, *shape):
        return torch.randn(*shape, generator=g, device=device) * std

    keys = torch.zeros(0, dtype=torch.long, device=device)
    while len(keys) < n:  # popularity: codes drawn as n * u^a, so low codes are the active users and famous movies
        m = int((n - len(keys)) * 1.3) + 16
        drawn = (rand(m).pow(2) * n_users).long() * n_items + (rand(m).pow(2) * n_items).long()
        keys = torch.unique(torch.cat([keys, drawn]))
    keys = keys[torch.randperm(len(keys), generator=g, device=device)[:n]]
    users, items = keys // n_items, keys % n_items
    del keys
    scale = (0.5 / math.sqrt(rank)) ** 0.5
    uf, vf = normal(scale, n_users, rank), normal(scale, n_items, rank)
    signal = 3.5 + normal(0.4, n_users)[users] + normal(0.4, n_items)[items]
    for a in range(0, n, 1 << 22):  # the taste term a few million ratings at a time (25M x 16 at once: 1.6 GB)
        signal[a:a + (1 << 22)] += (uf[users[a:a + (1 << 22)]] * vf[items[a:a + (1 << 22)]]).sum(1)
    ratings = ((signal + normal(noise, n)) * 2).round().div(2).clamp(0.5, 5.0)
    return tuple(t.cpu().numpy() for t in (users, items, ratings, signal.clamp(0.5, 5.0)))


# -- the reference loops ----------------------------------------------------------------------------------------
class MF(torch.nn.Module):
    """What one writes by hand: nn.Embedding biased dot product."""

    def __init__(self, n_users: int, n_items: int, k: int):
        super().__init__()
        self.u, self.i = torch.nn.Embedding(n_users, k), torch.nn.Embedding(n_items, k)
        self.ub, self.ib = torch.nn.Embedding(n_users, 1), torch.nn.Embedding(n_items, 1)
        for e in (self.u, self.i):
            torch.nn.init.normal_(e.weight, std=0.01)
        for e in (self.ub, self.ib):
            torch.nn.init.zeros_(e.weight)

    def forward(self, u, i):
        return (self.u(u) * self.i(i)).sum(1) + self.ub(u).squeeze(1) + self.ib(i).squeeze(1) + 3.5


def plain_loop(problem, k: int, batch: int, epochs: int, device, compiled: bool = False) -> tuple[list[float], float]:
    """(a)/(b): shuffled batches, F.mse_loss, torch.optim.Adam lr 1e-3; (seconds per epoch, warm-up seconds)."""
    n_users, n_items, users, items, ratings = problem
    model = MF(n_users, n_items, k).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_of(idx):
        return torch.nn.functional.mse_loss(model(users[idx], items[idx]), ratings[idx])

    def update():
        opt.step()

    if compiled:
        loss_of, update = torch.compile(loss_of), torch.compile(update)
    times = []
    for _ in range(epochs + 1):  # the first epoch warms up (and compiles)
        sync(device)
        t = time.perf_counter()
        perm = torch.randperm(len(ratings), device=device)
        for s in range(0, len(ratings), batch):
            loss = loss_of(perm[s:s + batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            update()
        sync(device)
        times.append(time.perf_counter() - t)
    return times[1:], times[0]


def xlcollab_loop(problem, k: int, batch: int | None, epochs: int, device, *, fused_step: bool,
                  recipe: bool = True) -> tuple[list[float], float]:
    """(c)/(d)/(e): CollabFit's own loop on tensors already on the device (fit_tensors); recipe False: (a)'s maths
    (no sigmoid range, no weight decay, constant lr 1e-3, betas 0.9/0.999)."""
    n_users, n_items, users, items, ratings = problem
    kw = dict(n_factors=k, batch_size=batch, device=str(device), valid_pct=0.0, progress=False, fused=fused_step)
    if not recipe:
        kw.update(y_range=None, wd=0.0, wd_bias=0.0, lr=1e-3, beta2=0.999, schedule="constant")
    t = time.perf_counter()
    est = CollabFit(epochs=epochs + 1, **kw).fit_tensors((users, items, ratings), None, n_users, n_items)
    secs = [row["seconds"] for row in est.trace_]
    return secs[1:], time.perf_counter() - t - sum(secs[1:])


class _fused_settings:
    """Temporarily other kernel block sizes (the tune section)."""

    def __init__(self, **kw):
        self.kw = kw

    def __enter__(self):
        self.before = {k: getattr(fused, k.upper()) for k in self.kw}
        for k, v in self.kw.items():
            setattr(fused, k.upper(), v)

    def __exit__(self, *exc):
        for k, v in self.before.items():
            setattr(fused, k.upper(), v)


# -- sections ----------------------------------------------------------------------------------------------------
def speed(args, device) -> None:
    problem = shaped(args.scale, device, skew=args.skew)
    n, k, batch = len(problem[4]), 64, min(2 ** 20, len(problem[4]))
    print(f"## speed: ML-25M-shaped synthetic ratings on {card(device)}")
    print(f"{problem[0]:,} users x {problem[1]:,} movies, {n:,} ratings (scale {args.scale:g}), {k} factors, fp32, "
          f"batch {batch:,}; median of {args.epochs} timed epochs after 1 warm-up; torch {torch.__version__}, "
          f"triton {_triton_version()}; load {load()}\n")
    runs = [
        ("a", "plain PyTorch loop (nn.Embedding + Adam, MSE)", lambda: plain_loop(problem, k, batch, args.epochs,
                                                                                    device)),
        ("b", "torch.compile of (a)", lambda: plain_loop(problem, k, batch, args.epochs, device, compiled=True)),
        ("c", "xlcollab fused, (a)'s maths", lambda: xlcollab_loop(problem, k, batch, args.epochs, device,
                                                                    fused_step=True, recipe=False)),
        ("d", "xlcollab plain path, default recipe", lambda: xlcollab_loop(problem, k, batch, args.epochs, device,
                                                                           fused_step=False)),
        ("e", "xlcollab fused, default recipe", lambda: xlcollab_loop(problem, k, batch, args.epochs, device,
                                                                      fused_step=True)),
        ("f", "xlcollab plain path, full batch (one step an epoch)", lambda: xlcollab_loop(
            problem, k, None, args.epochs, device, fused_step=False)),
        ("g", "xlcollab fused, full batch (one step an epoch)", lambda: xlcollab_loop(
            problem, k, None, args.epochs, device, fused_step=True)),
    ]
    rows, med = [], {}
    for key, name, run in [r for r in runs if r[0] in args.paths]:
        if key in ("c", "e", "g") and not _fused_runs(device):
            rows.append({"path": f"({key}) {name}", "s / epoch": "needs CUDA + Triton"})
            continue
        try:
            times, warm = run()
        except torch.OutOfMemoryError:
            rows.append({"path": f"({key}) {name}", "s / epoch": "out of memory"})
            torch.cuda.empty_cache()
            continue
        med[key] = statistics.median(times)
        rows.append({"path": f"({key}) {name}", "s / epoch": f"{med[key]:.4f}",
                     "M ratings / s": f"{n / med[key] / 1e6:,.1f}", "warm-up s": f"{warm:.1f}",
                     "epochs": ", ".join(f"{t:.4f}" for t in times)})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(table(rows, ["path", "s / epoch", "M ratings / s", "warm-up s", "epochs"]))
    ratios = [f"{x} vs {y}: {med[y] / med[x]:.2f}x" for x, y in (("c", "a"), ("c", "b"), ("e", "d"), ("e", "a"),
                                                                  ("e", "b"), ("g", "f")) if x in med and y in med]
    print("\nspeed-ups (how many times faster): " + "; ".join(ratios))
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB; target: 25,000,095 "
              f"ratings in <= 17 ms per epoch (>= 1.5 billion ratings/s)")
    print()


def tune(args, device) -> None:
    if not _fused_runs(device):
        print("## tune: needs CUDA and Triton\n")
        return
    problem = shaped(args.scale, device, skew=args.skew)
    n = len(problem[4])
    print(f"## tune: the fused recipe's epoch by forward/backward block size and warps, and by popularity skew "
          f"(the hottest movie's share of the atomic adds), on {card(device)}\n")
    rows = []
    configs = [(block, warps, args.skew) for block in (32, 64, 128) for warps in (4, 8)]
    configs += [(fused.BLOCK_ROWS, fused.WARPS, skew) for skew in (1.0, 3.0) if skew != args.skew]
    for block, warps, skew in configs:
        data = problem if skew == args.skew else shaped(args.scale, device, skew=skew)
        with _fused_settings(block_rows=block, warps=warps):
            times, _ = xlcollab_loop(data, 64, min(2 ** 20, n), args.epochs, device, fused_step=True)
        rows.append({"block rows": block, "warps": warps, "skew": f"u^{skew:g}",
                     "s / epoch": f"{statistics.median(times):.4f}",
                     "M ratings / s": f"{n / statistics.median(times) / 1e6:,.1f}"})
    print(table(rows, ["block rows", "warps", "skew", "s / epoch", "M ratings / s"]) + "\n")


def accuracy(args, device) -> None:
    print(f"## accuracy: real-shaped low-rank-plus-noise ratings (80/20 split), default recipe, on {card(device)}\n")
    rows = []
    sizes = [(args.accuracy_scale, True)] + ([(args.accuracy_scale / 5, False)] if args.accuracy_plain else [])
    for scale, fused_only in sizes:
        n = max(1000, int(ML25M[2] * scale))
        users, items, ratings, signal = real_shaped(n, device=str(device))
        train, valid = np.split(np.random.default_rng(1).permutation(n), [int(0.8 * n)])
        floor = float(np.sqrt(np.mean((signal[valid] - ratings[valid]) ** 2)))
        to = lambda a, dt: torch.as_tensor(a).to(device=device, dtype=dt)  # noqa: E731
        data = [tuple(to(a[idx], dt) for a, dt in ((users, torch.long), (items, torch.long),
                                                   (ratings, torch.float32))) for idx in (train, valid)]
        paths = [True] if fused_only else [True, False]
        for fused_step in paths:
            if fused_step and not _fused_runs(device):
                continue
            est = CollabFit(device=str(device), progress=False, fused=fused_step)
            t = time.perf_counter()
            est.fit_tensors(data[0], data[1], int(users.max()) + 1, int(items.max()) + 1)
            rows.append({"ratings": f"{n:,}", "path": "fused" if fused_step else "plain",
                         "valid RMSE": f"{est.valid_rmse_:.4f}", "noise floor": f"{floor:.4f}",
                         "train RMSE": f"{est.train_rmse_:.4f}", "fit s": f"{time.perf_counter() - t:.1f}"})
    print(table(rows, ["ratings", "path", "valid RMSE", "noise floor", "train RMSE", "fit s"]) + "\n")


CROSSOVER_RUN = """
import json, sys, time
sys.path[:0] = [{repo!r}, {repo!r} + "/benchmarks"]
import pandas as pd, torch
from bench_gpu import real_shaped
from xlcollab.core.fit import CollabFit
users, items, ratings, _ = real_shaped({n})
frame = pd.DataFrame({{"user": users, "item": items, "rating": ratings.astype("float64")}})
t = time.perf_counter()
est = CollabFit(device={device!r}, progress=False).fit(frame)
print(json.dumps({{"seconds": time.perf_counter() - t, "rmse": est.valid_rmse_, "device": est.device_}}))
"""


def crossover(args, device) -> None:
    sizes = [int(float(s)) for s in args.crossover_sizes.split(",")]
    devices = ["cpu"] + (["cuda"] if device.type == "cuda" else [])
    print(f"## crossover: whole default fits (from a DataFrame; CUDA's start-up and Triton's kernels included), each "
          f"in a fresh process, on {card(device)} beside {os.cpu_count()} CPU cores; load {load()}\n")

    def run(n: int, dev: str) -> dict:
        code = CROSSOVER_RUN.format(repo=str(Path(__file__).resolve().parents[1]), n=n, device=dev)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    if "cuda" in devices:
        first = run(sizes[0], "cuda")  # fills Triton's on-disk cache: later processes load the kernels
        print(f"first CUDA process (Triton compiling the kernels into its cache): {first['seconds']:.2f} s\n")
    rows, cross = [], None
    for n in sizes:
        row = {"ratings": f"{n:,}"}
        for dev in devices:
            if dev == "cpu" and n > args.crossover_cpu_max:
                row["cpu s"] = "skipped"
                continue
            r = run(n, dev)
            row[f"{dev} s"], row[f"{dev} RMSE"] = f"{r['seconds']:.2f}", f"{r['rmse']:.4f}"
        if "cuda s" in row and row.get("cpu s", "skipped") != "skipped":
            ratio = float(row["cpu s"]) / float(row["cuda s"])
            row["cpu / cuda"] = f"{ratio:.2f}"
            if ratio > 1 and cross is None:
                cross = n
        rows.append(row)
    print(table(rows, ["ratings", "cpu s", "cuda s", "cpu / cuda", "cpu RMSE", "cuda RMSE"]))
    if "cuda" in devices:
        print(f"\nCUDA beats the CPU from {cross:,} ratings (smallest size tried where it is faster)" if cross else
              "\nCUDA did not beat the CPU at any size tried")
    print()


def _fused_runs(device: torch.device) -> bool:
    """The fused rows run on CUDA, and on a CPU in Triton's interpreter (TRITON_INTERPRET=1: the smoke test)."""
    return fused.available(device) or (os.environ.get("TRITON_INTERPRET") == "1"
                                       and importlib.util.find_spec("triton") is not None)


def _triton_version() -> str:
    try:
        import triton
        return triton.__version__
    except ImportError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the speed/tune problem (e.g. 0.001 on a CPU)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per path (default 3)")
    p.add_argument("--skew", type=float, default=2.0, help="movie popularity skew of speed/tune (default 2: "
                   "MovieLens's hottest movie; 3: eight times hotter)")
    p.add_argument("--paths", default=os.environ.get("BENCH_GPU_PATHS", "abcdefg"),
                   help="which rows of the speed table (default abcdefg; env BENCH_GPU_PATHS)")
    p.add_argument("--accuracy-scale", type=float, default=1.0, help="size of the real-shaped set, x 25M ratings")
    p.add_argument("--accuracy-plain", action=argparse.BooleanOptionalAction, default=True,
                   help="also fit the plain path (at a fifth of --accuracy-scale: it is the slow one)")
    p.add_argument("--crossover-sizes", default="1e4,3e4,1e5,3e5,1e6", help="ratings per fit, comma-separated")
    p.add_argument("--crossover-cpu-max", type=float, default=1e6, help="largest size fitted on the CPU")
    p.add_argument("--device", help="default: cuda when present, else cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    big = ({"speed", "tune"} & set(chosen) and args.scale > 0.01) or ("accuracy" in chosen and args.accuracy_scale > 0.01)
    if device.type == "cpu" and big:
        print("no CUDA device: run the speed/tune/accuracy sections on a CPU only small, e.g. --scale 0.001 "
              "--accuracy-scale 0.001", file=sys.stderr)
        return 1
    failed = []
    for name in chosen:  # a failing section prints its traceback and the others still run (one GPU session each)
        t = time.perf_counter()
        try:
            globals()[name](args, device)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - t:.0f} s)\n", flush=True)
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
