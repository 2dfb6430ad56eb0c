"""Searching the fit settings by cross-validation inside the training part only (Surprise's GridSearchCV, nested).

The ratings are split as `fit` splits them (valid_pct, seed); the held-out part is touched once, at the end, to
report how the chosen settings do on ratings the search never saw. Each candidate is scored by k-fold
cross-validation of the training part; the best mean RMSE wins. Results can be cached in a JSON-lines file, so an
interrupted search resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlcollab.core import data, evaluate
from xlcollab.errors import DataError, SettingsError

# What `xlcollab tune` searches when no --grid is given: lists are choices, (low, high) pairs log-uniform ranges.
DEFAULT_SPACE: dict[str, Any] = {"n_factors": [32, 64, 128], "wd": (0.03, 0.3), "lr": (0.002, 0.02),
                                 "epochs": [5, 7, 10]}


def grid(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the listed values (a range is not a grid: SettingsError)."""
    for name, values in space.items():
        if not isinstance(values, list) or not values:
            raise SettingsError(f"a grid needs a list of values for {name}, got {values!r}")
    names = list(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]


def random_candidates(space: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n seeded draws: a list gives one of its values, a (low, high) pair a log-uniform number (whole numbers
    when both ends are whole). Repeated draws are dropped."""
    if n < 1:
        raise SettingsError(f"--random needs a positive number of candidates, got {n}")
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        cand = {}
        for name, values in space.items():
            if isinstance(values, list):
                cand[name] = values[int(rng.integers(len(values)))]
            else:
                lo, hi = values
                x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                cand[name] = int(round(x)) if isinstance(lo, int) and isinstance(hi, int) else float(f"{x:.3g}")
        if cand not in out:
            out.append(cand)
    return out


@dataclass
class TuneResult:
    """Each candidate's cross-validation summary (best first), the best settings and their held-out scores."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    held_out: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_held_out: int = 0


def _key(fingerprint: str, settings: dict[str, Any], folds: int, seed: int) -> str:
    return json.dumps({"data": fingerprint, "settings": settings, "folds": folds, "seed": seed}, sort_keys=True)


def _fingerprint(codes: evaluate.Codes) -> str:
    h = hashlib.sha1()
    for c in codes:
        h.update(c.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _read_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            done[rec["key"]] = rec["summary"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interruption
    return done


def tune(make: Callable[[dict[str, Any]], evaluate.FitPredict], ratings: Any, candidates: list[dict[str, Any]], *,
         folds: int = 3, cv_seed: int = 0, valid_pct: float = 0.2, seed: int = 42, metric: str = "rmse",
         cache: str | Path | None = None, on_candidate: Callable[[dict[str, Any]], None] | None = None) -> TuneResult:
    """Score each candidate (settings for `make`) by `folds`-fold CV of the training part of `ratings` (the split
    `fit` makes with valid_pct and seed), pick the lowest mean `metric` (highest for ranking metrics), refit it on
    the whole training part and score it once on the held-out part (valid_pct 0: no held-out score)."""
    if not candidates:
        raise SettingsError("no candidate settings to try")
    if metric not in evaluate.METRICS:
        raise SettingsError(f"metric must be one of {', '.join(evaluate.METRICS)}, got {metric!r}")
    enc, codes = evaluate.encoded_codes(ratings)
    tr, te = data.split_indices(len(enc.ratings), valid_pct, seed)
    if len(tr) < folds:
        raise DataError(f"{len(tr)} training ratings cannot make {folds} folds")
    train = tuple(c[torch.as_tensor(tr)] for c in codes)
    fingerprint = _fingerprint(train)
    cache_path = None if cache is None else Path(cache)
    done = _read_cache(cache_path)
    result = TuneResult(n_train=len(tr), n_held_out=len(te))
    for cand in candidates:
        key = _key(fingerprint, cand, folds, cv_seed)
        summary = done.get(key)
        if summary is None:
            cv = evaluate.cross_validate(make(cand), codes=(train, len(enc.user_ids), len(enc.item_ids)), folds=folds,
                                         seed=cv_seed, times=None if enc.times is None else enc.times[tr])
            summary = cv.summary()
            if cache_path is not None:
                with cache_path.open("a") as fh:
                    fh.write(json.dumps({"key": key, "summary": summary}) + "\n")
        row = {"settings": cand, **{m: summary[m] for m in evaluate.METRICS + ("fit_seconds", "cpu_seconds")}}
        result.rows.append(row)
        if on_candidate is not None:
            on_candidate(row)
    sign = 1 if metric in ("rmse", "mae") else -1
    result.rows.sort(key=lambda r: sign * r[metric]["mean"])
    result.best = result.rows[0]["settings"]
    if len(te):
        tu, ti, truth = (c[torch.as_tensor(te)] for c in codes)
        pred = make(result.best)(train, tu, ti, len(enc.user_ids), len(enc.item_ids),
                                 times=None if enc.times is None else (enc.times[tr], enc.times[te]))
        result.held_out = evaluate.scores(tu, ti, truth, pred)
    return result
