"""`xlcollab cv` (k-fold cross-validation of the fit settings) and `xlcollab tune` (searching them, nested)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from xlcollab.cli.fit import finite, add_fit_flags, read_ratings
from xlcollab.core.settings import FIT, check_fit
from xlcollab.errors import SettingsError

METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "precision": "prec@10", "recall": "recall@10", "ndcg": "NDCG@10"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add cv and tune to the `xlcollab` command; both take every flag of `fit` as the settings to evaluate."""
    p = sub.add_parser("cv", help="k-fold cross-validation of the fit settings: RMSE, MAE, precision/recall/NDCG@10",
                       description="Cross-validate the fit settings: the ratings cut into K seeded folds, each fold "
                                   "held out once; mean and standard deviation over the folds. Ranking metrics: each "
                                   "user's held-out movies ranked by prediction, relevant = rated 4 or more.")
    add_fit_flags(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: %(default)s)")
    p.add_argument("--cv-seed", type=int, default=0, help="seed of the folds (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(run=run_cv)

    p = sub.add_parser("tune", help="search the fit settings by cross-validation of the training part",
                       description="Search the fit settings: each candidate is cross-validated on the training part "
                                   "of the ratings (the split `fit` makes with --valid-pct and --seed); the best mean "
                                   "is refitted on the whole training part and scored once on the held-out part. The "
                                   "other flags are the settings every candidate starts from.")
    add_fit_flags(p)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="values to try for one setting (repeat for more settings; NAME as the setting or its flag, "
                        "e.g. wd=0.05,0.1 or factors=32,64); with --random, LOW:HIGH is a log-uniform range")
    p.add_argument("--random", type=int, default=None, metavar="N",
                   help="N random candidates instead of the whole grid (no --grid: a built-in space of factors, "
                        "wd, lr, epochs)")
    p.add_argument("--folds", type=int, default=3, help="folds of the training part (default: %(default)s)")
    p.add_argument("--cv-seed", type=int, default=0, help="seed of the folds and the random draws "
                                                          "(default: %(default)s)")
    p.add_argument("--metric", choices=("rmse", "mae", "precision", "recall", "ndcg"), default="rmse",
                   help="what chooses the winner (default: %(default)s)")
    p.add_argument("--cache", metavar="PATH", help="JSON-lines file of finished candidates: a rerun resumes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(run=run_tune)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    params = {name: getattr(args, name) for name in FIT}
    check_fit(params)  # bad settings fail before the data (or torch) is read
    return params


def _bar(total: int, desc: str) -> Any:
    """A tqdm bar on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def _mean_std(summary: dict[str, Any], metric: str) -> str:
    return f"{summary[metric]['mean']:.4f} ± {summary[metric]['std']:.4f}"


def run_cv(args: argparse.Namespace) -> int:
    """Cross-validate the settings the flags give; one line per fold, then mean ± std."""
    params = _settings(args)
    from xlcollab.core import evaluate, fit

    ratings = read_ratings(args)
    bar = None if args.json else _bar(args.folds, "cv")
    if not args.json:
        print(f"{ratings.source}: {len(ratings):,} ratings, {args.folds}-fold cross-validation (seed {args.cv_seed})")
        print(f"{'fold':>4}  " + "  ".join(f"{METRIC_LABELS[m]:>9}" for m in evaluate.METRICS)
              + f"  {'fit s':>7}  {'CPU s':>7}", flush=True)

    def show(row: dict[str, float]) -> None:
        if bar is not None:
            bar.update()
        if not args.json:
            print(f"{row['fold']:>4}  " + "  ".join(f"{row[m]:>9.4f}" for m in evaluate.METRICS)
                  + f"  {row['fit_seconds']:>7.2f}  {row['cpu_seconds']:>7.2f}", flush=True)

    try:
        res = evaluate.cross_validate(fit.fit_predict(**params), ratings, folds=args.folds,
                                      seed=args.cv_seed, on_fold=show, name=params["model"])
    finally:
        if bar is not None:
            bar.close()
    summary = res.summary()
    if args.json:
        print(json.dumps({"source": ratings.source, "settings": _plain(params), **_finite_tree(summary),
                          "per_fold": _finite_tree(res.folds)}))
        return 0
    print(f"{'mean':>4}  " + "  ".join(f"{summary[m]['mean']:>9.4f}" for m in evaluate.METRICS)
          + f"  {summary['fit_seconds']['mean']:>7.2f}  {summary['cpu_seconds']['mean']:>7.2f}")
    print(f"{'std':>4}  " + "  ".join(f"{summary[m]['std']:>9.4f}" for m in evaluate.METRICS))
    print(f"RMSE {_mean_std(summary, 'rmse')}, MAE {_mean_std(summary, 'mae')}, NDCG@10 {_mean_std(summary, 'ndcg')}")
    return 0


def parse_space(grid: list[str], random: bool) -> dict[str, Any]:
    """--grid NAME=V1,V2 (or NAME=LOW:HIGH with --random) -> {setting: [values] or (low, high)}."""
    flags = {s.flag.lstrip("-").replace("-", "_"): name for name, s in FIT.items()}
    space: dict[str, Any] = {}
    for item in grid:
        name, sep, values = item.partition("=")
        key = name.strip().lstrip("-").replace("-", "_")
        key = key if key in FIT else flags.get(key, key)
        if not sep or key not in FIT or not values:
            raise SettingsError(f"--grid {item!r}: expected NAME=V1,V2,... with NAME one of {', '.join(FIT)}")
        parse = FIT[key].parse or (lambda t: t.lower() in ("1", "true", "yes", "on"))
        try:
            if ":" in values and random:
                lo, hi = (parse(v) for v in values.split(":"))
                if not (isinstance(lo, (int, float)) and 0 < lo < hi):
                    raise ValueError
                space[key] = (lo, hi)
            else:
                space[key] = [parse(v) for v in values.split(",")]
        except ValueError:
            raise SettingsError(f"--grid {item!r}: cannot read the values of {key}") from None
    return space


def run_tune(args: argparse.Namespace) -> int:
    """Search, then print the candidates best first and the winner's held-out scores."""
    base = _settings(args)
    from xlcollab.core import evaluate, fit, tune

    if args.random is None and not args.grid:
        raise SettingsError("tune needs --grid NAME=V1,V2 (the whole grid) or --random N (N draws)")
    space = parse_space(args.grid, args.random is not None) if args.grid else dict(tune.DEFAULT_SPACE)
    cands = (tune.random_candidates(space, args.random, args.cv_seed) if args.random is not None
             else tune.grid(space))
    for cand in cands:
        check_fit({**base, **cand})
    ratings = read_ratings(args)
    bar = None if args.json else _bar(len(cands), "tune")
    if not args.json:
        print(f"{ratings.source}: {len(ratings):,} ratings; {len(cands)} candidates, {args.folds}-fold CV of the "
              f"training part (valid_pct {base['valid_pct']:g}, seed {base['seed']})", flush=True)

    def progress(row: dict[str, Any]) -> None:
        if bar is not None:
            bar.update()
            bar.set_postfix_str(f"{_describe(row['settings'])}: {row[args.metric]['mean']:.4f}")

    try:
        res = tune.tune(lambda c: fit.fit_predict(**{**base, **c}), ratings, cands, folds=args.folds,
                        cv_seed=args.cv_seed, valid_pct=base["valid_pct"], seed=base["seed"], metric=args.metric,
                        cache=args.cache, on_candidate=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"source": ratings.source, "metric": args.metric, "best": _plain(res.best),
                          "held_out": _finite_tree(res.held_out), "n_train": res.n_train,
                          "n_held_out": res.n_held_out,
                          "candidates": [_finite_tree({**r, "settings": _plain(r["settings"])}) for r in res.rows]}))
        return 0
    print(f"{'RMSE (CV)':>17}  {'MAE':>7}  {'NDCG@10':>7}  {'fit s':>6}  settings")
    for r in res.rows:
        print(f"{_mean_std(r, 'rmse'):>17}  {r['mae']['mean']:>7.4f}  {r['ndcg']['mean']:>7.4f}  "
              f"{r['fit_seconds']['mean']:>6.2f}  {_describe(r['settings'])}")
    if res.held_out:
        h = res.held_out
        print(f"best: {_describe(res.best)}; on the {res.n_held_out:,} held-out ratings: RMSE {h['rmse']:.4f}, "
              f"MAE {h['mae']:.4f}, NDCG@10 {h['ndcg']:.4f}")
    return 0


def _describe(cand: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in cand.items()) or "(as given)"


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}


def _finite_tree(x: Any) -> Any:
    """x with every NaN/inf float replaced by None (JSON has none)."""
    if isinstance(x, dict):
        return {k: _finite_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_tree(v) for v in x]
    return finite(x) if isinstance(x, float) else x
