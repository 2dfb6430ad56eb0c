"""`xlcollab fit --distributed` under torchrun: 2 gloo processes on the CPU give the single process's fit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from xlcollab.core import distributed
from xlcollab.core.fit import CollabFit
from xlcollab.errors import SettingsError



def torchrun(tmp_path, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "xlcollab", "fit", "--distributed", "--device", "cpu", "--json", "--save", "two.pt", *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**clean, **(env or {})})


def check_same_fit(tmp_path, done: subprocess.CompletedProcess, one: CollabFit, source=None) -> None:
    """Rank 0 alone reports; its trace and model are the single process's: the losses to 1e-5, the parameters to
    float rounding on average (1e-8 seen); a few rows whose gradient is near zero can differ more, as Adam's step is about
    lr * sign(gradient) there (1e-4 at most seen)."""
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1
    for a, b in zip(one.trace_, reports[0]["trace"]):
        assert b["train_rmse"] == pytest.approx(a["train_rmse"], rel=1e-5)
        assert b["valid_rmse"] == pytest.approx(a["valid_rmse"], rel=1e-5)
    two = CollabFit.load(tmp_path / "two.pt")
    assert two.valid_rmse_ == pytest.approx(one.valid_rmse_, rel=1e-5)
    with torch.no_grad():
        for (name, p), q in zip(one.model_.named_parameters(), two.model_.parameters()):
            gap = (p - q).abs()
            assert float(gap.mean()) < 1e-6 and float(gap.max()) < 1e-3, (name, float(gap.mean()), float(gap.max()))
        start = CollabFit(epochs=1, batch_size=one.batch_size, device="cpu", progress=False).fit(source)
        assert float((start.model_.i_weight.weight - two.model_.i_weight.weight).abs().max()) > 1e-2  # not vacuous


def test_two_gloo_processes_fit_what_one_process_fits(tmp_path):
    """The plain path under DistributedDataParallel, on the embedded ml-latest-small; an odd global batch: the two
    shares differ by one rating and the last batch (80,668 = 80 x 999 + 748) is short."""
    done = torchrun(tmp_path, "--epochs", "2", "--batch-size", "999")
    one = CollabFit(epochs=2, batch_size=999, device="cpu", progress=False).fit()
    check_same_fit(tmp_path, done, one)


def test_two_gloo_processes_fit_what_one_process_fits_with_the_fused_step(tmp_path, small_ratings):
    """The fused step (Triton's interpreter on the CPU) all-reducing its flat gradient between its two kernels."""
    small_ratings.frame.to_csv(tmp_path / "ratings.csv", index=False)
    done = torchrun(tmp_path, "ratings.csv", "--epochs", "3", "--batch-size", "99", "--fused",
                    env={"TRITON_INTERPRET": "1"})
    one = CollabFit(epochs=3, batch_size=99, device="cpu", progress=False).fit(tmp_path / "ratings.csv")
    check_same_fit(tmp_path, done, one, tmp_path / "ratings.csv")


def test_a_shares_weights_make_the_whole_batch_gradient():
    """DDP averages the shares' gradients; weighting each share's mean loss by world * share / batch turns that
    average into the gradient of the whole batch's mean, whatever the shares' sizes (here 3 and 1 of 4)."""
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(4, 5)
    whole = torch.autograd.grad((x @ w).pow(2).mean(), w)[0]
    group = distributed.Group(0, 2, torch.device("cpu"))
    shares = [x[:3], x[3:]]
    grads = [torch.autograd.grad((s @ w).pow(2).mean() * (group.world * len(s) / 4), w)[0] for s in shares]
    assert torch.allclose((grads[0] + grads[1]) / group.world, whole, atol=1e-6)


def test_distributed_outside_torchrun_says_how_to_launch(monkeypatch, small_ratings):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError, match="torchrun --nproc_per_node 2 -m xlcollab fit"):
        CollabFit(distributed=True).fit(small_ratings)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (NCCL: one process per GPU)")
def test_two_nccl_processes_fit_what_one_process_fits(tmp_path):
    """Two GPUs, NCCL, the fused step all-reducing its gradient: one GPU's fit, to float rounding."""
    done = torchrun(tmp_path, "--epochs", "2", "--batch-size", "999", "--device", "cuda")
    one = CollabFit(epochs=2, batch_size=999, device="cuda", progress=False).fit()
    check_same_fit(tmp_path, done, one)
