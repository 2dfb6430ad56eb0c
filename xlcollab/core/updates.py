"""How a fit takes its steps: the update and the objective that core.train's loop runs for the gradient models.

The plain path: torch.optim on the model (SGD's decoupled decay by hand in DecoupledSGD), the mean squared error
plus, with wd_mode "l2", the penalty on the rows a batch uses; across processes, the model in DistributedDataParallel
and each share's loss weighted (core.distributed). The fast path: the fused Triton step (core.fused), where chosen.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from xlcollab.core import distributed, fused, stream


def update_and_objective(s: dict[str, Any], model: nn.Module, group: distributed.Group | None
                         ) -> tuple[Any, Callable[[stream.Batch], tuple[Any, Tensor]]]:
    """(update, objective) for the loop: the fused Triton step where chosen, else torch.optim on the plain
    model (in DistributedDataParallel across processes, each share's loss weighted so that the gradients add
    up to the whole batch's)."""
    if fused.chosen(s, next(model.parameters()).device):
        step = fused.FusedDotBias(model, betas=(s["momentum"], s["beta2"]), wd=s["wd"], wd_bias=s["wd_bias"],
                                  wd_mode=s["wd_mode"], lr=s["lr"],
                                  reduce=None if group is None else distributed.all_sum)
        return step, step.objective
    if group is None:
        return torch_optimizer(s, model), mse_objective(model, s)
    return torch_optimizer(s, model), distributed.weighted(mse_objective(distributed.wrap(model, group), s), group)


def mse_objective(model: nn.Module, s: dict[str, Any]) -> Callable[[stream.Batch], tuple[Tensor, Tensor]]:
    """batch -> (loss, mean squared error): with wd_mode l2 the loss adds the penalty on the rows the batch uses."""
    l2 = s["wd_mode"] == "l2" and (s["wd"] > 0 or s["wd_bias"] > 0)

    def objective(batch: stream.Batch) -> tuple[Tensor, Tensor]:
        u, i, r = batch.take()
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
