"""A fitted CollabFit in one file and back: torch.save of plain data (weights, settings, id maps, titles, seen
movies, trace, the sittings of the session effects); loading uses torch.load(weights_only=True), so a model file
can run no code.

Saving is atomic (`core.atomic.atomic_write`: a temporary file beside the target, fsync, rename), so a full disk
leaves the previous model as it was. Loading reads only a regular file under the size cap, and checks every
field against the others before anything is allocated: the model is first built on torch's "meta" device (no
memory) and its parameters' shapes compared with the file's tensors, so a file claiming 120,000,000 users is
one line, not 12 GB.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xlcollab.core import atomic, safeio, sessions
from xlcollab.core.models import build_model
from xlcollab.core.settings import FIT, MODEL_NAMES, check_fit
from xlcollab.errors import DataError, XlcollabError

FORMAT = "xlcollab-fit/1"


def save(est: Any, path: str | Path, *, before_replace: Callable[[], None] | None = None) -> Path:
    """Write the fitted CollabFit `est` to `path` atomically; DataError (the old file intact) when it cannot be.

    `before_replace` runs once the new file is complete and before it replaces the old one; if it raises, the
    old model stays (how a macro that writes a results sheet and a model makes them succeed or fail together).
    """
    path = Path(path)
    titles = None
    if est.titles_ is not None:
        titles = {"ids": est.titles_.index.tolist(), "titles": [str(t) for t in est.titles_.tolist()]}
    blob = {
        "format": FORMAT,
        "settings": est.settings_,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params().items()},
        "state_dict": {k: v.detach().cpu() for k, v in est.model_.state_dict().items()},
        "n_users": len(est.user_ids_), "n_items": len(est.item_ids_),
        "user_ids": est.user_ids_.tolist(), "item_ids": est.item_ids_.tolist(), "titles": titles,
        "seen_indptr": torch.as_tensor(est.seen_indptr_), "seen_items": torch.as_tensor(est.seen_items_),
        "item_counts": torch.as_tensor(est.item_counts_),
        "rating_range": list(est.rating_range_), "n_ratings": est.n_ratings_,
        "trace": est.trace_, "valid_rmse": est.valid_rmse_, "train_rmse": est.train_rmse_,
        "fit_seconds": est.fit_seconds_, "device": est.device_, "sessions": _sessions_blob(est.sessions_),
        "model_valid_rmse": est.model_valid_rmse_,
    }
    with atomic.atomic_write(path, kind=_error("cannot save the model", path), what="model file",
                             make_folders=False) as fh:
        try:
            torch.save(blob, fh)
        except RuntimeError as exc:  # torch's zip writer, failing to finish after a failed write (a full disk),
            if isinstance(exc.__context__, OSError):  # hides that OSError behind its own: atomic_write words it
                raise exc.__context__ from None
            raise
        if before_replace is not None:
            before_replace()
    return path


def _sessions_blob(found: sessions.Sessions | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"users": torch.as_tensor(found.users), "starts": torch.as_tensor(found.starts),
            "ends": torch.as_tensor(found.ends), "bias": torch.as_tensor(found.bias), "gap": found.gap}


def _restore_sessions(blob: dict, n_users: int) -> sessions.Sessions | None:
    """The sittings a file holds (None: a file without them, or saved before they existed), checked."""
    if blob.get("sessions") is None:
        return None
    part = _field(blob, "sessions", dict)
    users = _vector(part, "users", None, hi=n_users)
    starts, ends = _vector(part, "starts", len(users), lo=-2**62), _vector(part, "ends", len(users), lo=-2**62)
    bias = _field(part, "bias", torch.Tensor)
    gap = _field(part, "gap", int)
    if bias.shape != (len(users),) or not bias.dtype.is_floating_point or not torch.isfinite(bias).all():
        raise _Bad("the sessions' 'bias' is not one finite number per sitting")
    ordered = np.all((np.diff(users) > 0) | ((np.diff(users) == 0) & (np.diff(starts) > 0)))
    if gap < 0 or (ends < starts).any() or not ordered:
        raise _Bad("the sessions are not sittings sorted by user and time")
    return sessions.Sessions(users, starts, ends, bias.numpy().astype(np.float32), gap)


def check_target(path: str | Path) -> Path:
    """Refuse, before any work, a model path that cannot be written (a folder, a device, an unwritable folder)."""
    return atomic.write_target(path, kind=_error("cannot save the model", path), what="model file", make_folders=False)


def _error(what: str, path: str | Path) -> safeio.Kind:
    return lambda message: DataError(f"{what} at {path}: {message.removeprefix(f'{path}: ')}")


def load(cls: type, path: str | Path, device: str = "cpu") -> Any:
    """A fitted `cls` (CollabFit) from a file `save` wrote; DataError for a missing file or one that is not ours."""
    path = Path(path)
    try:
        fh = safeio.open_regular(path, kind=DataError, what="model file", cap=safeio.limits().file)
    except DataError as exc:
        if "no such file" in str(exc):
            raise DataError(f"model file {path} does not exist") from None
        raise
    with fh:
        try:
            blob = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a file that is not ours
            raise DataError(f"{path} is not an xlcollab model file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{path} is not an xlcollab model file (saved by `xlcollab fit --save`)")
    try:
        return _restore(cls, blob, device)
    except _Bad as exc:
        raise DataError(f"{path}: damaged xlcollab model file: {exc}") from None


class _Bad(Exception):
    """One inconsistency of a model file (the caller names the file)."""


def _field(blob: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in blob:
        raise _Bad(f"'{key}' is missing")
    value = blob[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _Bad(f"'{key}' is a {type(value).__name__}")
    return value


def _vector(blob: dict, key: str, length: int | None, *, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """A 1-D integer tensor field as numpy, of `length`, values in [lo, hi)."""
    t = _field(blob, key, torch.Tensor)
    if t.dim() != 1 or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise _Bad(f"'{key}' is not a vector of whole numbers")
    if length is not None and len(t) != length:
        raise _Bad(f"'{key}' has {len(t):,} entries, not {length:,}")
    a = t.numpy()
    if len(a) and (a.min() < lo or (hi is not None and a.max() >= hi)):
        raise _Bad(f"'{key}' holds values outside [{lo}, {hi})")
    return a


def _settings(blob: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """The constructor params (checked as CollabFit checks them) and the resolved settings of the fit."""
    params = _renamed(dict(_field(blob, "params", dict)))
    for key in ("y_range", "hidden", "dropout"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        defaults = check_fit(params)
    except XlcollabError as exc:
        raise _Bad(f"bad settings ({exc})") from None
    s = {**defaults, **_renamed(dict(_field(blob, "settings", dict)))}  # a setting newer than the file: its default
    if s.get("model") not in MODEL_NAMES:
        raise _Bad(f"unknown model kind {s.get('model')!r} (xlcollab knows {', '.join(MODEL_NAMES)})")
    for key in ("n_factors", "user_factors", "item_factors"):
        if not isinstance(s.get(key), int) or isinstance(s.get(key), bool) or s[key] < 1:
            raise _Bad(f"settings '{key}' is {s.get(key)!r}, not a whole number >= 1")
    for key in ("hidden", "dropout", "init"):
        try:
            s[key] = FIT[key].check(s[key], key)
        except XlcollabError as exc:
            raise _Bad(f"settings {exc}") from None
    yr = s.get("y_range")
    if yr is not None and not (isinstance(yr, (list, tuple)) and len(yr) == 2 and all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in yr) and yr[0] < yr[1]):
        raise _Bad(f"settings 'y_range' is {yr!r}")
    s["y_range"] = None if yr is None else (float(yr[0]), float(yr[1]))
    return params, s


def _renamed(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as files before --hidden saved them: n_hidden N is hidden (N,)."""
    if "n_hidden" in settings:
        settings["hidden"] = (settings.pop("n_hidden"),)
    return settings


def _check_shapes(s: dict[str, Any], n_users: int, n_items: int, state: dict) -> None:
    """The file's tensors must be exactly the model its settings describe (built on "meta": no memory used)."""
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise _Bad("'state_dict' holds something other than named tensors")
    try:
        with torch.device("meta"):  # y_range shapes nothing, and its start value would need a real tensor
            meta = build_model({**s, "y_range": None}, n_users, n_items, 3.0)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:  # e.g. a blend's members, or bmf's width, bad
        raise _Bad(f"its settings describe no model ({type(exc).__name__}: {exc})") from None
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    for key in sorted(expected.keys() | found.keys()):
        if expected.get(key) != found.get(key):
            raise _Bad(f"weights '{key}' are {found.get(key, 'missing')}, but a {s['model']} model of {n_users:,} "
                       f"users, {n_items:,} movies and {s['n_factors']} factors has {expected.get(key, 'none')}")
    if not all(torch.isfinite(v).all() for v in state.values() if v.dtype.is_floating_point):
        raise _Bad("the weights hold NaN or infinite values")


def _restore(cls: type, blob: dict, device: str) -> Any:
    """A fitted estimator from a loaded blob, every field checked against the others first."""
    params, s = _settings(blob)
    n_users, n_items = _field(blob, "n_users", int), _field(blob, "n_items", int)
    user_ids, item_ids = _field(blob, "user_ids", list), _field(blob, "item_ids", list)
    if n_users < 1 or n_items < 1 or len(user_ids) != n_users or len(item_ids) != n_items:
        raise _Bad(f"{len(user_ids):,} user ids and {len(item_ids):,} movie ids for {n_users:,} users and "
                   f"{n_items:,} movies")
    state = _field(blob, "state_dict", dict)
    _check_shapes(s, n_users, n_items, state)
    seen_items = _vector(blob, "seen_items", None, hi=n_items)
    indptr = _vector(blob, "seen_indptr", n_users + 1, hi=len(seen_items) + 1)
    if indptr[0] != 0 or indptr[-1] != len(seen_items) or (np.diff(indptr) < 0).any():
        raise _Bad("'seen_indptr' does not index 'seen_items'")
    counts = _vector(blob, "item_counts", n_items)
    rr = _field(blob, "rating_range", (list, tuple))
    if len(rr) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in rr) or rr[0] > rr[1]:
        raise _Bad(f"'rating_range' is {rr!r}")
    t = _field(blob, "titles", (dict, type(None)))
    if t is not None and not (isinstance(t.get("ids"), list) and isinstance(t.get("titles"), list)
                              and len(t["ids"]) == len(t["titles"])):
        raise _Bad("'titles' does not pair ids with titles")
    est = cls(**params)
    est.settings_ = s
    model = build_model(s, n_users, n_items, 3.0)
    model.load_state_dict(state)
    est.model_ = model.to(device).eval()
    est.user_ids_, est.item_ids_ = np.asarray(user_ids), np.asarray(item_ids)
    est.titles_ = None if t is None else pd.Series(t["titles"], index=t["ids"], dtype=object)
    est.seen_indptr_, est.seen_items_, est.item_counts_ = indptr, seen_items, counts
    est.rating_range_ = (float(rr[0]), float(rr[1]))
    est.n_ratings_ = _field(blob, "n_ratings", int)
    est.trace_ = _field(blob, "trace", list)
    est.valid_rmse_, est.train_rmse_ = _field(blob, "valid_rmse", (int, float)), _field(blob, "train_rmse", (int, float))
    est.fit_seconds_, est.device_ = _field(blob, "fit_seconds", (int, float)), _field(blob, "device", str)
    est.sessions_ = _restore_sessions(blob, n_users)
    est.model_valid_rmse_ = _field(blob, "model_valid_rmse", (int, float)) if "model_valid_rmse" in blob \
        else est.valid_rmse_
    return est
