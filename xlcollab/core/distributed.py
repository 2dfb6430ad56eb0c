"""Several processes, one fit: torch.distributed under torchrun, each process taking a share of every batch.

    torchrun --nproc_per_node 4 -m xlcollab fit ratings.csv --distributed        # 4 GPUs of one machine (NCCL)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint host:29500 -m xlcollab fit ... --distributed

Every process holds the whole model (replicated embedding tables) and draws the same shuffle from the same seed;
each global batch of `batch_size` ratings is cut into `world` contiguous shares, one per process. The plain path
wraps the model in DistributedDataParallel, whose backward all-reduces the gradients and divides by `world`; each
process scales its loss by world * share / batch (`loss_weight`), so the averaged gradient is exactly the gradient
of the whole batch's mean loss, whatever the shares' sizes: the run equals one process's run with the same seed and
batch, to float rounding. The fused path all-reduces its one flat gradient buffer between its two kernels instead.
Backends: NCCL between GPUs, gloo between CPU processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

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
    'cpu', else gloo on the CPU."""
    if not launched():
        raise SettingsError(f"--distributed needs processes started by torchrun (RANK, WORLD_SIZE unset): "
                            f"{LAUNCH_HINT}")
    cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not cuda:
        raise SettingsError(f"device '{device}': no CUDA device is available (torch.cuda.is_available() is False)")
    here = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(here)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=here if cuda else None)
    return Group(dist.get_rank(), dist.get_world_size(), here)


def leave() -> None:
    """End this process's part in the run (the process group), if it joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(rows: Tensor, group: Group) -> Tensor:
    """This process's contiguous share of a global batch's rows (shares differ in size by at most one row)."""
    return torch.tensor_split(rows, group.world)[group.rank]


def loss_weight(n_share: int, n_batch: int, group: Group) -> float:
    """The factor on this share's mean loss after which DDP's averaged gradient is the whole batch's."""
    return group.world * n_share / n_batch


def wrap(model: nn.Module, group: Group) -> nn.Module:
    """model in DistributedDataParallel (it broadcasts rank 0's start values; all ranks start equal anyway)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [group.device.index] if group.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_sum(t: Tensor) -> Tensor:
    """t summed over every process, in place (a per-epoch squared-error total, the fused path's gradient)."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
