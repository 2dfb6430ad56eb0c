"""The training loop as a scikit-learn-style estimator: settings in __init__, `fit` returns self, `predict` is pure.

`CollabFit(...).fit(ratings)` encodes the ratings, splits off a seeded validation set (the fast.ai lesson
protocol), and minimises the mean squared error of one of `models.MODELS` with a torch.optim optimizer,
full-batch (what Excel Solver does) or in shuffled minibatches, recording one trace row per epoch.

Weight decay, `wd_mode`:
  "l2"        loss += mean over the batch's ratings of wd * (squared factor rows they use)
              + wd_bias * (squared bias rows they use)  (Funk-SVD / Surprise style: a movie is pulled
              towards 0 in proportion to its ratings);
  "decoupled" every step first shrinks the weights, w <- w - lr * wd * w (wd_bias for the biases; AdamW's
              rule: torch.optim.AdamW for "adamw", Adam(decoupled_weight_decay=True) for "adam", the same
              line by hand before torch.optim.SGD's step for "sgd"/"momentum").
  None        "decoupled" for optimizer "adamw", "l2" for the others.
"""
from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from xlcollab.core import data
from xlcollab.core.device import CUDA_MIN_RATINGS, pick_device, torch_threads  # noqa: F401  (part of fit's API)
from xlcollab.errors import DataError, DivergedError, SettingsError
from xlcollab.core.models import MODELS, logit_range
from xlcollab.core.train import one_cycle, schedule_lr  # noqa: F401  (one_cycle: part of fit's API)
from xlcollab.core.train import train as train_loop

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("one-cycle", "annealed", "constant")
WD_MODES = ("l2", "decoupled")
# threads=None runs CPU fits under this many training ratings on one intra-op thread: their tensors are too
# small to split, and with other processes on the cores OpenMP's waiting threads made 2 threads 5x slower
# than 1 on the 2-core build machine (ml-latest-small defaults: 24 s vs 5 s at load average 3).
PARALLEL_MIN_RATINGS = 1_000_000
EVAL_CHUNK = 1 << 20
FORMAT = "xlcollab-fit/1"


def resolve_y_range(y_range: Any, rating_range: tuple[float, float]) -> tuple[float, float] | None:
    """"auto": fastai's (0, 5.5) for MovieLens scales, else the data's range widened by a ninth each side."""
    if y_range == "auto":
        lo, hi = rating_range
        pad = (hi - lo) / 9 or 0.5
        return (0.0, 5.5) if 0.0 <= lo and hi <= 5.5 else (lo - pad, hi + pad)
    return None if y_range is None else (float(y_range[0]), float(y_range[1]))


class DecoupledSGD:
    """torch.optim.SGD with AdamW's decoupled decay: w <- w - lr * wd * w after the gradient, before SGD's step."""

    def __init__(self, sgd: torch.optim.SGD) -> None:
        self.sgd, self.param_groups = sgd, sgd.param_groups

    def zero_grad(self) -> None:
        self.sgd.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], Tensor]) -> Tensor:
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            for g in self.param_groups:
                if g["decoupled_wd"]:
                    torch._foreach_mul_(g["params"], 1 - g["lr"] * g["decoupled_wd"])
        self.sgd.step()
        return loss


class CollabFit:
    """Collaborative filtering fitted by gradient descent; flags of `xlcollab fit` map one-to-one to these settings.

    Parameters
    ----------
    model : "dotbias" | "dot" | "nn"      EmbeddingDotBias, EmbeddingDot or EmbeddingNN.
    n_factors : int                       factors per user and movie (the net: both embedding sizes).
    epochs : int                          passes over the training ratings.
    lr : float                            peak learning rate.
    wd : float                            weight decay of the factors (see wd_mode).
    wd_bias : float | None                weight decay of the user and movie biases; None: wd.
    wd_mode : "l2" | "decoupled" | None   where the decay goes; None: decoupled for adamw, l2 otherwise.
    optimizer : "adamw" | "adam" | "momentum" | "sgd"   torch.optim.AdamW / Adam / SGD(momentum) / SGD.
    batch_size : int | None               ratings per step; None = full batch (one step per epoch, like Solver).
    schedule : "one-cycle" | "annealed" | "constant"   learning-rate schedule over the run.
    device : "auto" | "cpu" | "cuda"      see pick_device.
    valid_pct : float                     share of ratings held out for validation (0 <= valid_pct < 1).
    seed : int                            split, start values and shuffling.
    y_range : (low, high) | None | "auto" sigmoid output range of dotbias/nn; "auto": fastai's (0, 5.5) when
                                          every training rating lies in it (MovieLens), else the ratings' own
                                          range widened by a ninth of its span at each end (as 0.5-5 -> 0-5.5).
    n_hidden : int                        hidden units of the net.
    momentum : float                      momentum of "momentum", beta1 of adam/adamw.
    beta2 : float                         beta2 of adam/adamw (fastai's 0.99 rather than torch's 0.999).
    clip : bool                           clip predictions to the training ratings' range (like Surprise).
    threads : int | None                  torch intra-op threads during the fit; None: 1 for small CPU fits
                                          (see PARALLEL_MIN_RATINGS), else torch's setting.
    progress : bool | None                tqdm bar over epochs; None: only when stderr is a terminal.

    Attributes after fit
    --------------------
    model_ : nn.Module                    the fitted model (eval mode).
    trace_ : list of dict                 per epoch: epoch, train_rmse (over the epoch's batches, each taken
                                          before its step, like fastai's train loss; the data term only),
                                          valid_rmse (after the epoch), lr (of its last step), seconds.
    valid_rmse_, train_rmse_ : float      the last epoch's (valid: NaN when valid_pct is 0).
    fit_seconds_ : float                  building the model + the loop + per-epoch validation; not reading or
                                          encoding the data, nor torch's one-time import of torch._dynamo.
    device_ : str                         where it ran; threads_: torch threads it ran on (CPU).
    user_ids_, item_ids_, titles_         original ids of the codes, movie titles (or None).
    """

    def __init__(self, model: str = "dotbias", n_factors: int = 64, epochs: int = 7, lr: float = 0.005,
                 wd: float = 0.1, wd_bias: float | None = 0.01, wd_mode: str | None = None, optimizer: str = "adam",
                 batch_size: int | None = 1024, schedule: str = "annealed", device: str = "auto",
                 valid_pct: float = 0.2, seed: int = 42, y_range: tuple[float, float] | str | None = "auto",
                 n_hidden: int = 10, momentum: float = 0.9, beta2: float = 0.99, clip: bool = True,
                 threads: int | None = None,
                 progress: bool | None = None):
        self.model = model
        self.n_factors = n_factors
        self.epochs = epochs
        self.lr = lr
        self.wd = wd
        self.wd_bias = wd_bias
        self.wd_mode = wd_mode
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.schedule = schedule
        self.device = device
        self.valid_pct = valid_pct
        self.seed = seed
        self.y_range = y_range
        self.n_hidden = n_hidden
        self.momentum = momentum
        self.beta2 = beta2
        self.clip = clip
        self.threads = threads
        self.progress = progress

    # -- scikit-learn's parameter protocol -------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's settings, by name."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def set_params(self, **params: Any) -> CollabFit:
        """Change settings (checked at the next fit)."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise SettingsError(f"unknown setting '{name}'")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"CollabFit({changed})"

    # -- settings ------------------------------------------------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        """The settings after checking each one; SettingsError quotes the bad value."""
        s = self.get_params()

        def bad(name: str, need: str) -> SettingsError:
            return SettingsError(f"{name} must be {need}, got {s[name]!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)

        if s["model"] not in MODELS:
            raise bad("model", f"one of {', '.join(MODELS)}")
        for name in ("n_factors", "epochs", "n_hidden"):
            if not is_int(s[name]) or s[name] < 1:
                raise bad(name, "a positive integer")
        if not is_num(s["lr"]) or s["lr"] <= 0:
            raise bad("lr", "a positive number")
        if not is_num(s["wd"]) or s["wd"] < 0:
            raise bad("wd", "a number >= 0")
        if s["wd_bias"] is not None and (not is_num(s["wd_bias"]) or s["wd_bias"] < 0):
            raise bad("wd_bias", "a number >= 0 or None (same as wd)")
        if s["wd_bias"] is None:
            s["wd_bias"] = s["wd"]
        if s["optimizer"] not in OPTIMIZERS:
            raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
        if s["wd_mode"] is None:
            s["wd_mode"] = "decoupled" if s["optimizer"] == "adamw" else "l2"
        if s["wd_mode"] not in WD_MODES:
            raise bad("wd_mode", f"one of {', '.join(WD_MODES)} (or None)")
        if s["batch_size"] is not None and (not is_int(s["batch_size"]) or s["batch_size"] < 1):
            raise bad("batch_size", "a positive integer or None (full batch)")
        if s["schedule"] not in SCHEDULES:
            raise bad("schedule", f"one of {', '.join(SCHEDULES)}")
        if not isinstance(s["device"], str) or not (s["device"] in ("auto", "cpu") or s["device"].startswith("cuda")):
            raise bad("device", "auto, cpu or cuda")
        if not is_num(s["valid_pct"]) or not 0 <= s["valid_pct"] < 1:
            raise bad("valid_pct", "a number in [0, 1)")
        if not is_int(s["seed"]):
            raise bad("seed", "an integer")
        yr = s["y_range"]
        pair = isinstance(yr, (tuple, list)) and len(yr) == 2 and all(is_num(v) for v in yr) and yr[0] < yr[1]
        if yr is not None and yr != "auto" and not pair:
            raise bad("y_range", "'auto', None or (low, high) with low < high")
        if s["threads"] is not None and (not is_int(s["threads"]) or s["threads"] < 1):
            raise bad("threads", "a positive integer or None")
        for name in ("momentum", "beta2"):
            if not is_num(s[name]) or not 0 <= s[name] < 1:
                raise bad(name, "a number in [0, 1)")
        return s

    # -- building blocks -------------------------------------------------------------------------------
    def _build_model(self, s: dict[str, Any], n_users: int, n_items: int, mean: float) -> nn.Module:
        cls = MODELS[s["model"]]
        if s["model"] == "dot":
            return cls.from_counts(n_users, n_items, s["n_factors"])
        yr = s["y_range"]
        start = mean if yr is None else logit_range(mean, *yr)
        if s["model"] == "dotbias":
            return cls.from_counts(n_users, n_items, s["n_factors"], y_range=yr, global_bias=start)
        model = cls.from_counts(n_users, n_items, s["n_factors"], n_hidden=s["n_hidden"], y_range=yr)
        with torch.no_grad():
            model.layers[-1].bias.fill_(start)
        return model

    @staticmethod
    def param_groups(model: nn.Module) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(factors, biases, free): factors and linear weights decay by wd, user/movie biases by wd_bias,
        the global bias and the net's linear biases not at all."""
        factors, biases, free = [], [], []
        for name, p in model.named_parameters():
            if name in ("u_bias.weight", "i_bias.weight"):
                biases.append(p)
            elif name == "global_bias" or name.endswith(".bias"):
                free.append(p)
            else:
                factors.append(p)
        return factors, biases, free

    @staticmethod
    def make_optimizer(s: dict[str, Any], model: nn.Module) -> Any:
        """The torch.optim optimizer for checked settings s; with decoupled decay, each group gets its own rate."""
        factors, biases, free = CollabFit.param_groups(model)
        decoupled = s["wd_mode"] == "decoupled"
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in model.parameters())
        groups = [{"params": factors, "weight_decay": s["wd"] if decoupled else 0.0},
                  {"params": biases, "weight_decay": s["wd_bias"] if decoupled else 0.0},
                  {"params": free, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        name, lr, betas = s["optimizer"], s["lr"], (s["momentum"], s["beta2"])
        if name == "adamw":
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
        if name == "adam":
            return torch.optim.Adam(groups, lr=lr, betas=betas, decoupled_weight_decay=True, fused=fused)
        for g in groups:  # SGD's own weight_decay is the coupled kind: kept aside for DecoupledSGD to apply
            g["decoupled_wd"] = g.pop("weight_decay")
        sgd = torch.optim.SGD(groups, lr=lr, momentum=s["momentum"] if name == "momentum" else 0.0, fused=fused)
        return DecoupledSGD(sgd) if decoupled else sgd

    # -- fit -----------------------------------------------------------------------------------------------
    def fit(self, ratings: Any = None, *, callback: Callable[[dict[str, Any]], None] | None = None) -> CollabFit:
        """Fit on ratings (a data.Ratings, a DataFrame with user/item/rating, a path, or None = embedded data).

        callback, if given, receives each trace row as soon as its epoch ends.
        """
        s = self._checked()
        try:  # torch.optim imports torch._dynamo on first use (1-5 s here): keep that out of fit_seconds_
            import torch._dynamo  # noqa: F401
        except ImportError:
            pass
        if not isinstance(ratings, data.Ratings):
            ratings = data.load_ratings(ratings)
        enc = data.encode(ratings)
        n = len(enc.ratings)
        train_idx, valid_idx = data.split_indices(n, s["valid_pct"], s["seed"])
        if len(train_idx) == 0:
            raise DataError(f"{ratings.source}: no ratings left to train on ({n} ratings, valid_pct {s['valid_pct']})")
        device = pick_device(s["device"], len(train_idx))
        self.settings_ = s
        self.device_ = str(device)
        self.user_ids_, self.item_ids_ = np.asarray(enc.user_ids), np.asarray(enc.item_ids)
        self.titles_ = ratings.titles
        self.n_ratings_ = n
        train_r = enc.ratings[train_idx]
        self.rating_range_ = (float(train_r.min()), float(train_r.max()))
        s["y_range"] = resolve_y_range(s["y_range"], self.rating_range_)
        self._index_seen(enc)

        def on(idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
            return (torch.as_tensor(enc.users[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.items[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.ratings[idx]).to(device=device, dtype=torch.float32))

        threads = s["threads"] or (1 if device.type == "cpu" and len(train_idx) < PARALLEL_MIN_RATINGS else None)
        with torch_threads(threads):
            self._fit_tensors(s, on(train_idx), on(valid_idx), len(enc.user_ids), len(enc.item_ids), device, callback)
        self.threads_ = threads or torch.get_num_threads()
        return self

    def _index_seen(self, enc: Any) -> None:
        """Which items each user rated (CSR: seen_indptr_, seen_items_) and each item's rating count."""
        order = np.argsort(enc.users, kind="stable")
        self.seen_items_ = enc.items[order].astype(np.int32)
        self.seen_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(enc.users, minlength=len(enc.user_ids)))])
        self.item_counts_ = np.bincount(enc.items, minlength=len(enc.item_ids))

    def _fit_tensors(self, s: dict[str, Any], train: tuple[Tensor, Tensor, Tensor],
                     valid: tuple[Tensor, Tensor, Tensor], n_users: int, n_items: int, device: torch.device,
                     callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Build the model and run the training loop on tensors already on `device`, one trace row per epoch."""
        tu, ti, tr = train
        n_train = len(tr)
        start = time.perf_counter()
        devices = []
        if device.type == "cuda":
            devices = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(s["seed"])
            model = self._build_model(s, n_users, n_items, float(tr.mean())).to(device)
            update = self.make_optimizer(s, model)
            gen = torch.Generator(device=device).manual_seed(s["seed"])  # shuffles where the data lives
            bs = n_train if s["batch_size"] is None else min(s["batch_size"], n_train)
            steps_per_epoch = math.ceil(n_train / bs)
            total = s["epochs"] * steps_per_epoch
            l2 = s["wd_mode"] == "l2" and (s["wd"] > 0 or s["wd_bias"] > 0)
            self.model_, self.trace_ = model, []

            def batches(epoch: int) -> Any:
                if bs == n_train:
                    return [(train, n_train)]
                perm = torch.randperm(n_train, generator=gen, device=device)
                return (((tu[idx], ti[idx], tr[idx]), len(idx))
                        for idx in (perm[b * bs:(b + 1) * bs] for b in range(steps_per_epoch)))

            def objective(batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
                u, i, r = batch
                if l2:
                    pred, pen = model.forward_penalty(u, i, s["wd"], s["wd_bias"])
                    mse = (pred - r).pow(2).mean()
                    return mse + pen, mse
                mse = (model(u, i) - r).pow(2).mean()
                return mse, mse

            def on_epoch(row: dict[str, Any]) -> None:
                row = {"epoch": row["epoch"], "train_rmse": math.sqrt(row["loss"]),
                       "valid_rmse": row.get("valid_rmse", math.nan), "lr": row["lr"], "seconds": row["seconds"]}
                self.trace_.append(row)
                if callback is not None:
                    callback(row)

            model.train()
            train_loop(update, objective, s["epochs"], batches=batches,
                       lr_at=lambda step: schedule_lr(s["schedule"], step / total, s["lr"]),
                       evaluate=(lambda: {"valid_rmse": self._rmse_on(*valid)}) if len(valid[2]) else None,
                       on_epoch=on_epoch, progress=s["progress"], lr_hint=s["lr"])
        model.eval()
        self.valid_rmse_ = self.trace_[-1]["valid_rmse"]
        self.train_rmse_ = self.trace_[-1]["train_rmse"]
        self.fit_seconds_ = time.perf_counter() - start

    # -- predictions -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _predict_codes(self, users: Tensor, items: Tensor) -> Tensor:
        """Predictions for code tensors (on the model's device), in eval mode, clipped if `clip`."""
        model = self.model_
        was_training = model.training
        model.eval()
        try:
            out = torch.cat([model(users[k:k + EVAL_CHUNK], items[k:k + EVAL_CHUNK])
                             for k in range(0, len(users), EVAL_CHUNK)]) if len(users) else torch.zeros(0)
        finally:
            model.train(was_training)
        if self.settings_["clip"]:
            out = out.clamp(*self.rating_range_)
        return out

    def _rmse_on(self, users: Tensor, items: Tensor, ratings: Tensor) -> float:
        if len(ratings) == 0:
            return float("nan")
        pred = self._predict_codes(users, items)
        return math.sqrt(float((pred - ratings).pow(2).mean()))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SettingsError("this CollabFit is not fitted yet: call fit(ratings) or CollabFit.load(path)")

    def user_codes(self, users: Any) -> np.ndarray:
        """Codes of original user ids; DataError names the first unknown one."""
        return _codes(self.user_ids_, users, "user")

    def item_codes(self, items: Any) -> np.ndarray:
        """Codes of original movie ids; DataError names the first unknown one."""
        return _codes(self.item_ids_, items, "movie")

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings for pairs of original user and movie ids (arrays of equal length, or scalars)."""
        self._check_fitted()
        u, i = np.atleast_1d(self.user_codes(users)), np.atleast_1d(self.item_codes(items))
        if u.shape != i.shape:
            raise DataError(f"predict needs as many users as movies, got {len(u)} users and {len(i)} movies")
        dev = next(self.model_.parameters()).device
        return self._predict_codes(torch.as_tensor(u, device=dev), torch.as_tensor(i, device=dev)).cpu().numpy()

    def seen(self, user_code: int) -> np.ndarray:
        """Codes of the movies user_code rated (in the whole data set, training and validation)."""
        return self.seen_items_[self.seen_indptr_[user_code]:self.seen_indptr_[user_code + 1]]

    def title(self, item_id: Any) -> str:
        """A movie's title, or its id as text when there are no titles."""
        if self.titles_ is not None and item_id in self.titles_.index:
            return str(self.titles_[item_id])
        return str(item_id)

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One file (torch.save): state dict, settings, id maps, titles, seen movies, trace."""
        self._check_fitted()
        path = Path(path)
        titles = None
        if self.titles_ is not None:
            titles = {"ids": self.titles_.index.tolist(), "titles": [str(t) for t in self.titles_.tolist()]}
        blob = {
            "format": FORMAT,
            "settings": self.settings_,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "n_users": len(self.user_ids_), "n_items": len(self.item_ids_),
            "user_ids": self.user_ids_.tolist(), "item_ids": self.item_ids_.tolist(), "titles": titles,
            "seen_indptr": torch.as_tensor(self.seen_indptr_), "seen_items": torch.as_tensor(self.seen_items_),
            "item_counts": torch.as_tensor(self.item_counts_),
            "rating_range": list(self.rating_range_), "n_ratings": self.n_ratings_,
            "trace": self.trace_, "valid_rmse": self.valid_rmse_, "train_rmse": self.train_rmse_,
            "fit_seconds": self.fit_seconds_, "device": self.device_,
        }
        try:
            torch.save(blob, path)
        except OSError as exc:
            raise DataError(f"cannot write model file {path}: {exc.strerror or exc}") from None
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> CollabFit:
        """A fitted CollabFit from a file written by save (weights_only: loading runs no code)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"model file {path} does not exist")
        try:
            blob = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # torch raises many kinds for a file that is not ours
            raise DataError(f"{path} is not an xlcollab model file ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise DataError(f"{path} is not an xlcollab model file (saved by `xlcollab fit --save`)")
        params = dict(blob["params"])
        if isinstance(params.get("y_range"), list):
            params["y_range"] = tuple(params["y_range"])
        est = cls(**params)
        s = dict(blob["settings"])
        s["y_range"] = None if s["y_range"] is None else tuple(s["y_range"])
        est.settings_ = s
        model = est._build_model(s, blob["n_users"], blob["n_items"], 3.0)
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


def _codes(ids: np.ndarray, wanted: Any, what: str) -> np.ndarray:
    """Positions of wanted ids in the sorted id array; DataError 'unknown user 999999' for the first miss."""
    scalar = np.ndim(wanted) == 0
    w = np.atleast_1d(np.asarray(wanted))
    if ids.dtype.kind in "iu" and w.dtype.kind in "UOSf":  # "42" or 42.0 typed for an integer id
        try:
            as_int = w.astype(np.float64)
            if np.all(as_int == np.round(as_int)):
                w = as_int.astype(ids.dtype)
        except (TypeError, ValueError):
            pass
    idx = pd.Index(ids).get_indexer(pd.Index(w))
    if (idx < 0).any():
        miss = w[np.flatnonzero(idx < 0)[0]]
        raise DataError(f"unknown {what} {miss!s}: not in the ratings this model was fitted on")
    return idx[0] if scalar else idx.astype(np.int64)
