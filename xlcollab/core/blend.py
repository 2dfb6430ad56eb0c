"""A blend of complementary models: Bayesian MF (core.bmf), SVD++-style implicit feedback (core.svdpp) and a loosely
regularised biased dot product.

Their errors differ (a posterior mean of a linear model; descended models in a sigmoid range, one knowing which
movies each user rated), so a weighted sum beats each. The weights are fitted honestly: each member is fitted on 90 % of
the training ratings and predicts the other 10 % (the probe); least squares on the probe gives the intercept and
the weights; then each member is fitted again on all the training ratings. The result is one module that predicts,
saves, loads, recommends and explains like the others.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# (model, settings) of each member: chosen on an inner split of ml-latest-small's training part (README); the
# loosely regularised dotbias adds what the other two miss (cross-fitted RMSE 0.8457 vs 0.8473 without it)
MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (("bmf", {}), ("svdpp", {}),
                                                  ("dotbias", {"n_factors": 128, "wd": 0.05}))
PROBE_PCT = 0.1
Codes = tuple[Tensor, Tensor, Tensor]


class Blend(nn.Module):
    """prediction = w0 + sum_m w_m * member_m(users, items); weights = (w0, w_1, ..., w_M)."""

    def __init__(self, members: list[nn.Module], weights: Tensor):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32).clone())

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        out = self.weights[0] + sum(w * m(users, items) for w, m in zip(self.weights[1:], self.members))
        return out

    @property
    def item_factors(self) -> Tensor:
        """The members' movie factors side by side, each scaled by the square root of its weight (for cosines)."""
        return torch.cat([m.item_factors * w.abs().sqrt() for w, m in zip(self.weights[1:], self.members)], 1)

    @property
    def item_bias(self) -> Tensor:
        """The weighted sum of the members' movie biases (a sigmoid member's on its logit scale)."""
        return sum(w * m.item_bias for w, m in zip(self.weights[1:], self.members))


def probe_weights(preds: list[Tensor], truth: Tensor) -> Tensor:
    """Least-squares (intercept, weight per member) of the probe ratings on the members' probe predictions."""
    x = torch.stack([torch.ones_like(truth, dtype=torch.float64)] + [p.double() for p in preds], 1)
    return torch.linalg.lstsq(x.cpu(), truth.double().cpu().unsqueeze(1)).solution.squeeze(1)


def fit(s: dict[str, Any], train: Codes, valid: Codes | None, n_users: int, n_items: int,
        make_member: Callable[..., Any], record: Callable[[dict[str, Any]], None]) -> tuple[Blend, list[dict]]:
    """CollabFit's blend for checked settings s: make_member(model, **settings) gives an unfitted estimator with s's
    common settings; returns the blend and the members' settings (for saving). One trace row per member and the
    blend."""
    n = len(train[2])
    perm = torch.as_tensor(np.random.default_rng(s["seed"]).permutation(n), device=train[2].device)
    cut = n - max(1, int(n * PROBE_PCT))
    fit_part, probe = tuple(c[perm[:cut]] for c in train), tuple(c[perm[cut:]] for c in train)
    start = time.perf_counter()
    preds = [make_member(name, **own).fit_tensors(fit_part, None, n_users, n_items).predict_codes(*probe[:2])
             for name, own in MEMBERS]
    weights = probe_weights(preds, probe[2])
    record({"epoch": 0, "train_rmse": math.nan, "valid_rmse": math.nan, "lr": math.nan,
            "probe_rmse": _rmse(weights[0] + sum(w * p.double() for w, p in zip(weights[1:], preds)), probe[2]),
            "seconds": time.perf_counter() - start})
    members, settings = [], []
    for k, (name, own) in enumerate(MEMBERS, 1):
        est = make_member(name, **own).fit_tensors(train, valid, n_users, n_items)
        members.append(est.model_)
        settings.append(est.settings_)
        record({**est.trace_[-1], "epoch": k, "member": name})
    model = Blend(members, weights.float()).eval()
    clip = _clip if s["clip"] else (lambda pred, like: pred)
    with torch.no_grad():
        train_rmse = _rmse(clip(model(*train[:2]), train[2]), train[2])
        valid_rmse = math.nan if valid is None else _rmse(clip(model(*valid[:2]), train[2]), valid[2])
    record({"epoch": len(MEMBERS) + 1, "train_rmse": train_rmse, "valid_rmse": valid_rmse, "lr": math.nan,
            "seconds": time.perf_counter() - start})
    return model, settings


def _clip(pred: Tensor, like: Tensor) -> Tensor:
    return pred.clamp(float(like.min()), float(like.max()))


def _rmse(pred: Tensor, truth: Tensor) -> float:
    return math.sqrt(float((pred.double() - truth.double()).pow(2).mean()))
