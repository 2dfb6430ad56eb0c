"""xlcollab fit against scikit-surprise on ml-latest-small, plus a MovieLens-25M-shaped GPU section.

    .venv/bin/python benchmarks/bench_fit.py                 # CPU table (+ GPU section when CUDA is present)
    .venv/bin/python benchmarks/bench_fit.py --gpu-only      # just the GPU section (the lead's H100/H200 run)
    .venv/bin/python benchmarks/bench_fit.py --gpu-only --scale 0.01 --device cpu   # the GPU code, tiny, on CPU
    .venv/bin/python benchmarks/bench_fit.py --imports-only  # what importing torch._dynamo costs a process

    .venv/bin/python benchmarks/bench_fit.py --ratings ~/Downloads/ml-1m.zip   # the CPU table on another release

CPU section, one table: the 80/20 seed-42 split of the embedded ml-latest-small (or --ratings; data.split_indices,
the fast.ai protocol), every method on exactly the same train and validation rows (Surprise's trainset is built
from our train rows, user and movie codes as its raw ids). Validation RMSE, precision/recall/NDCG@10 and fit
seconds (training only: not reading, encoding or Surprise's trainset construction), median of --runs runs
(KNNBaseline: --knn-runs; SVD++: 1); then --cv-folds-fold cross-validation of all the ratings (seed 0), mean ± std
over the folds, with the wall and CPU seconds of fit + predict per fold.

GPU section: benchmarks/bench_gpu.py's speed section (MovieLens-25M-shaped synthetic ratings: a plain PyTorch
loop, torch.compile of it, xlcollab's plain and fused paths, minibatch and full batch); bench_gpu.py has the rest
(kernel tuning, accuracy on real-shaped data, the CPU/CUDA crossover).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from bench_common import load, table  # noqa: E402

from xlcollab.core import data, evaluate, fit  # noqa: E402
from xlcollab.core.fit import CollabFit  # noqa: E402

# -- CPU: ml-latest-small (or --ratings), one table: held-out split and k-fold CV ---------------------------------
def xlcollab_method(**settings):
    """(holdout, fit_predict) of CollabFit with these settings (the defaults when none)."""
    def holdout(ratings: data.Ratings, train, valid) -> dict:
        est = CollabFit(**settings).fit(ratings)
        return {"scores": est.valid_scores_, "fit s": est.fit_seconds_, "name": describe_fit(est.settings_, settings)}
    return holdout, fit.fit_predict(**settings)


def describe_fit(s: dict, given: dict) -> str:
    if s["session_gap"] == 0:
        return f"{_describe_model(s, {k: v for k, v in given.items() if k != 'session_gap'})}, the model alone"
    return f"{_describe_model(s, given)} + session effects ({s['session_gap']:g} min, shrink {s['session_shrink']:g})"


def _describe_model(s: dict, given: dict) -> str:
    if s["model"] == "blend":
        return f"xlcollab fit --model blend ({' + '.join(m['model'] for m in s['members'])}, probe-fitted weights)"
    if s["model"] == "svdpp":
        return f"xlcollab fit --model svdpp (dotbias + implicit feedback, {s['n_factors']} factors, {s['epochs']} epochs)"
    if s["model"] == "bmf":
        return (f"xlcollab fit --model bmf ({s['n_factors']} factors per draw, {s['epochs']} Gibbs sweeps, "
                f"posterior mean as {s['kept_factors']} factors)")
    return (f"xlcollab fit {'defaults' if not given else ' '.join(f'{k}={v}' for k, v in given.items())} "
            f"({s['model']}, {s['n_factors']} factors, {s['epochs']} epochs, {s['optimizer']} lr {s['lr']:g}, "
            f"wd {s['wd']:g}/{s['wd_bias']:g} {s['wd_mode']}, batch {s['batch_size']}, {s['schedule']})")


def surprise_method(surprise, make, scale):
    """(holdout, fit_predict) of a Surprise algorithm; codes stand in for its raw ids."""
    def trainset(u, i, r):
        frame = pd.DataFrame({"user": u, "item": i, "rating": r})
        return surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=scale)).build_full_trainset()

    def predict(algo, users, items):
        return torch.tensor([algo.predict(a, b).est for a, b in zip(users.tolist(), items.tolist())])

    def holdout(ratings: data.Ratings, train, valid) -> dict:
        ts = trainset(*(c.numpy() for c in train))
        algo = make()
        t = time.perf_counter()
        algo.fit(ts)
        secs = time.perf_counter() - t
        pred = predict(algo, valid[0], valid[1])
        return {"scores": evaluate.scores(*valid, pred), "fit s": secs}

    def fit_predict(train, users, items, n_users, n_items, times=None):  # Surprise has no use for times
        algo = make()
        algo.fit(trainset(*(c.numpy() for c in train)))
        return predict(algo, users, items)
    return holdout, fit_predict


def methods(args: argparse.Namespace, scale) -> list[tuple[str, object, object, int]]:
    """(name, holdout, fit_predict, runs) of every method in the table."""
    rows = [("xlcollab fit defaults", *xlcollab_method(), args.runs),
            ("xlcollab fit --session-gap 0", *xlcollab_method(session_gap=0), args.runs)]
    rows += [(f"xlcollab fit --model {m}", *xlcollab_method(model=m), args.runs) for m in args.models.split(",") if m]
    if args.skip_surprise:
        return rows
    try:
        import surprise
    except ImportError:
        print("scikit-surprise is not installed (pip install scikit-surprise): skipping its rows", file=sys.stderr)
        return rows
    knn = {"name": "pearson_baseline", "user_based": False}
    return rows + [
        ("Surprise SVD defaults", *surprise_method(surprise, lambda: surprise.SVD(random_state=0), scale), args.runs),
        ("Surprise SVD (100 factors, 60 epochs, reg_all 0.1, lr_all 0.01)", *surprise_method(
            surprise, lambda: surprise.SVD(n_factors=100, n_epochs=60, reg_all=0.1, lr_all=0.01, random_state=0),
            scale), args.runs),
        ("Surprise SVD++ defaults", *surprise_method(surprise, lambda: surprise.SVDpp(random_state=0), scale), 1),
        ("Surprise KNNBaseline (item-based, pearson_baseline)", *surprise_method(
            surprise, lambda: surprise.KNNBaseline(sim_options=knn, verbose=False), scale), args.knn_runs),
    ]


def cpu_section(args: argparse.Namespace) -> None:
    """Each method on the 80/20 seed-42 split (median of its runs) and, unless --cv-folds 0, by k-fold CV."""
    ratings = data.load_ratings(args.ratings)
    enc, codes = evaluate.encoded_codes(ratings)
    tr, va = (torch.as_tensor(x) for x in data.split_indices(len(enc.ratings), 0.2, 42))
    train, valid = tuple(c[tr] for c in codes), tuple(c[va] for c in codes)
    scale = (float(enc.ratings.min()), float(enc.ratings.max()))
    cv = f"{args.cv_folds}-fold CV (seed 0) of all {len(enc.ratings):,}" if args.cv_folds else "no CV"
    print(f"## {ratings.source}: 80/20 split (seed 42): {len(tr):,} train / {len(va):,} valid ratings; {cv}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()} (xlcollab fits small problems on 1), load average before: {load()}")
    rows = []
    for name, holdout, fit_predict, runs in methods(args, scale):
        done = [holdout(ratings, train, valid) for _ in range(runs)]
        sc = {m: statistics.median(d["scores"][m] for d in done) for m in evaluate.METRICS}
        row = {"method": done[-1].get("name", name), "valid RMSE": f"{sc['rmse']:.4f}",
               "P@10 / R@10 / NDCG@10": f"{sc['precision']:.3f} / {sc['recall']:.3f} / {sc['ndcg']:.3f}",
               "fit s": f"{statistics.median(d['fit s'] for d in done):.2f}", "runs": runs, "CV RMSE": "",
               "CV NDCG@10": "", "CV s/fold (CPU s)": ""}
        if args.cv_folds:
            cv = evaluate.cross_validate(fit_predict, codes=(codes, len(enc.user_ids), len(enc.item_ids)),
                                         folds=args.cv_folds, seed=0, times=enc.times).summary()
            row["CV RMSE"] = f"{cv['rmse']['mean']:.4f} ± {cv['rmse']['std']:.4f}"
            row["CV NDCG@10"] = f"{cv['ndcg']['mean']:.3f} ± {cv['ndcg']['std']:.3f}"
            row["CV s/fold (CPU s)"] = f"{cv['fit_seconds']['mean']:.1f} ({cv['cpu_seconds']['mean']:.1f})"
        rows.append(row)
        print(f"  {row['method']}: {row['valid RMSE']} {row['CV RMSE']} (load {load()})", file=sys.stderr, flush=True)
    print(f"load average after: {load()}\n")
    print(table(rows, ["method", "valid RMSE", "P@10 / R@10 / NDCG@10", "fit s", "runs", "CV RMSE", "CV NDCG@10",
                       "CV s/fold (CPU s)"]))
    print("\nvalid: the seed-42 split, median of the runs; fit s: training only. CV: mean ± std over the folds of "
          "fit + predict (wall, and this process's CPU seconds). Ranking: each user's held-out movies ranked by "
          "prediction, relevant = rated >= 4 (README).\n")


# -- import costs: what the sheet solves avoid by using no torch.optim --------------------------------------------
IMPORTS = {"import torch": "import torch",
           "import torch; import torch._dynamo (a torch.optim optimizer's first use)": "import torch, torch._dynamo",
           "import xlcollab.sheets.collab.solve (the sheet solve's own imports)": "import xlcollab.sheets.collab.solve"}


def import_section(args: argparse.Namespace) -> None:
    """Wall seconds of fresh interpreters importing torch with and without torch._dynamo (median of --import-runs).

    Creating a torch.optim optimizer imports torch._dynamo; the collab sheet solves run core.optim's rules and
    L-BFGS through core.train instead, so `xlcollab solve` never pays it (tests/test_train.py checks that)."""
    repo = str(Path(__file__).resolve().parents[1])
    rows = []
    for name, code in IMPORTS.items():
        times = []
        for _ in range(args.import_runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)
            times.append(time.perf_counter() - t)
        rows.append({"process": name, "seconds (median)": f"{statistics.median(times):.2f}",
                     "runs": ", ".join(f"{x:.2f}" for x in times)})
    extra = float(rows[1]["seconds (median)"]) - float(rows[0]["seconds (median)"])
    print(f"## import costs (fresh interpreter each; load average {load()})\n")
    print(table(rows, ["process", "seconds (median)", "runs"]))
    print(f"\ntorch._dynamo adds {extra:.2f} s to a process; the sheet solves never import it\n")


# -- GPU: benchmarks/bench_gpu.py's speed section ----------------------------------------------------------------
def gpu_section(args: argparse.Namespace) -> int:
    """The GPU table lives in bench_gpu.py (plain PyTorch, torch.compile, xlcollab plain and fused): its speed section."""
    import bench_gpu

    return bench_gpu.main(["--sections", "speed", "--scale", str(args.scale), "--epochs", str(args.gpu_epochs)]
                          + (["--device", args.device] if args.device else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per cheap method; the median is reported (default 3)")
    p.add_argument("--knn-runs", type=int, default=1, help="runs of KNNBaseline (~7 s each; default 1)")
    p.add_argument("--skip-surprise", action="store_true", help="only xlcollab in the CPU table")
    p.add_argument("--ratings", help="ratings file, MovieLens directory or .zip for the CPU table (default: the "
                                     "embedded ml-latest-small; e.g. ml-100k.zip, ml-1m.zip)")
    p.add_argument("--cv-folds", type=int, default=5, help="folds of the CV columns; 0: none (default 5)")
    p.add_argument("--models", default="bmf,svdpp,blend", help="xlcollab models beside the defaults (default "
                                                               "bmf,svdpp,blend; '' for none)")
    p.add_argument("--gpu-only", action="store_true", help="only the GPU section")
    p.add_argument("--gpu", action="store_true", help="run the GPU section even without CUDA (on --device)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the synthetic problem (e.g. 0.01 on a CPU)")
    p.add_argument("--gpu-epochs", type=int, default=3, help="timed epochs per path (default 3)")
    p.add_argument("--device", help="device of the GPU section (default: cuda when present, else cpu)")
    p.add_argument("--import-runs", type=int, default=3, help="fresh interpreters per import timing (default 3)")
    p.add_argument("--imports-only", action="store_true", help="only the import costs")
    args = p.parse_args(argv)
    if args.imports_only:
        import_section(args)
        return 0
    if not args.gpu_only:
        import_section(args)
        cpu_section(args)
    if args.gpu_only or args.gpu or torch.cuda.is_available():
        if not torch.cuda.is_available() and args.scale >= 1 and (args.device or "cpu") == "cpu":
            print("no CUDA device: run the GPU section on a CPU only with a small --scale, e.g. 0.01", file=sys.stderr)
            return 1
        return gpu_section(args)
    if not args.gpu_only:
        print("(no CUDA device: GPU section skipped; `--gpu-only --scale 0.01` runs its code small on the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
