"""Several processes, one fit: torch.distributed under torchrun, each process taking a share of every batch.

    torchrun --nproc_per_node 4 -m xlcollab fit ratings.csv --distributed        # 4 GPUs of one machine (NCCL)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint host:29500 -m xlcollab fit ... --distributed

Every process holds the whole model (replicated embedding tables) and draws the same shuffle from the same seed;
each global batch of `batch_size` ratings is cut into `world` contiguous shares, one per process. The plain path
wraps the model in DistributedDataParallel, whose backward all-reduces the gradients and divides by `world`; each
process scales its loss by world * share / batch (`weighted`), so the averaged gradient is exactly the gradient
of the whole batch's mean loss, whatever the shares' sizes: the run equals one process's run with the same seed and
batch, to float rounding. The fused path all-reduces its one flat gradient buffer between its two kernels instead.
Backends: NCCL between GPUs, gloo between CPU processes.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from xlcollab.errors import SettingsError

LAUNCH_HINT = "run it under torchrun, e.g. torchrun --nproc_per_node 2 -m xlcollab fit RATINGS --distributed"


@dataclass(frozen=True)
class Group:
    """This process's place in the run: its rank, the number of processes, its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def leader(self) -> bool:
        """Rank 0: the process that prints, saves and writes."""
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun (or another launcher setting RANK and WORLD_SIZE) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join(device: str = "auto") -> Group:
    """Join the run torchrun started: NCCL on this process's GPU (LOCAL_RANK) when CUDA is there and device is not
    'cpu', else gloo on the CPU. Joining twice is joining once."""
    if not launched():
        raise SettingsError(f"distributed needs processes started by torchrun (RANK and WORLD_SIZE are unset): "
                            f"{LAUNCH_HINT}")
    cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not cuda:
        raise SettingsError(f"device '{device}': no CUDA device is available (torch.cuda.is_available() is False)")
    if not dist.is_initialized():
        here = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else None
        if here is not None:
            torch.cuda.set_device(here)
        dist.init_process_group("nccl" if cuda else "gloo", device_id=here)
    return group()


def group() -> Group:
    """This process's place in the run it joined."""
    if not (dist.is_available() and dist.is_initialized()):
        raise SettingsError(f"this process has not joined a distributed run: {LAUNCH_HINT}")
    cuda = dist.get_backend() == "nccl"
    here = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return Group(dist.get_rank(), dist.get_world_size(), here)


def leave() -> None:
    """End this process's part in the run (the process group), if it joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shares(batches: Callable[[int], Iterable[tuple[Any, int]]], group: Group) -> Callable[[int], Iterator[Any]]:
    """The loop's batches cut into this process's contiguous share of each (shares differ by at most one rating);
    each share keeps the whole batch's size, the mean's denominator."""
    def run(epoch: int) -> Iterator[tuple[Any, int]]:
        for batch, _ in batches(epoch):
            rows = batch.rows if batch.rows is not None else torch.arange(len(batch.ratings), device=batch.ratings.device)
            mine = torch.tensor_split(rows, group.world)[group.rank]
            yield batch._replace(rows=mine), len(mine)
    return run


def weighted(objective: Callable[[Any], tuple[Tensor, Tensor]], group: Group) -> Callable[[Any], tuple[Any, Any]]:
    """objective on a share, its loss weighted by world * share / batch: DDP's average of the gradients is then the
    whole batch's gradient. An empty share (a last batch smaller than the world) still runs, so that DDP's
    all-reduce meets every process: its mean is NaN but its gradients are zeros, and its data term is 0."""
    def run(batch: Any) -> tuple[Any, Any]:
        loss, mse = objective(batch)
        n = len(batch.rows)
        return loss * (group.world * n / batch.size), mse if n else torch.zeros_like(mse.detach())
    return run


def sum_total(total: Tensor, weight: int) -> tuple[Tensor, int]:
    """An epoch's data-term total and weight summed over every process (the loop's reduce_total)."""
    both = torch.stack([total.detach().double(), torch.tensor(float(weight), device=total.device).double()])
    all_sum(both)
    return both[0], int(round(float(both[1])))


def wrap(model: nn.Module, group: Group) -> nn.Module:
    """model with its forward and forward_penalty run through DistributedDataParallel (whose hooks all-reduce the
    gradients in backward); rank 0's start values are broadcast, though every rank starts equal anyway."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [group.device.index] if group.device.type == "cuda" else None
    return _Replica(DistributedDataParallel(_Both(model), device_ids=ids))


class _Both(nn.Module):
    """forward(users, items, penalty): predictions, or (predictions, penalty) when penalty = (wd, wd_bias)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, users: Tensor, items: Tensor, penalty: tuple[float, float] | None = None) -> Any:
        return self.model(users, items) if penalty is None else self.model.forward_penalty(users, items, *penalty)


class _Replica(nn.Module):
    """The model's face (forward, forward_penalty) over its DDP wrapper."""

    def __init__(self, ddp: nn.Module):
        super().__init__()
        self.ddp = ddp

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return self.ddp(users, items)

    def forward_penalty(self, users: Tensor, items: Tensor, wd: float, wd_bias: float | None) -> Any:
        return self.ddp(users, items, (wd, wd_bias))


def all_sum(t: Tensor) -> Tensor:
    """t summed over every process, in place (an epoch's squared-error total, the fused path's gradient)."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
