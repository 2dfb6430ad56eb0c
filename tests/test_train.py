"""The one training loop (core.train): the fit's minibatch trace equals the loop it replaced, bit for bit; the sheet
solves run on it without torch.optim (so without torch._dynamo) and reach the RMSEs they reached before."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xlcollab.core import data, optim
from xlcollab.core.fit import CollabFit
from xlcollab.core.models import EmbeddingDotBias, logit_range
from xlcollab.core.train import backward, full_batch, schedule_lr, train
from xlcollab.errors import DivergedError


# -- the fit: the same numbers as the hand-written loop CollabFit ran before core.train --------------------------
def _old_loop(ratings: data.Ratings, *, k: int, epochs: int, lr: float, wd: float, wd_bias: float, bs: int,
              optimizer: str, wd_mode: str, seed: int) -> tuple[list[tuple[float, float, float]], dict]:
    """CollabFit's former `_fit_tensors`, written out: seeded model, shuffled minibatches, per-step schedule,
    L2 on the batch's rows or decoupled decay by hand before SGD's step, RMSE over the epoch's batches."""
    enc = data.encode(ratings)
    tr_idx, va_idx = data.split_indices(len(enc.ratings), 0.2, seed)
    on = lambda idx: (torch.as_tensor(enc.users[idx]), torch.as_tensor(enc.items[idx]),  # noqa: E731
                      torch.as_tensor(enc.ratings[idx]))
    (tu, ti, tr), (vu, vi, vr) = on(tr_idx), on(va_idx)
    lo, hi = float(tr.min()), float(tr.max())
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = EmbeddingDotBias(len(enc.user_ids), len(enc.item_ids), k, y_range=(0.0, 5.5),
                                 global_bias=logit_range(float(tr.mean()), 0.0, 5.5))
        decoupled = wd_mode == "decoupled"
        groups = [{"params": [model.u_weight.weight, model.i_weight.weight], "weight_decay": wd if decoupled else 0.0},
                  {"params": [model.u_bias.weight, model.i_bias.weight], "weight_decay": wd_bias if decoupled else 0.0},
                  {"params": [model.global_bias], "weight_decay": 0.0}]
        if optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.99), decoupled_weight_decay=True, fused=True)
            rates = [0.0] * 3
        else:
            rates = [g.pop("weight_decay") for g in groups]
            opt = torch.optim.SGD(groups, lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0, fused=True)
        gen = torch.Generator().manual_seed(seed)
        n = len(tr)
        steps = math.ceil(n / bs)
        trace, step = [], 0
        for _ in range(epochs):
            model.train()
            sse = torch.zeros(())
            perm = torch.randperm(n, generator=gen)
            for b in range(steps):
                lr_now = schedule_lr("annealed", step / (epochs * steps), lr)
                for g in opt.param_groups:
                    g["lr"] = lr_now
                idx = perm[b * bs:(b + 1) * bs]
                u, i, r = tu[idx], ti[idx], tr[idx]
                if not decoupled:
                    pred, pen = model.forward_penalty(u, i, wd, wd_bias)
                    mse = (pred - r).pow(2).mean()
                    loss = mse + pen
                else:
                    loss = mse = (model(u, i) - r).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                with torch.no_grad():
                    for g, rate in zip(opt.param_groups, rates):
                        if rate:
                            torch._foreach_mul_(g["params"], 1 - lr_now * rate)
                opt.step()
                sse += mse.detach() * len(r)
                step += 1
            model.eval()
            with torch.no_grad():
                valid = math.sqrt(float((model(vu, vi).clamp(lo, hi) - vr).pow(2).mean()))
            trace.append((math.sqrt(float(sse) / n), valid, lr_now))
    return trace, model.state_dict()


@pytest.mark.parametrize("optimizer,wd_mode", [("adam", "l2"), ("momentum", "decoupled")])
def test_fit_trace_is_the_former_loops_bit_for_bit(_embedded_ratings, optimizer, wd_mode):
    f = _embedded_ratings.frame
    ratings = data.Ratings(f[f["user"] < 120].reset_index(drop=True), None, "users < 120")
    kw = dict(k=16, epochs=3, lr=0.01, wd=0.1, wd_bias=0.01, bs=512, optimizer=optimizer, wd_mode=wd_mode, seed=5)
    fit = CollabFit(n_factors=kw["k"], epochs=kw["epochs"], lr=kw["lr"], wd=kw["wd"], wd_bias=kw["wd_bias"],
                    batch_size=kw["bs"], optimizer=optimizer, wd_mode=wd_mode, seed=kw["seed"]).fit(ratings)
    trace, state = _old_loop(ratings, **kw)
    assert [(t["train_rmse"], t["valid_rmse"], t["lr"]) for t in fit.trace_] == trace
    for name, value in state.items():
        assert torch.equal(fit.model_.state_dict()[name], value), name


def test_defaults_reproduce_the_readme_rmse(_embedded_ratings):
    """README: valid RMSE 0.8197 on the seed-42 80/20 split of the embedded ml-latest-small, default settings (the
    model alone 0.8366, plus session effects)."""
    fit = CollabFit().fit(_embedded_ratings)
    assert fit.model_valid_rmse_ == pytest.approx(0.8366, abs=5e-5)
    assert fit.valid_rmse_ == pytest.approx(0.8197, abs=5e-5)


# -- the loop itself ----------------------------------------------------------------------------------------------
def _quadratic(target: torch.Tensor):
    """A flat parameter vector and the objective |x - target|^2 / 2 (data term: the same)."""
    x = torch.zeros_like(target, requires_grad=True)

    def objective(_batch):
        loss = 0.5 * ((x - target) ** 2).sum()
        return loss, loss
    return x, objective


def test_rule_and_torch_optim_take_the_same_steps_through_the_loop():
    """optim.Rule is torch.optim's protocol: the loop gives the same trace and end point with either."""
    target = torch.linspace(-2, 3, 7, dtype=torch.float64)
    x1, obj1 = _quadratic(target)
    x2, obj2 = _quadratic(target)
    ours = train(optim.Rule([x1], "adam", lr=0.1, weight_decay=0.01, decoupled=True), obj1, 40)
    theirs = train(torch.optim.AdamW([x2], lr=0.1, weight_decay=0.01), obj2, 40)
    np.testing.assert_allclose([r["loss"] for r in ours], [r["loss"] for r in theirs], rtol=1e-12)
    torch.testing.assert_close(x1.detach(), x2.detach(), rtol=1e-12, atol=1e-14)
    assert ours[0]["loss"] == pytest.approx(0.5 * float((target ** 2).sum()), rel=1e-15)  # before the first step
    assert set(ours[0]) == {"epoch", "loss", "seconds"} and [r["epoch"] for r in ours] == list(range(1, 41))


def test_minibatch_loss_is_the_weighted_mean_and_the_schedule_reaches_every_step():
    """Two batches of weights 3 and 1 per epoch: the row's loss is (3 a + b) / 4 of the data terms at each step's
    start; lr_at(step) is set on the update before each step, counting over the run."""
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    seen_lr, data_terms = [], []

    def objective(batch):
        loss = batch * x.pow(2).sum()
        data_terms.append(float(loss.detach()))
        return loss, loss

    update = optim.Rule([x], "sgd", lr=1.0)
    original_step = update.step

    def step(closure):
        seen_lr.append(update.param_groups[0]["lr"])
        return original_step(closure)
    update.step = step
    rows = train(update, objective, 2, batches=lambda epoch: [(2.0, 3), (1.0, 1)], lr_at=lambda s: 0.1 / (s + 1))
    assert seen_lr == [0.1, 0.05, 0.1 / 3, 0.025]
    assert [r["lr"] for r in rows] == [0.05, 0.025]
    a, b, c, d = data_terms
    assert rows[0]["loss"] == pytest.approx((3 * a + b) / 4, rel=1e-15)
    assert rows[1]["loss"] == pytest.approx((3 * c + d) / 4, rel=1e-15)


def test_evaluate_and_callback_see_each_epoch_and_nan_stops_naming_it():
    target = torch.ones(3, dtype=torch.float64)
    x, objective = _quadratic(target)
    seen = []
    gap = lambda: {"gap": float((x.detach() - 1).abs().max())}  # noqa: E731
    rows = train(optim.Rule([x], "sgd", lr=0.5), objective, 3, evaluate=gap, on_epoch=seen.append)
    assert seen == rows and [r["gap"] for r in rows] == [0.5, 0.25, 0.125]
    x, objective = _quadratic(target)
    calls = []

    def overflowing(batch):  # the data term overflows from the third evaluation on
        loss, data = objective(batch)
        calls.append(1)
        return loss, data * (math.inf if len(calls) >= 3 else 1.0)
    with pytest.raises(DivergedError, match=r"^sheet 'z': the loss became inf in epoch 3 \(lr 3\); try a lower "
                                            r"learning rate, e.g. --lr 0\.3$"):
        train(optim.Rule([x], "sgd", lr=3.0), overflowing, 10, name="sheet 'z'", lr_hint=3.0)
    assert len(calls) == 3
    x, objective = _quadratic(target)
    with pytest.raises(DivergedError, match="the gap became nan in epoch 1"):
        train(optim.Rule([x], "sgd", lr=0.5), objective, 3, evaluate=lambda: {"gap": math.nan})


def test_a_converged_update_ends_the_run_and_a_foreign_loss_is_refused():
    x, objective = _quadratic(torch.tensor([1.0, -2.0], dtype=torch.float64))
    rows = train(optim.LBFGS([x]), objective, 50)
    assert len(rows) < 10 and rows[-1]["loss"] < 1e-20  # a quadratic: a few iterations, then no step helps
    torch.testing.assert_close(x.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64), rtol=0, atol=1e-12)

    class Detached(optim.Rule):
        def step(self, closure):
            return float(super().step(closure).detach())
    x, objective = _quadratic(torch.ones(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="must return the loss tensor"):
        train(Detached([x], "sgd", lr=0.1), objective, 1)


def test_backward_leaves_the_gradients_loss_backward_leaves():
    """The engine shortcut accumulates exactly what loss.backward() does (0-d and one-element losses, an existing
    .grad added to), and anything else goes through its own .backward(): a vector loss is refused as torch does, a
    loss that is no tensor does its own."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, dtype=torch.float64, generator=g), torch.randn(3, dtype=torch.float64, generator=g)
    for shape in ((), (1,), (1, 1)):
        x1, x2 = (b.clone().requires_grad_(True) for _ in range(2))
        for x in (x1, x2):
            x.grad = torch.full_like(x, 0.5)
        loss = lambda x: ((a @ x).tanh() ** 2).sum().sqrt().reshape(shape)  # noqa: E731
        loss(x1).backward()
        backward(loss(x2))
        assert torch.equal(x1.grad, x2.grad)
        assert not torch.equal(x2.grad, torch.full_like(x2, 0.5))
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        backward(a @ b.clone().requires_grad_(True))
    with pytest.raises(RuntimeError, match="does not require grad"):
        backward(a.sum())
    called = []

    class Done:  # a loss that is no tensor (core.fused's): its own backward runs
        def backward(self):
            called.append(True)
    backward(Done())
    assert called == [True]


def test_full_batch_is_one_batch_of_weight_one():
    assert list(full_batch(0)) == [(None, 1)]


# -- the sheet solves on the loop ---------------------------------------------------------------------------------
SOLVE_SCRIPT = """
import json, sys
from pathlib import Path
from xlcollab.book.filebook import FileBook
from xlcollab.sheets.collab import build_workbook, solve_book
path = build_workbook(Path(sys.argv[1]) / "cf.xlsx")
results = solve_book(FileBook(path), "all")
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules, "rmse": {k: v["final_rmse"] for k, v in results.items()}}))
"""

# What `xlcollab solve` reached with each tab's defaults before its loop moved into core.train (README's table).
SOLVE_RMSES = {"dotprod": 0.33442322009885805, "bias": 0.1903639014285517, "movielens_emb": 0.3344232203336988,
               "movielens_1hot": 0.3344232203336988, "nnet": 0.2331841926224796}


def test_sheet_solves_import_no_torch_dynamo_and_reach_their_former_rmses(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SOLVE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["dynamo"] is False  # no torch.optim on the sheet path: its first use imports torch._dynamo
    assert set(got["rmse"]) == set(SOLVE_RMSES)
    # The tabs now solve their compiled formulas (xlcollab.solver), not hand-written torch code: the same maths,
    # summed in another order. L-BFGS lands on the same optimum to rounding; bias's 1000 Adam steps end within
    # 1% of the former figure as rounding moves their path; nnet's Adam is annealed now and ends well below it.
    for sheet, rmse in SOLVE_RMSES.items():
        if sheet in ("dotprod", "movielens_emb", "movielens_1hot"):
            assert got["rmse"][sheet] == pytest.approx(rmse, rel=1e-7), sheet
        else:
            assert got["rmse"][sheet] <= rmse * 1.01, sheet
    assert got["rmse"]["nnet"] < 0.22


def test_benchmark_prints_what_the_dynamo_import_costs():
    """bench_fit.py's import section runs (its numbers are the benchmark's business, not a test's)."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"
    done = subprocess.run([sys.executable, str(bench), "--imports-only", "--import-runs", "1"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert rows == ["import torch", "import torch; import torch._dynamo (a torch.optim optimizer's first use)",
                    "import xlcollab.sheets.collab.solve (the sheet solve's own imports)"]
    assert "the sheet solves never import it" in done.stdout
