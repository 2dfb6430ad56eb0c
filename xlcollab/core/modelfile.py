"""A fitted CollabFit in one file and back: torch.save of plain data (weights, settings, id maps, titles, seen
movies, trace); loading uses torch.load(weights_only=True), so a model file can run no code."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xlcollab.core.models import build_model
from xlcollab.errors import DataError

FORMAT = "xlcollab-fit/1"


def save(est: Any, path: str | Path) -> Path:
    """Write the fitted CollabFit `est` to `path`; DataError when the file cannot be written."""
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
        "fit_seconds": est.fit_seconds_, "device": est.device_,
    }
    try:
        torch.save(blob, path)
    except OSError as exc:
        raise DataError(f"cannot write model file {path}: {exc.strerror or exc}") from None
    return path


def load(cls: type, path: str | Path, device: str = "cpu") -> Any:
    """A fitted `cls` (CollabFit) from a file `save` wrote; DataError for a missing file or one that is not ours."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file {path} does not exist")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not ours
        raise DataError(f"{path} is not an xlcollab model file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{path} is not an xlcollab model file (saved by `xlcollab fit --save`)")
    params: dict[str, Any] = dict(blob["params"])
    if isinstance(params.get("y_range"), list):
        params["y_range"] = tuple(params["y_range"])
    est = cls(**params)
    s = dict(blob["settings"])
    s["y_range"] = None if s["y_range"] is None else tuple(s["y_range"])
    est.settings_ = s
    model = build_model(s, blob["n_users"], blob["n_items"], 3.0)
    model.load_state_dict(blob["state_dict"])
    est.model_ = model.to(device).eval()
    est.user_ids_, est.item_ids_ = np.asarray(blob["user_ids"]), np.asarray(blob["item_ids"])
    t = blob["titles"]
    est.titles_ = None if t is None else pd.Series(t["titles"], index=t["ids"], dtype=object)
    est.seen_indptr_ = blob["seen_indptr"].numpy()
    est.seen_items_ = blob["seen_items"].numpy()
    est.item_counts_ = blob["item_counts"].numpy()
    est.rating_range_ = tuple(blob["rating_range"])
    est.n_ratings_ = blob["n_ratings"]
    est.trace_, est.valid_rmse_, est.train_rmse_ = blob["trace"], blob["valid_rmse"], blob["train_rmse"]
    est.fit_seconds_, est.device_ = blob["fit_seconds"], blob["device"]
    return est
