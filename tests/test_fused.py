"""The fused Triton step against the plain path (EmbeddingDotBias + torch.optim), step by step.

On a machine without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set here before triton's
first import; tiny sizes: it is serial numpy); `pytest -m cuda` runs the same comparisons compiled on a GPU.
"""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede triton's import: it fixes its library's mode

from xlcollab.core import data, fused  # noqa: E402
from xlcollab.core.fit import CollabFit  # noqa: E402
from xlcollab.core.models import EmbeddingDotBias  # noqa: E402
from xlcollab.core.stream import Batch  # noqa: E402
from xlcollab.core.settings import check_fit  # noqa: E402
from xlcollab.core.train import train  # noqa: E402
from xlcollab.core.updates import torch_optimizer  # noqa: E402
from xlcollab.errors import SettingsError  # noqa: E402

HAVE_TRITON = importlib.util.find_spec("triton") is not None
if not HAVE_TRITON and os.environ.get("CI"):
    raise RuntimeError("CI needs triton for the fused-kernel tests: bash scripts/setup.sh --test installs it")
pytestmark = pytest.mark.skipif(not HAVE_TRITON, reason="triton not installed (pip install 'triton>=3')")
# without CUDA the kernels run interpreted on the CPU; with it (no interpreter in this process) compiled on the GPU
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def problem(n_users: int, n_items: int, n: int, device: torch.device, seed: int = 0):
    """Random codes (many repeats per batch: the atomics must add them all) and half-star ratings."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(0, n_users, (n,), generator=g)
    items = torch.randint(0, n_items, (n,), generator=g)
    ratings = torch.randint(1, 11, (n,), generator=g).float() / 2
    return users.to(device), items.to(device), ratings.to(device)


def model_of(n_users: int, n_items: int, k: int, y_range, device: torch.device) -> EmbeddingDotBias:
    torch.manual_seed(1)
    m = EmbeddingDotBias.from_counts(n_users, n_items, k, y_range=y_range, global_bias=0.2)
    with torch.no_grad():  # larger than fastai's 0.01 start so that the dot product matters from step 1
        for p in (m.u_weight.weight, m.i_weight.weight):
            p.normal_(0, 0.3)
    return m.to(device)


def settings(optimizer: str, wd_mode: str, wd: float = 0.1, wd_bias: float = 0.01) -> dict:
    return dict(optimizer=optimizer, wd_mode=wd_mode, wd=wd, wd_bias=wd_bias, lr=0.05, momentum=0.9, beta2=0.99)


def steps(update, objective, batches: list[Batch], lrs: list[float]) -> list[float]:
    """Each batch as one epoch of the one training loop: its row's loss is that step's MSE before the step."""
    rows = train(update, objective, len(batches), batches=lambda e: [(batches[e], batches[e].size)],
                 lr_at=lambda step: lrs[step])
    return [r["loss"] for r in rows]


def plain(model, s):
    """The plain path's update and objective (fit's recipe: torch.optim from updates.torch_optimizer, L2 through
    forward_penalty), the reference."""
    l2 = s["wd_mode"] == "l2" and (s["wd"] > 0 or s["wd_bias"] > 0)

    def objective(batch):
        u, i, r = batch.take()
        pred, pen = model.forward_penalty(u, i, s["wd"], s["wd_bias"]) if l2 else (model(u, i), 0.0)
        mse = (pred - r).pow(2).mean()
        return mse + pen, mse
    return torch_optimizer(s, model), objective


def fused_of(model, s):
    step = fused.FusedDotBias(model, betas=(s["momentum"], s["beta2"]), wd=s["wd"], wd_bias=s["wd_bias"],
                              wd_mode=s["wd_mode"])
    return step, step.objective


def compare(device, *, optimizer="adam", wd_mode="l2", y_range=(0.0, 5.5), k=6, n_users=9, n_items=7, n=50,
            bs=16, n_steps=7, wd=0.1, wd_bias=0.01, rtol=1e-5, atol=2e-6):
    s = settings(optimizer, wd_mode, wd, wd_bias)
    users, items, ratings = problem(n_users, n_items, n, device)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3)).to(device)
    lrs = [0.05 * (1 - t / (2 * n_steps)) for t in range(n_steps)]
    cuts = [perm[(b * bs) % n:(b * bs) % n + bs] for b in range(n_steps)]
    batches = [Batch(users, items, ratings, rows, len(rows)) for rows in cuts]
    ref, fast = model_of(n_users, n_items, k, y_range, device), model_of(n_users, n_items, k, y_range, device)
    want = steps(*plain(ref, s), batches, lrs)
    got = steps(*fused_of(fast, s), batches, lrs)
    assert got == pytest.approx(want, rel=rtol), (got, want)
    for (name, a), b in zip(ref.named_parameters(), fast.parameters()):
        assert torch.allclose(a, b, rtol=rtol, atol=atol), (name, float((a - b).abs().max()))
    with torch.no_grad():
        start = model_of(n_users, n_items, k, y_range, device)
        moved = max(float((a - b).abs().max()) for a, b in zip(start.parameters(), fast.parameters()))
    assert moved > 100 * atol  # the comparison is not vacuous: the steps moved the parameters


@pytest.mark.parametrize("optimizer, wd_mode", [("adam", "l2"), ("adamw", "decoupled"), ("adam", "decoupled")])
def test_fused_steps_equal_the_plain_path(optimizer, wd_mode):
    compare(DEVICE, optimizer=optimizer, wd_mode=wd_mode)


def test_fused_without_sigmoid_range_or_decay_is_plain_adam_on_the_mse():
    compare(DEVICE, y_range=None, wd=0.0, wd_bias=0.0)


def test_factor_count_that_is_not_a_power_of_two_and_a_ragged_last_batch():
    compare(DEVICE, k=5, n=45, bs=16, n_steps=6)  # k pads to 8 lanes; the third batch holds 13 ratings


def test_contiguous_batch_without_a_permutation_is_the_full_batch_step():
    s = settings("adam", "l2")
    users, items, ratings = problem(6, 5, 30, DEVICE)
    batches = [Batch(users, items, ratings, None, 30)] * 3
    ref, fast = model_of(6, 5, 4, (0.0, 5.5), DEVICE), model_of(6, 5, 4, (0.0, 5.5), DEVICE)
    want = steps(*plain(ref, s), batches, [0.05] * 3)
    assert steps(*fused_of(fast, s), batches, [0.05] * 3) == pytest.approx(want, rel=1e-5)
    assert torch.allclose(ref.i_bias.weight, fast.i_bias.weight, atol=2e-6)


def test_shares_of_a_batch_add_up_to_the_whole_batch_step():
    """A distributed run's step: each share's gradient over the whole batch's size, summed before the update."""
    s = settings("adam", "l2")
    users, items, ratings = problem(8, 6, 40, DEVICE)
    rows = torch.randperm(40, generator=torch.Generator().manual_seed(2)).to(DEVICE)[:30]
    ref, fast = model_of(8, 6, 5, (0.0, 5.5), DEVICE), model_of(8, 6, 5, (0.0, 5.5), DEVICE)
    steps(*plain(ref, s), [Batch(users, items, ratings, rows, 30)], [0.05])
    step, objective = fused_of(fast, s)

    def two_shares(batch):
        first, _ = objective(Batch(users, items, ratings, rows[:13], 30))  # gradients add up in the flat buffer
        _, mse = objective(Batch(users, items, ratings, rows[13:], 30))
        return first, mse
    steps(step, two_shares, [Batch(users, items, ratings, rows, 30)], [0.05])
    for a, b in zip(ref.parameters(), fast.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=2e-6)


def test_model_parameters_are_views_of_the_flat_buffer():
    m = model_of(4, 3, 2, (0.0, 5.5), DEVICE)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    step = fused.FusedDotBias(m)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert step.params.numel() == 4 * 2 + 3 * 2 + 4 + 3 + 1
    steps(step, step.objective, [Batch(*problem(4, 3, 8, DEVICE), None, 8)], [0.1])
    assert not torch.equal(before["u_weight.weight"], m.u_weight.weight)
    assert m.u_weight.weight.data_ptr() == step.params.data_ptr()


def test_supports_only_the_biased_dot_product_with_adam():
    assert fused.supports({"model": "dotbias", "optimizer": "adam"})
    assert fused.supports({"model": "dotbias", "optimizer": "adamw"})
    assert not fused.supports({"model": "dot", "optimizer": "adam"})
    assert not fused.supports({"model": "dotbias", "optimizer": "momentum"})
    assert not fused.available("cpu")


def test_a_fit_chooses_the_fused_step_on_cuda_only_and_refuses_what_it_cannot_fuse(small_ratings):
    auto = check_fit({})
    assert fused.chosen(auto, "cpu") is False  # the interpreter is for tests: never chosen on its own
    assert fused.chosen(auto, "cuda") is HAVE_TRITON  # a fit on a CUDA device takes it
    assert fused.chosen(check_fit({"fused": False}), "cuda") is False
    with pytest.raises(SettingsError, match="fused trains the biased dot product .* not model dot with adam"):
        CollabFit(model="dot", fused=True).fit(small_ratings)


def test_a_fused_fit_equals_the_plain_fit(small_ratings):
    """CollabFit end to end (split, seeded start, shuffles, schedule, validation) with the step fused or not."""
    kw = dict(epochs=3, batch_size=64, device=DEVICE.type, progress=False)
    plain = CollabFit(fused=False, **kw).fit(small_ratings)
    fast = CollabFit(fused=True, **kw).fit(small_ratings)
    for a, b in zip(plain.trace_, fast.trace_):
        assert b["train_rmse"] == pytest.approx(a["train_rmse"], rel=1e-5)
        assert b["valid_rmse"] == pytest.approx(a["valid_rmse"], rel=1e-5)
    for (name, p), q in zip(plain.model_.named_parameters(), fast.model_.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
    assert plain.trace_[-1]["valid_rmse"] < plain.trace_[0]["valid_rmse"]  # it learned something


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optimizer, wd_mode", [("adam", "l2"), ("adamw", "decoupled")])
def test_fused_steps_equal_the_plain_path_on_cuda(optimizer, wd_mode):
    assert fused.available("cuda")
    compare(torch.device("cuda"), optimizer=optimizer, wd_mode=wd_mode, k=64, n_users=500, n_items=300,
            n=20_000, bs=4096, n_steps=12, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_default_fit_on_cuda_takes_the_fused_step_and_lands_where_the_plain_one_does():
    """ml-latest-small with the default recipe (README: valid RMSE 0.8366 on the CPU): the fused step, chosen on its
    own, and the plain path on the same GPU reach the same RMSE (atomic adds change the order of sums, not more)."""
    ratings = data.load_ratings()
    fast = CollabFit(device="cuda", progress=False).fit(ratings)
    plain = CollabFit(device="cuda", fused=False, progress=False).fit(ratings)
    assert fast.fused_ and not plain.fused_ and fast.device_.startswith("cuda")
    assert fast.valid_rmse_ == pytest.approx(plain.valid_rmse_, abs=2e-3)
    assert fast.model_valid_rmse_ == pytest.approx(0.8366, abs=5e-3)
