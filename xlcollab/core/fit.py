"""Collaborative filtering as a scikit-learn-style estimator: settings in __init__, `fit` returns self, `predict`
is pure.

`CollabFit(...).fit(ratings)` encodes the ratings, splits off a seeded validation set (the fast.ai lesson
protocol), and minimises the mean squared error of one of `models.MODELS` with a torch.optim optimizer in
core.train's loop, full-batch (what Excel Solver does) or in shuffled minibatches, one trace row per epoch.
The settings, their defaults and their checks are `core.settings.FIT`; `save`/`load` are `core.modelfile`.

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

from xlcollab.core import blend, bmf, data, evaluate, modelfile, svdpp
from xlcollab.core.device import pick_device, torch_threads
from xlcollab.core.models import build_model
from xlcollab.core.settings import FIT, check_fit, fit_epochs, resolve_y_range
from xlcollab.core.train import lr_schedule, train
from xlcollab.errors import DataError, SettingsError

# threads=None runs CPU fits under this many training ratings on one intra-op thread: their tensors are too
# small to split, and with other processes on the cores OpenMP's waiting threads made 2 threads 5x slower
# than 1 on the 2-core build machine (ml-latest-small defaults: 24 s vs 5 s at load average 3).
PARALLEL_MIN_RATINGS = 1_000_000
EVAL_CHUNK = 1 << 20
Codes = tuple[Tensor, Tensor, Tensor]  # user codes, item codes, ratings (float32), on one device


class CollabFit:
    """Collaborative filtering fitted by gradient descent; flags of `xlcollab fit` map one-to-one to these settings.

    Attributes after fit
    --------------------
    model_ : nn.Module                    the fitted model (eval mode).
    settings_ : dict                      the settings as checked (wd_bias, wd_mode and y_range resolved).
    trace_ : list of dict                 per epoch: epoch, train_rmse (over the epoch's batches, each taken
                                          before its step, like fastai's train loss; the data term only),
                                          valid_rmse (after the epoch), lr (of its last step), seconds.
    valid_rmse_, train_rmse_ : float      the last epoch's (valid: NaN when valid_pct is 0).
    valid_scores_ : dict                  rmse, mae, precision, recall, ndcg (@10, relevant >= 4) on the validation
                                          set (core.evaluate.scores); empty when valid_pct is 0.
    fit_seconds_ : float                  building the model + the loop + per-epoch validation; not reading or
                                          encoding the data, nor torch's one-time import of torch._dynamo.
    device_ : str                         where it ran; threads_: torch threads it ran on (CPU).
    rating_range_ : (low, high)           of the training ratings (predictions are clipped to it).
    user_ids_, item_ids_, titles_         original ids of the codes, movie titles (or None).

    Parameters (core.settings.FIT: default, check, help)
    ----------
    """

    def __init__(self, model: str = FIT["model"].default, n_factors: int = FIT["n_factors"].default,
                 epochs: int = FIT["epochs"].default, lr: float = FIT["lr"].default, wd: float = FIT["wd"].default,
                 wd_bias: float | None = FIT["wd_bias"].default, wd_mode: str | None = FIT["wd_mode"].default,
                 optimizer: str = FIT["optimizer"].default, batch_size: int | None = FIT["batch_size"].default,
                 schedule: str = FIT["schedule"].default, cycle_len: int = FIT["cycle_len"].default,
                 cycle_mult: int = FIT["cycle_mult"].default, device: str = FIT["device"].default,
                 valid_pct: float = FIT["valid_pct"].default, seed: int = FIT["seed"].default,
                 y_range: tuple[float, float] | str | None = FIT["y_range"].default,
                 hidden: tuple[int, ...] = FIT["hidden"].default, dropout: tuple[float, float] = FIT["dropout"].default,
                 user_factors: int | None = FIT["user_factors"].default,
                 item_factors: int | None = FIT["item_factors"].default, init: str = FIT["init"].default,
                 momentum: float = FIT["momentum"].default, beta2: float = FIT["beta2"].default,
                 clip: bool = FIT["clip"].default, threads: int | None = FIT["threads"].default,
                 progress: bool | None = FIT["progress"].default):
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
        self.cycle_len = cycle_len
        self.cycle_mult = cycle_mult
        self.device = device
        self.valid_pct = valid_pct
        self.seed = seed
        self.y_range = y_range
        self.hidden = hidden
        self.dropout = dropout
        self.user_factors = user_factors
        self.item_factors = item_factors
        self.init = init
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
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != FIT[k].default)
        return f"CollabFit({changed})"

    # -- fit -----------------------------------------------------------------------------------------------
    def fit(self, ratings: Any = None, *, callback: Callable[[dict[str, Any]], None] | None = None) -> CollabFit:
        """Fit on ratings (a data.Ratings, a DataFrame with user/item/rating, a path, or None = embedded data).

        callback, if given, receives each trace row as soon as its epoch ends.
        """
        s = check_fit(self.get_params())  # bad settings fail before the data is read
        if not isinstance(ratings, data.Ratings):
            ratings = data.load_ratings(ratings)
        enc = data.encode(ratings)
        n = len(enc.ratings)
        train_idx, valid_idx = data.split_indices(n, s["valid_pct"], s["seed"])
        if len(train_idx) == 0:
            raise DataError(f"{ratings.source}: no ratings left to train on ({n} ratings, valid_pct {s['valid_pct']})")
        device = pick_device(s["device"], len(train_idx))
        self.user_ids_, self.item_ids_ = np.asarray(enc.user_ids), np.asarray(enc.item_ids)
        self.titles_ = ratings.titles
        self.n_ratings_ = n
        self._index_seen(enc)

        def on(idx: np.ndarray) -> Codes:
            return (torch.as_tensor(enc.users[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.items[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.ratings[idx]).to(device=device, dtype=torch.float32))

        return self.fit_tensors(on(train_idx), on(valid_idx), len(enc.user_ids), len(enc.item_ids), callback=callback)

    def _index_seen(self, enc: data.Encoded) -> None:
        """Which items each user rated (CSR: seen_indptr_, seen_items_) and each item's rating count."""
        order = np.argsort(enc.users, kind="stable")
        self.seen_items_ = enc.items[order].astype(np.int32)
        self.seen_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(enc.users, minlength=len(enc.user_ids)))])
        self.item_counts_ = np.bincount(enc.items, minlength=len(enc.item_ids))

    def fit_tensors(self, train_codes: Codes, valid_codes: Codes | None, n_users: int, n_items: int, *,
                    callback: Callable[[dict[str, Any]], None] | None = None) -> CollabFit:
        """Fit on code tensors already on one device, no reading, encoding or splitting (`fit` ends here; the
        benchmark's synthetic data starts here): model, optimizer, the training loop, one trace row per epoch."""
        s = check_fit(self.get_params())
        tr = train_codes[2]
        s["epochs"] = fit_epochs(s, len(tr))  # None: the gradient models' rule of the training set's size
        valid = valid_codes if valid_codes is not None and len(valid_codes[2]) else None
        device = tr.device
        self.rating_range_ = (float(tr.min()), float(tr.max()))
        s["y_range"] = resolve_y_range(s["y_range"], self.rating_range_)
        self.settings_, self.device_ = s, str(device)
        threads = s["threads"] or (1 if device.type == "cpu" and len(tr) < PARALLEL_MIN_RATINGS else None)
        try:  # torch.optim imports torch._dynamo on first use (1-5 s here): keep that out of fit_seconds_
            import torch._dynamo  # noqa: F401
        except ImportError:
            pass
        start = time.perf_counter()
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch_threads(threads), torch.random.fork_rng(devices=devices):
            torch.manual_seed(s["seed"])
            self.trace_ = []

            def record(row: dict[str, Any]) -> None:
                self.trace_.append(row)
                if callback is not None:
                    callback(row)

            if s["model"] == "bmf":  # sampled, not descended: core.bmf
                self.model_ = bmf.fit(s, train_codes, valid, n_users, n_items, record)
                s["kept_factors"] = self.model_.u_weight.weight.shape[1]
            elif s["model"] == "blend":  # members fitted by their own CollabFit, weights on a probe part
                def member(name: str, **own: Any) -> CollabFit:
                    return CollabFit(model=name, seed=s["seed"], threads=s["threads"], clip=s["clip"],
                                     valid_pct=0.0, progress=False, **own)
                self.model_, s["members"] = blend.fit(s, train_codes, valid, n_users, n_items, member, record)
            elif s["model"] == "svdpp":  # trained with the implicit sum, kept folded into the user factors
                self.model_ = svdpp.build(s, train_codes, n_users, n_items, float(tr.mean())).to(device)
                self._descend(s, train_codes, valid, record)
                self.model_ = self.model_.folded()
            else:
                self.model_ = build_model(s, n_users, n_items, float(tr.mean())).to(device)
                self._descend(s, train_codes, valid, record)
            self.threads_ = threads or torch.get_num_threads()
        self.model_.eval()
        self.valid_rmse_ = self.trace_[-1]["valid_rmse"]
        self.train_rmse_ = self.trace_[-1]["train_rmse"]
        self.fit_seconds_ = time.perf_counter() - start
        self.valid_scores_ = {} if valid is None else evaluate.scores(*valid[:2], valid[2],
                                                                        self.predict_codes(*valid[:2]))
        return self

    def _descend(self, s: dict[str, Any], train_codes: Codes, valid: Codes | None,
                 record: Callable[[dict[str, Any]], None]) -> None:
        """Gradient descent on model_ in core.train's loop, one trace row per epoch."""
        model = self.model_
        batches, steps = shuffled_batches(train_codes, s["batch_size"], s["seed"])

        def on_epoch(row: dict[str, Any]) -> None:
            record({"epoch": row["epoch"], "train_rmse": math.sqrt(row["loss"]),
                    "valid_rmse": row.get("valid_rmse", math.nan), "lr": row["lr"], "seconds": row["seconds"]})

        model.train()
        train(torch_optimizer(s, model), mse_objective(model, s), s["epochs"], batches=batches,
              lr_at=lr_schedule(s["schedule"], s["lr"], s["epochs"], steps, s["cycle_len"], s["cycle_mult"]),
              evaluate=None if valid is None else lambda: {"valid_rmse": self._rmse_on(*valid)},
              on_epoch=on_epoch, progress=s["progress"], lr_hint=s["lr"])

    # -- predictions -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_codes(self, users: Tensor, items: Tensor) -> Tensor:
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
        return math.sqrt(float((self.predict_codes(users, items) - ratings).pow(2).mean()))

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
        return self.predict_codes(torch.as_tensor(u, device=dev), torch.as_tensor(i, device=dev)).cpu().numpy()

    def seen(self, user_code: int) -> np.ndarray:
        """Codes of the movies user_code rated (in the whole data set, training and validation)."""
        return self.seen_items_[self.seen_indptr_[user_code]:self.seen_indptr_[user_code + 1]]

    def title(self, item_id: Any) -> str:
        """A movie's title, or its id as text when there are no titles."""
        if self.titles_ is not None and item_id in self.titles_.index:
            return str(self.titles_[item_id])
        return str(item_id)

    # -- persistence (core.modelfile) --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One file (torch.save): state dict, settings, id maps, titles, seen movies, trace."""
        self._check_fitted()
        return modelfile.save(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> CollabFit:
        """A fitted CollabFit from a file written by save (weights_only: loading runs no code)."""
        return modelfile.load(cls, path, device)


CollabFit.__doc__ += "".join(f"\n    {name} : {s.help} (default {s.default!r})" for name, s in FIT.items()) + "\n"


def shuffled_batches(codes: Codes, batch_size: int | None, seed: int) -> tuple[Callable[[int], Any], int]:
    """(batches, steps per epoch) for the loop: each epoch a fresh seeded permutation cut into batch_size pieces
    (drawn where the data lives); None or a batch as large as the data: the full batch, unshuffled."""
    u, i, r = codes
    n = len(r)
    bs = n if batch_size is None else min(batch_size, n)
    steps = math.ceil(n / bs)
    gen = torch.Generator(device=r.device).manual_seed(seed)

    def batches(epoch: int) -> Any:
        if bs == n:
            return [(codes, n)]
        perm = torch.randperm(n, generator=gen, device=r.device)
        return (((u[idx], i[idx], r[idx]), len(idx)) for idx in (perm[b * bs:(b + 1) * bs] for b in range(steps)))
    return batches, steps


def mse_objective(model: nn.Module, s: dict[str, Any]) -> Callable[[Codes], tuple[Tensor, Tensor]]:
    """batch -> (loss, mean squared error): with wd_mode l2 the loss adds the penalty on the rows the batch uses."""
    l2 = s["wd_mode"] == "l2" and (s["wd"] > 0 or s["wd_bias"] > 0)

    def objective(batch: Codes) -> tuple[Tensor, Tensor]:
        u, i, r = batch
        if l2:
            pred, pen = model.forward_penalty(u, i, s["wd"], s["wd_bias"])
            mse = (pred - r).pow(2).mean()
            return mse + pen, mse
        mse = (model(u, i) - r).pow(2).mean()
        return mse, mse
    return objective


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


def torch_optimizer(s: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer | DecoupledSGD:
    """The torch.optim optimizer for checked settings s; with decoupled decay, each group gets its own rate."""
    factors, biases, free = param_groups(model)
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


def fit_predict(**params: Any) -> evaluate.FitPredict:
    """A FitPredict of CollabFit with these settings (valid_pct 0: the fold's training part is all it sees)."""
    try:  # torch.optim's first use imports torch._dynamo (seconds): not part of any fold's fit time
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

    def fit_predict(train: Codes, users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
        est = CollabFit(**{"progress": False, **params, "valid_pct": 0.0}).fit_tensors(train, None, n_users, n_items)
        return est.predict_codes(users, items)
    return fit_predict
