"""How the default fit recipe was chosen: cross-validation across data sets of different size and density.

    .venv/bin/python benchmarks/study_defaults.py                       # every data set, every candidate
    .venv/bin/python benchmarks/study_defaults.py --sets small,gen100k --folds 3 --cache /tmp/study.jsonl
    .venv/bin/python benchmarks/study_defaults.py --sessions      # the session effects' gap and shrink

Each data set is split as `xlcollab fit` splits it (80/20, seed 42) and only its training part is searched, by
k-fold cross-validation (core.tune): the seed-42 validation part of ml-latest-small, which the README reports,
never takes part in choosing. Candidates are the former defaults (7 epochs), one-setting changes around them,
and the epochs rule of the training set's size (settings.auto_epochs) at three step targets. The
table gives each candidate's CV RMSE on each set and its mean excess over each set's best; the recipe with the
lowest mean excess generalises best. Results are cached (JSON lines), so an interrupted study resumes.

Data sets: the embedded ml-latest-small; subsamples of its seed-42 training part (half the users; 40 % of the
ratings; only movies with 5 or more ratings); ratings generated with MovieLens-like skew in the shapes of ml-100k
and (a quarter of) ml-1m. The factor-model candidates are fitted without session effects (session_gap 0);
`--sessions` studies those instead, on the sets with timestamps: one fit per fold, every (gap, shrink) from it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import torch  # noqa: E402

from xlcollab.core import data, evaluate, fit, sessions, tune  # noqa: E402
from xlcollab.core.settings import FIT, auto_epochs  # noqa: E402


def generated(n_users: int, n_items: int, n_ratings: int, *, half_stars: bool, seed: int = 0,
              n_factors: int = 8) -> data.Ratings:
    """Ratings with MovieLens-like skew: log-normal user activity (20 or more ratings each), Zipf-like movie
    popularity, popular movies rated higher, a biased low-rank taste model plus noise, rounded to the scale."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = np.clip(np.round(20 + (n_ratings - 20 * n_users) * activity / activity.sum()), 20, n_items // 2)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.75
    p = popularity / popularity.sum()
    users = np.repeat(np.arange(n_users), counts.astype(np.int64))
    items = np.concatenate([rng.choice(n_items, int(c), replace=False, p=p) for c in counts])
    pop_z = (np.log(popularity) - np.log(popularity).mean()) / np.log(popularity).std()
    u, v = rng.normal(0, 0.35, (n_users, n_factors)), rng.normal(0, 0.35, (n_items, n_factors))
    bu, bi = rng.normal(0, 0.4, n_users), rng.normal(0, 0.45, n_items) + 0.25 * pop_z
    x = 3.35 + bu[users] + bi[items] + (u[users] * v[items]).sum(1) + rng.normal(0, 0.8, len(users))
    rating = np.clip(np.round(x * 2) / 2, 0.5, 5.0) if half_stars else np.clip(np.round(x), 1, 5)
    frame = pd.DataFrame({"user": users + 1, "item": items + 1, "rating": rating})
    return data.load_ratings(frame.sample(frac=1.0, random_state=seed).reset_index(drop=True))


def subsample(ratings: data.Ratings, how: str, seed: int = 0) -> data.Ratings:
    """A subsample of ml-latest-small's seed-42 training part (the README reports its validation part, so none of
    those ratings may take part in choosing): 'users' (half of them), 'ratings' (40 %), 'items5' (movies rated 5+
    times)."""
    train, _ = data.split_indices(len(ratings.frame), 0.2, 42)
    f = ratings.frame.iloc[np.sort(train)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if how == "users":
        keep = f["user"].isin(rng.choice(f["user"].unique(), f["user"].nunique() // 2, replace=False))
    elif how == "ratings":
        keep = rng.random(len(f)) < 0.4
    else:
        keep = f["item"].map(f["item"].value_counts()) >= 5
    return data.load_ratings(f.loc[keep, ["user", "item", "rating", "timestamp"]].reset_index(drop=True))


SETS = {
    "small": lambda: data.load_ratings(),
    "small-users50": lambda: subsample(data.load_ratings(), "users"),
    "small-ratings40": lambda: subsample(data.load_ratings(), "ratings"),
    "small-items5": lambda: subsample(data.load_ratings(), "items5"),
    "gen100k": lambda: generated(943, 1682, 100_000, half_stars=False, seed=1),
    "gen1m-quarter": lambda: generated(1510, 3706, 250_000, half_stars=False, seed=2),
}


def candidates(n_fold_train: int) -> list[tuple[str, dict]]:
    """(label, settings): 7 epochs (the former constant), one setting changed at a time, and the epochs rule
    (settings.auto_epochs) aiming at 400, 560 or 800 steps, as it works out for a fold's training part."""
    around = {"wd": [0.05, 0.07, 0.14, 0.2], "epochs": [5, 10, 14], "n_factors": [32, 128], "lr": [0.003, 0.008],
              "wd_bias": [0.003, 0.03]}
    out = [("7 epochs", {"epochs": 7})]
    for name, values in around.items():
        out += [(describe({name: v}), {"epochs": 7, name: v} if name != "epochs" else {name: v}) for v in values]
    for steps in (400, 560, 800):
        out.append((f"epochs rule, {steps} steps", {"epochs": auto_epochs(n_fold_train, 1024, steps)}))
    return out


def session_study(ratings: data.Ratings, folds: int) -> dict[str, float]:
    """CV RMSE of the default model plus session effects of each (gap minutes, shrink) in SESSION_GRID, inside the
    training part of the 80/20 seed-42 split: one fit per fold, the sittings computed from it for every pair."""
    enc, codes = evaluate.encoded_codes(ratings)
    if enc.times is None:
        return {}
    train_idx, _ = data.split_indices(len(enc.ratings), 0.2, 42)
    sq: dict[str, list[np.ndarray]] = {}
    for tr, te in evaluate.kfold_indices(len(train_idx), folds, 0):
        a, b = torch.as_tensor(train_idx[tr]), torch.as_tensor(train_idx[te])
        train, test = tuple(c[a] for c in codes), tuple(c[b] for c in codes)
        est = fit.CollabFit(session_gap=0, valid_pct=0.0, progress=False).fit_tensors(
            train, None, len(enc.user_ids), len(enc.item_ids))
        residuals = (train[2] - est.predict_codes(*train[:2])).numpy()
        base = est.predict_codes(*test[:2]).numpy().astype(np.float64)
        low, high = est.rating_range_
        for gap, shrink in SESSION_GRID:
            shift = 0.0 if gap == 0 else sessions.fit(train[0].numpy(), enc.times[train_idx[tr]], residuals,
                                                      gap=gap * 60, shrink=shrink).shift(
                test[0].numpy(), enc.times[train_idx[te]])
            pred = np.clip(base + shift, low, high)
            label = "no session effects" if gap == 0 else f"sessions: gap {gap:g} min, shrink {shrink:g}"
            sq.setdefault(label, []).append(float(np.sqrt(np.mean((pred - test[2].numpy()) ** 2))))
    return {label: float(np.mean(v)) for label, v in sq.items()}


SESSION_GRID = [(0, 0)] + [(g, k) for g in (1, 2, 3, 5, 10, 30, 60, 1440) for k in (0.5, 1, 2, 3, 10)]  # README


def describe(cand: dict) -> str:
    return "defaults" if not cand else ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in cand.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--cache", default="/tmp/xlcollab-study-defaults.jsonl", help="JSON-lines cache ('' for none)")
    p.add_argument("--only", type=int, default=None, help="only the first N candidates (a smoke test)")
    p.add_argument("--sessions", action="store_true", help="the session-effects study instead (the sets with "
                   "timestamps: ml-latest-small and its subsamples)")
    args = p.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]

    print(f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; defaults: "
          + ", ".join(f"{k} {FIT[k].default}" for k in ("lr", "wd", "wd_bias")) + ", 64 factors")
    table: dict[str, dict[str, float]] = {}
    shapes = {}
    for name in names:
        ratings = SETS[name]()
        shapes[name] = (len(ratings), ratings.frame["user"].nunique(), ratings.frame["item"].nunique())
        wall, cpu = time.perf_counter(), time.process_time()
        if args.sessions:
            for label, rmse in session_study(ratings, args.folds).items():
                table.setdefault(label, {})[name] = rmse
            print(f"{name}: {shapes[name][0]:,} ratings; {time.perf_counter() - wall:.0f} s wall, "
                  f"{time.process_time() - cpu:.0f} s CPU, load {os.getloadavg()[0]:.2f}", flush=True)
            continue
        labelled = candidates(int(len(ratings) * 0.8) * (args.folds - 1) // args.folds)[:args.only]
        cands = [c for _, c in labelled]
        res = tune.tune(lambda c: fit.fit_predict(**{"session_gap": 0, **c}), ratings, cands, folds=args.folds,
                        cache=args.cache or None)
        for label, cand in labelled:
            row = next(r for r in res.rows if r["settings"] == cand)
            table.setdefault(label, {})[name] = row["rmse"]["mean"]
        print(f"{name}: {shapes[name][0]:,} ratings, {shapes[name][1]:,} users, {shapes[name][2]:,} movies; best "
              f"{describe(res.best)} (CV {res.rows[0]['rmse']['mean']:.4f}; held-out {res.held_out['rmse']:.4f}); "
              f"{time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU, load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    names = [n for n in names if any(n in t for t in table.values())]  # sessions: sets without times drop out
    best = {n: min(t[n] for t in table.values()) for n in names}
    rows = sorted(table.items(), key=lambda kv: np.mean([kv[1][n] - best[n] for n in names]))
    print("\n| candidate | " + " | ".join(names) + " | mean excess |")
    print("|---|" + "---|" * (len(names) + 1))
    for cand, scores in rows:
        excess = np.mean([scores[n] - best[n] for n in names])
        print(f"| {cand} | " + " | ".join(f"{scores[n]:.4f}" for n in names) + f" | {excess:+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
