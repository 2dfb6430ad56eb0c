"""`xlcollab fit`, `xlcollab recommend`, `xlcollab explain`: train a model, use it, and read what it learned."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from xlcollab.core.safeio import printable
from xlcollab.core.settings import FIT, check_fit
from xlcollab.errors import SettingsError


def add_fit_flags(p: argparse.ArgumentParser) -> None:
    """RATINGS, one flag per setting of core.settings.FIT, and the CSV column names (fit, cv, tune)."""
    p.add_argument("ratings", nargs="?", metavar="RATINGS",
                   help="ratings file, MovieLens directory or .zip (default: the embedded ml-latest-small)")
    for name, setting in FIT.items():
        shown = " ".join(map(str, setting.default)) if isinstance(setting.default, tuple) else "%(default)s"
        default = "" if setting.default is None else f" (default: {shown})"
        if setting.parse is None:
            p.add_argument(setting.flag, dest=name, action=argparse.BooleanOptionalAction, default=setting.default,
                           help=setting.help + default)
        elif setting.nargs is not None:
            p.add_argument(setting.flag, dest=name, nargs=setting.nargs, action=_words(setting.parse),
                           metavar=setting.metavar, default=setting.default, help=setting.help + default)
        else:
            p.add_argument(setting.flag, dest=name, type=setting.parse, choices=setting.choices,
                           default=setting.default, help=setting.help + default)
    p.add_argument("--user-col", help="user column of a CSV with other names")
    p.add_argument("--item-col", help="movie/item column of a CSV with other names")
    p.add_argument("--rating-col", help="rating column of a CSV with other names")


def read_ratings(args: argparse.Namespace) -> Any:
    """The ratings RATINGS and the column flags name (data.Ratings)."""
    from xlcollab.core import data

    return data.load_ratings(args.ratings, user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col)


def register(sub: argparse._SubParsersAction) -> None:
    """Add fit, recommend and explain to the `xlcollab` command; fit's flags are core.settings.FIT, one per setting."""
    p = sub.add_parser("fit", help="fit a collaborative-filtering model (default: the embedded ml-latest-small)",
                       description="Fit a collaborative-filtering model (gradient descent; Gibbs sampling for "
                                   "bmf); print the per-epoch table and the validation RMSE. Every flag is a "
                                   "setting of xlcollab.core.fit.CollabFit.")
    add_fit_flags(p)
    p.add_argument("--save", metavar="PATH", help="save the fitted model (for recommend and explain)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of the table")
    p.add_argument("--force", action="store_true", help="run even when the estimated memory or time is more "
                   "than this machine has (or than XLCOLLAB_MAX_HOURS)")
    p.set_defaults(run=run_fit)

    p = sub.add_parser("recommend", help="top-N unseen movies for a user (or movies like a movie), from a saved model")
    p.add_argument("--model", required=True, metavar="PATH", help="a model saved by `xlcollab fit --save`")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID", help="user id as in the ratings file: the movies they have not rated")
    who.add_argument("--movie", metavar="ID", help="movie id: the movies whose factors are most alike (cosine)")
    p.add_argument("-n", type=int, default=10, help="how many movies (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run_recommend)

    p = sub.add_parser("explain", help="what a saved model learned: movie biases and principal axes of the factors")
    p.add_argument("--model", required=True, metavar="PATH", help="a model saved by `xlcollab fit --save`")
    p.add_argument("-n", type=int, default=10, help="movies per list (default: %(default)s)")
    p.add_argument("--top", type=int, default=1000, help="only the TOP most-rated movies (default: %(default)s)")
    p.add_argument("--axes", type=int, default=3, help="principal axes to show (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=run_explain)


def _words(parse: Any) -> type[argparse.Action]:
    """An argparse action for a flag of several words (--y-range 1 5, --hidden 100 50): `parse` turns the words into
    the setting's value; a ValueError is argparse's usage error naming the flag."""
    class Words(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            try:
                setattr(namespace, self.dest, parse(values))
            except ValueError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
    return Words


def finite(x: Any) -> Any:
    """JSON has no NaN: None instead."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def run_fit(args: argparse.Namespace) -> int:
    """Load, fit, print the per-epoch table (or JSON), optionally save; under torchrun with --distributed, every
    process fits its share and rank 0 alone prints and saves."""
    params = {name: getattr(args, name) for name in FIT}
    settings = check_fit(params)  # bad settings fail before the data (or torch) is read
    from xlcollab.core import distributed, modelfile
    from xlcollab.core.fit import CollabFit

    if args.save:
        modelfile.check_target(args.save)  # a path that cannot take the model fails now, not after training
    leader = distributed.join(settings["device"]).leader if settings["distributed"] else True
    try:
        est = CollabFit(**params)
        out = sys.stdout if leader else open(os.devnull, "w")
        ratings, source = _ratings_or_stream(args, settings, out)

        def show(row: dict[str, Any]) -> None:
            lr = "-" if math.isnan(row["lr"]) else f"{row['lr']:.2e}"  # bmf samples: no learning rate
            print(f"{row['epoch']:>5}  {row['train_rmse']:>10.4f}  {row['valid_rmse']:>10.4f}  {lr:>9}  "
                  f"{row['seconds']:>7.2f}", file=out, flush=True)

        est.fit(ratings, callback=None if args.json else show)
        if args.save and leader:
            est.save(args.save)
        _report(args, est, source, out)
    finally:
        distributed.leave()
    return 0


def _ratings_or_stream(args: argparse.Namespace, settings: dict[str, Any], out: Any) -> tuple[Any, str]:
    """(what fit takes, its name): the ratings read and checked against the machine's memory, or the path of a
    file larger than --memory-budget, which fit streams from disk; prints the table's head."""
    from xlcollab.core import budget, stream

    if stream.needs_streaming(args.ratings, settings["memory_budget"]):
        if args.user_col or args.item_col or args.rating_col:
            raise SettingsError("--memory-budget streams files whose columns are found by name; give the columns "
                                "MovieLens names or leave out --memory-budget")
        if not args.json:
            print(f"{args.ratings}: about {stream.estimated_ratings(Path(args.ratings).expanduser()):,} ratings, more "
                  f"than the memory budget holds: streamed from disk", file=out)
        ratings, source = args.ratings, str(args.ratings)
    else:
        ratings = read_ratings(args)
        frame, source = ratings.frame, ratings.source
        budget.check_fit(len(frame), frame["user"].nunique(), frame["item"].nunique(), settings, force=args.force)
        if not args.json:
            n = len(frame)
            n_valid = n - int(n * (1 - args.valid_pct))
            print(f"{source}: {n:,} ratings, {frame['user'].nunique():,} users, {frame['item'].nunique():,} movies",
                  file=out)
            print(f"{n - n_valid:,} train / {n_valid:,} valid ratings (split seed {args.seed})", file=out)
    if not args.json:
        print(f"{'epoch':>5}  {'train_rmse':>10}  {'valid_rmse':>10}  {'lr':>9}  {'seconds':>7}", file=out, flush=True)
    return ratings, source


def _report(args: argparse.Namespace, est: Any, source: str, out: Any) -> None:
    """The fit's summary: one JSON object, or what it ran with, the RMSE and the ranking scores."""
    s = est.settings_
    if args.json:
        settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items() if k != "progress"}
        print(json.dumps({"valid_rmse": finite(est.valid_rmse_), "train_rmse": finite(est.train_rmse_),
                          "valid_scores": {k: finite(v) for k, v in est.valid_scores_.items()},
                          "fit_seconds": est.fit_seconds_, "epochs": s["epochs"], "device": est.device_,
                          "fused": est.fused_, "n_ratings": est.n_ratings_, "source": source, "settings": settings,
                          "sessions": None if est.sessions_ is None else len(est.sessions_),
                          "model_valid_rmse": finite(est.model_valid_rmse_),
                          "saved": args.save, "trace": [{k: finite(v) for k, v in r.items()} for r in est.trace_]}),
              file=out)
        return
    weights = est.model_.weights.tolist() if s["model"] == "blend" else None
    print(describe(s, weights), file=out)
    if est.sessions_ is not None:
        alone = "" if math.isnan(est.model_valid_rmse_) else f"; valid RMSE without them {est.model_valid_rmse_:.4f}"
        print(f"session effects: {len(est.sessions_):,} sittings of the training ratings (gap {s['session_gap']:g} "
              f"min, shrink {s['session_shrink']:g}){alone}", file=out)
    valid = "n/a (no validation set)" if math.isnan(est.valid_rmse_) else f"{est.valid_rmse_:.4f}"
    step = ", fused step" if est.fused_ else ""
    print(f"valid RMSE {valid}  (train {est.train_rmse_:.4f}; fit {est.fit_seconds_:.2f} s on {est.device_}{step})",
          file=out)
    if est.valid_scores_.get("mae") is not None:
        v = est.valid_scores_
        print(f"valid MAE {v['mae']:.4f}; top 10 of each user's validation movies (relevant >= 4):\n"
              f"  precision {v['precision']:.4f}, recall {v['recall']:.4f}, NDCG {v['ndcg']:.4f}", file=out)
    if args.save:
        print(f"saved model to {args.save}", file=out)


def describe(s: dict[str, Any], weights: list[float] | None = None, width: int = 80) -> str:
    """What a fit ran with, for the terminal: the model, then its training, whole parts on lines of `width`
    (`weights`: a blend's intercept and member weights)."""
    if s["model"] == "blend":
        return "\n".join(_wrap([f"model blend of {', '.join(m['model'] for m in s['members'])}",
                                f"intercept, weights {', '.join(f'{w:+.3f}' for w in weights or [])}",
                                "least squares on a held-out tenth of the training ratings"], width))
    if s["model"] == "bmf":
        return "\n".join(_wrap([f"model bmf: {s['n_factors']} factors per draw",
                                f"{s['epochs']} Gibbs sweeps ({s['epochs'] // 4} burn-in)",
                                f"posterior mean kept as {s['kept_factors']} factors"], width))
    if s["model"] == "nn":
        model = [f"model nn: {s['user_factors']} user / {s['item_factors']} movie factors",
                 f"hidden {' '.join(map(str, s['hidden']))}", f"dropout {s['dropout'][0]:g} {s['dropout'][1]:g}"]
    else:
        model = [f"model {s['model']}: {s['n_factors']} factors"]
    if s["model"] != "dot" and isinstance(s["y_range"], tuple):  # resolved (settings_): no "auto" left
        model.append(f"y_range {s['y_range'][0]:g} to {s['y_range'][1]:g}")
    if s["init"] == "kaiming":
        model.append("He (kaiming) start")
    schedule = s["schedule"]
    if schedule == "sgdr":
        schedule = f"sgdr (cycle_len {s['cycle_len']}, cycle_mult {s['cycle_mult']})"
    training = [f"{s['optimizer']} lr {s['lr']:g} {schedule}", f"{s['epochs']} epochs",
                "full batch" if s["batch_size"] is None else f"batches of {s['batch_size']}",
                f"wd {s['wd']:g} (biases {s['wd_bias']:g}, {s['wd_mode']})"]
    return "\n".join(_wrap(model, width) + _wrap(training, width))


def _wrap(parts: list[str], width: int) -> list[str]:
    """Parts joined by ", " into lines of at most `width` columns (a part is never split; next lines indented)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            lines.append(("  " if lines else "") + part)
    return lines


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise SettingsError(f"{name} must be a positive integer, got {value}")


def _table(df: Any, cols: list[str], fmt: dict[str, str]) -> str:
    """A plain left-aligned text table (titles last, so they may be long)."""
    rows = [[format(v, fmt[c]) if c in fmt else printable(v) for c, v in zip(cols, r)]
            for r in df[cols].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[j]) for r in rows]) for j, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) if c != "title" else c for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.rjust(w) if c != "title" else v for c, v, w in zip(cols, r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _records(df: Any) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df.to_dict("records")]


def run_recommend(args: argparse.Namespace) -> int:
    """Top-N movies the user has not rated, by predicted rating."""
    from xlcollab.core import interpret
    from xlcollab.core.fit import CollabFit

    _positive("-n", args.n)
    fit = CollabFit.load(args.model)
    if args.movie is not None:
        top = interpret.similar(fit, args.movie, args.n)
        key, value, fmt = ("movie", args.movie), ("similar", "similarity"), "+.3f"
        heading = (f"{len(top)} movies most like {printable(fit.title(fit.item_ids_[fit.item_codes(args.movie)]))} "
                   "(cosine of factors):")
    else:
        top = interpret.recommend(fit, args.user, args.n)
        key, value, fmt = ("user", args.user), ("recommendations", "predicted"), ".2f"
        heading = f"top {len(top)} unseen movies for user {printable(args.user)} (predicted rating):"
    if args.json:
        print(json.dumps({key[0]: key[1], value[0]: _records(top)}))
    else:
        print(heading)
        print(_table(top, ["movie", value[1], "title"], {value[1]: fmt}))
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Movies ranked by learned bias, and the movies at each end of the factors' first principal axes."""
    from xlcollab.core import interpret
    from xlcollab.core.fit import CollabFit

    for name in ("n", "top", "axes"):
        _positive(f"--{name}" if name != "n" else "-n", getattr(args, name))
    fit = CollabFit.load(args.model)
    has_bias = hasattr(fit.model_, "item_bias")
    coords, explained = interpret.factor_pca(fit, args.axes, args.top)
    result: dict[str, Any] = {"top": args.top, "axes": []}
    lines: list[str] = []
    if has_bias:
        best, worst = interpret.bias_ranking(fit, args.n, args.top)
        result["best"], result["worst"] = _records(best), _records(worst)
        for label, df in (("highest", best), ("lowest", worst)):
            lines += [f"{label} movie bias (among the {args.top} most-rated movies):",
                      _table(df, ["movie", "bias", "ratings", "title"], {"bias": "+.3f"}), ""]
    else:
        lines += [f"model '{fit.settings_['model']}' has no movie biases; principal axes only", ""]
    for axis in range(1, len(explained) + 1):
        high, low = interpret.axis_ends(coords, axis, args.n)
        result["axes"].append({"axis": axis, "explained": float(explained[axis - 1]),
                               "high": _records(high), "low": _records(low)})
        col = f"pc{axis}"
        lines += [f"principal axis {axis} of the movie factors ({explained[axis - 1]:.1%} of their variance)",
                  "  one end:", _table(high, ["movie", col, "title"], {col: "+.3f"}),
                  "  other end:", _table(low, ["movie", col, "title"], {col: "+.3f"}), ""]
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(lines).rstrip())
    return 0
