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

import contextlib
import importlib
import inspect
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xlcollab.core import blend, bmf, data, distributed, evaluate, fused, modelfile, sessions, stream, svdpp, updates
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
Codes = stream.Codes
GRADIENT_MODELS = ("dotbias", "dot", "nn")  # the models that stream from disk and train across processes


class CollabFit:
    """Collaborative filtering fitted by gradient descent; flags of `xlcollab fit` map one-to-one to these settings.

    Attributes after fit
    --------------------
    model_ : nn.Module                    the fitted model (eval mode).
    settings_ : dict                      the settings as checked (wd_bias, wd_mode and y_range resolved).
    trace_ : list of dict                 per epoch: epoch, train_rmse (over the epoch's batches, each taken
                                          before its step, like fastai's train loss; the data term only),
                                          valid_rmse (after the epoch), lr (of its last step), seconds.
    valid_rmse_, train_rmse_ : float      the last epoch's (valid: NaN when valid_pct is 0; with session effects,
                                          the validation RMSE with them; the trace's rows are without).
    sessions_ : core.sessions.Sessions    the sittings of the training ratings and their biases (None: no
                                          timestamps, session_gap 0, or a fit streamed from disk).
    model_valid_rmse_ : float             the validation RMSE of the model alone, without session effects.
    valid_scores_ : dict                  rmse, mae, precision, recall, ndcg (@10, relevant >= 4) on the validation
                                          set (core.evaluate.scores); empty when valid_pct is 0.
    fit_seconds_ : float                  building the model + the loop + per-epoch validation; not reading or
                                          encoding the data, nor torch's one-time import of torch._dynamo.
    device_ : str                         where it ran; threads_: torch threads it ran on (CPU); fused_: whether
                                          the fused Triton step trained it (core.fused).
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
                 clip: bool = FIT["clip"].default, session_gap: float = FIT["session_gap"].default,
                 session_shrink: float = FIT["session_shrink"].default, threads: int | None = FIT["threads"].default,
                 progress: bool | None = FIT["progress"].default, fused: bool | None = FIT["fused"].default,
                 memory_budget: str | int | None = FIT["memory_budget"].default,
                 distributed: bool = FIT["distributed"].default):
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
        self.session_gap = session_gap
        self.session_shrink = session_shrink
        self.threads = threads
        self.progress = progress
        self.fused = fused
        self.memory_budget = memory_budget
        self.distributed = distributed

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

        callback, if given, receives each trace row as soon as its epoch ends. A ratings file that would take more
        than memory_budget in memory streams from disk (core.stream); with distributed, this process joins the
        torchrun run (core.distributed) and trains on its share of every batch.
        """
        s = check_fit(self.get_params())  # bad settings fail before the data is read
        if (s["distributed"] or s["memory_budget"]) and s["model"] not in GRADIENT_MODELS:
            raise SettingsError(f"memory_budget and distributed train the gradient models ({', '.join(GRADIENT_MODELS)}),"
                                f" not {s['model']}")
        if s["distributed"]:
            distributed.join(s["device"])
        if stream.needs_streaming(ratings, s["memory_budget"]):
            return self._fit_streamed(ratings, s, callback)
        if not isinstance(ratings, data.Ratings):
            ratings = data.load_ratings(ratings)
        enc = data.encode(ratings)
        n = len(enc.ratings)
        train_idx, valid_idx = data.split_indices(n, s["valid_pct"], s["seed"])
        if len(train_idx) == 0:
            raise DataError(f"{ratings.source}: no ratings left to train on ({n} ratings, valid_pct {s['valid_pct']})")
        device = distributed.group().device if s["distributed"] else pick_device(s["device"], len(train_idx))
        self.user_ids_, self.item_ids_ = np.asarray(enc.user_ids), np.asarray(enc.item_ids)
        self.titles_ = ratings.titles
        self.n_ratings_ = n
        self._index_seen(enc)

        def on(idx: np.ndarray) -> Codes:
            return (torch.as_tensor(enc.users[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.items[idx]).to(device=device, dtype=torch.long),
                    torch.as_tensor(enc.ratings[idx]).to(device=device, dtype=torch.float32))

        times = None if enc.times is None else (enc.times[train_idx], enc.times[valid_idx])
        return self.fit_tensors(on(train_idx), on(valid_idx), len(enc.user_ids), len(enc.item_ids), callback=callback,
                                times=times)

    def _fit_streamed(self, path: Any, s: dict[str, Any], callback: Callable[[dict[str, Any]], None] | None
                      ) -> CollabFit:
        """fit() for a file larger than the memory budget: spilled to disk in split order, streamed by chunks."""
        with stream.spilled(path, s) as sp:
            self.user_ids_, self.item_ids_, self.titles_ = sp.user_ids, sp.item_ids, sp.titles
            self.seen_indptr_, self.seen_items_, self.item_counts_ = sp.seen_indptr, sp.seen_items, sp.item_counts
            self.n_ratings_ = sp.n_train + sp.n_valid
            device = distributed.group().device if s["distributed"] else pick_device(s["device"], sp.n_train)
            valid = (lambda: stream.chunks(sp, "valid", device)) if sp.n_valid else None
            self._fit(s, sp, valid, n_users=len(sp.user_ids), n_items=len(sp.item_ids), device=device,
                      rating_range=sp.rating_range, mean=sp.train_mean, callback=callback)
        self.sessions_, self.model_valid_rmse_ = None, self.valid_rmse_  # streamed chunks carry no timestamps
        self.valid_scores_ = {"rmse": self.valid_rmse_} if sp.n_valid else {}  # the rest needs the set in memory
        return self

    def _index_seen(self, enc: data.Encoded) -> None:
        """Which items each user rated (CSR: seen_indptr_, seen_items_) and each item's rating count."""
        order = np.argsort(enc.users, kind="stable")
        self.seen_items_ = enc.items[order].astype(np.int32)
        self.seen_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(enc.users, minlength=len(enc.user_ids)))])
        self.item_counts_ = np.bincount(enc.items, minlength=len(enc.item_ids))

    def fit_tensors(self, train_codes: Codes, valid_codes: Codes | None, n_users: int, n_items: int, *,
                    callback: Callable[[dict[str, Any]], None] | None = None,
                    times: tuple[np.ndarray, np.ndarray] | None = None) -> CollabFit:
        """Fit on code tensors already on one device, no reading, encoding or splitting (`fit` ends here; the
        benchmark's synthetic data starts here): model, optimizer, the training loop, one trace row per epoch;
        then, given times (seconds of the training and validation ratings), the session effects (core.sessions)."""
        s = check_fit(self.get_params())
        tr = train_codes[2]
        valid = valid_codes if valid_codes is not None and len(valid_codes[2]) else None
        self._fit(s, train_codes, valid, n_users=n_users, n_items=n_items, device=tr.device,
                  rating_range=(float(tr.min()), float(tr.max())), mean=float(tr.mean()), callback=callback)
        self.sessions_ = None
        if times is not None and s["session_gap"] > 0:
            start = time.perf_counter()
            residuals = (train_codes[2] - self.predict_codes(*train_codes[:2])).cpu().numpy()
            self.sessions_ = sessions.fit(train_codes[0].cpu().numpy(), times[0], residuals,
                                          gap=s["session_gap"] * 60, shrink=s["session_shrink"])
            self.fit_seconds_ += time.perf_counter() - start
        self.valid_scores_ = {} if valid is None else evaluate.scores(
            *valid[:2], valid[2], self.predict_codes(*valid[:2], times=None if times is None else times[1]))
        self.model_valid_rmse_ = self.valid_rmse_
        if valid is not None and self.sessions_ is not None:
            self.valid_rmse_ = self.valid_scores_["rmse"]
        return self

    def _fit(self, s: dict[str, Any], train_data: Codes | stream.Spilled, valid: Codes | Callable[[], Any] | None, *,
             n_users: int, n_items: int, device: torch.device, rating_range: tuple[float, float], mean: float,
             callback: Callable[[dict[str, Any]], None] | None) -> None:
        """The model of s["model"] fitted on training codes in memory or spilled on disk; valid: codes in memory, a
        callable giving them a chunk at a time from disk, or None."""
        n_train = train_data.n_train if isinstance(train_data, stream.Spilled) else len(train_data[2])
        s["epochs"] = fit_epochs(s, n_train)  # None: the gradient models' rule of the training set's size
        self.rating_range_ = rating_range
        s["y_range"] = resolve_y_range(s["y_range"], self.rating_range_)
        self.settings_, self.device_, self.fused_ = s, str(device), False
        threads = s["threads"] or (1 if device.type == "cpu" and n_train < PARALLEL_MIN_RATINGS else None)
        if not fused.chosen(s, device):  # torch.optim imports torch._dynamo on first use (1-5 s here): not timed
            with contextlib.suppress(ImportError):
                importlib.import_module("torch._dynamo")
        start = time.perf_counter()
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        leader = not s["distributed"] or distributed.group().leader
        with torch_threads(threads), torch.random.fork_rng(devices=devices):
            torch.manual_seed(s["seed"])
            self.trace_ = []

            def record(row: dict[str, Any]) -> None:
                self.trace_.append(row)
                if callback is not None and leader:
                    callback(row)

            if s["model"] == "bmf":  # sampled, not descended: core.bmf
                self.model_ = bmf.fit(s, train_data, valid, n_users, n_items, record)
                s["kept_factors"] = self.model_.u_weight.weight.shape[1]
            elif s["model"] == "blend":  # members fitted by their own CollabFit, weights on a probe part
                def member(name: str, **own: Any) -> CollabFit:
                    return CollabFit(model=name, seed=s["seed"], threads=s["threads"], clip=s["clip"],
                                     valid_pct=0.0, progress=False, **own)
                self.model_, s["members"] = blend.fit(s, train_data, valid, n_users, n_items, member, record)
            elif s["model"] == "svdpp":  # trained with the implicit sum, kept folded into the user factors
                self.model_ = svdpp.build(s, train_data, n_users, n_items, mean).to(device)
                self._descend(s, train_data, valid, record)
                self.model_ = self.model_.folded()
            else:
                self.model_ = build_model(s, n_users, n_items, mean).to(device)
                self._descend(s, train_data, valid, record)
            self.threads_ = threads or torch.get_num_threads()
        self.model_.eval()
        self.valid_rmse_ = self.trace_[-1]["valid_rmse"]
        self.train_rmse_ = self.trace_[-1]["train_rmse"]
        self.fit_seconds_ = time.perf_counter() - start

    def _descend(self, s: dict[str, Any], train_data: Codes | stream.Spilled, valid: Codes | Callable[[], Any] | None,
                 record: Callable[[dict[str, Any]], None]) -> None:
        """Gradient descent on model_ in core.train's loop, one trace row per epoch: batches from memory or disk
        (chunked by a memory budget), the fused step or torch.optim, shares of each batch across processes."""
        model, group = self.model_, distributed.group() if s["distributed"] else None
        device = next(model.parameters()).device
        batches, steps = stream.epochs(train_data, s["batch_size"], s["seed"], device, s["memory_budget"])
        update, objective = updates.update_and_objective(s, model, group)
        self.fused_ = isinstance(update, fused.FusedDotBias)
        chunks = valid if callable(valid) else (lambda: [valid])

        def on_epoch(row: dict[str, Any]) -> None:
            record({"epoch": row["epoch"], "train_rmse": math.sqrt(row["loss"]),
                    "valid_rmse": row.get("valid_rmse", math.nan), "lr": row["lr"], "seconds": row["seconds"]})

        model.train()
        train(update, objective, s["epochs"], batches=batches if group is None else distributed.shares(batches, group),
              lr_at=lr_schedule(s["schedule"], s["lr"], s["epochs"], steps, s["cycle_len"], s["cycle_mult"]),
              evaluate=None if valid is None else lambda: {"valid_rmse": self._rmse_on(chunks())},
              on_epoch=on_epoch, progress=s["progress"] if group is None or group.leader else False, lr_hint=s["lr"],
              reduce_total=None if group is None else distributed.sum_total)

    # -- predictions -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_codes(self, users: Tensor, items: Tensor, times: Any = None) -> Tensor:
        """Predictions for code tensors (on the model's device), in eval mode, plus the session effects of the
        ratings' times (seconds) when given and fitted, clipped if `clip`."""
        model = self.model_
        was_training = model.training
        model.eval()
        try:
            out = torch.cat([model(users[k:k + EVAL_CHUNK], items[k:k + EVAL_CHUNK])
                             for k in range(0, len(users), EVAL_CHUNK)]) if len(users) else torch.zeros(0)
        finally:
            model.train(was_training)
        if times is not None and getattr(self, "sessions_", None) is not None:
            out = out + torch.as_tensor(self.sessions_.shift(users.cpu().numpy(), np.asarray(times)), device=out.device)
        if self.settings_["clip"]:
            out = out.clamp(*self.rating_range_)
        return out

    def _rmse_on(self, chunks: Any) -> float:
        """RMSE over (users, items, ratings) chunks: one chunk (in memory) is its mean, as ever; several are summed."""
        parts = [((self.predict_codes(u, i) - r).pow(2), len(r)) for u, i, r in chunks]
        if len(parts) == 1:
            return math.sqrt(float(parts[0][0].mean()))
        return math.sqrt(sum(float(sq.sum(dtype=torch.float64)) for sq, _ in parts) / sum(n for _, n in parts))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SettingsError("this CollabFit is not fitted yet: call fit(ratings) or CollabFit.load(path)")

    def user_codes(self, users: Any) -> np.ndarray:
        """Codes of original user ids; DataError names the first unknown one."""
        return data.codes_of(self.user_ids_, users, "user")

    def item_codes(self, items: Any) -> np.ndarray:
        """Codes of original movie ids; DataError names the first unknown one."""
        return data.codes_of(self.item_ids_, items, "movie")

    def predict(self, users: Any, items: Any, times: Any = None) -> np.ndarray:
        """Predicted ratings for pairs of original user and movie ids (arrays of equal length, or scalars); with
        times (seconds since 1970, one per pair), each plus the session effect of its sitting."""
        self._check_fitted()
        u, i = np.atleast_1d(self.user_codes(users)), np.atleast_1d(self.item_codes(items))
        if u.shape != i.shape:
            raise DataError(f"predict needs as many users as movies, got {len(u)} users and {len(i)} movies")
        dev = next(self.model_.parameters()).device
        t = None if times is None else np.atleast_1d(np.asarray(times, dtype=np.int64))
        if t is not None and t.shape != u.shape:
            raise DataError(f"predict needs one time per pair, got {len(t)} times for {len(u)} pairs")
        return self.predict_codes(torch.as_tensor(u, device=dev), torch.as_tensor(i, device=dev), t).cpu().numpy()

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


def fit_predict(**params: Any) -> evaluate.FitPredict:
    """A FitPredict of CollabFit with these settings (valid_pct 0: the fold's training part is all it sees)."""
    try:  # torch.optim's first use imports torch._dynamo (seconds): not part of any fold's fit time
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

    def fit_predict(train: Codes, users: Tensor, items: Tensor, n_users: int, n_items: int, *,
                    times: tuple[np.ndarray, np.ndarray] | None = None) -> Tensor:
        est = CollabFit(**{"progress": False, **params, "valid_pct": 0.0}).fit_tensors(train, None, n_users, n_items,
                                                                                       times=times)
        return est.predict_codes(users, items, None if times is None else times[1])
    return fit_predict
