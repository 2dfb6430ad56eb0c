"""The biased dot-product model's whole training step in two Triton kernels: the fast path of `fit` on CUDA.

One step of the default recipe (sigmoid range, MSE, per-row L2, Adam) as the plain path computes it with autograd
and torch.optim takes ~20 kernel launches and writes every intermediate to memory. Here it is two launches:

  1. `_forward_backward`: per rating, gather its user and movie rows and biases, predict
     sigmoid_range(u . i + b_u + b_i + g), add its squared error to the step's SSE, and atomically add its
     gradient (data term + the per-row L2 term 2 * wd / B * row) into one flat gradient buffer;
  2. `_adam`: one pass over every parameter (the plain path's dense embedding gradients update every row every
     step, so this does too): optional decoupled decay, Adam's moments and bias-corrected update, the gradient
     zeroed for the next step.

Parameters live in one flat fp32 buffer [user factors | movie factors | user biases | movie biases | global bias];
the model's Parameters become views of it, so predictions, saving and the plain path see the same numbers.
The plain path (models.EmbeddingDotBias + torch.optim.Adam/AdamW) stays the reference: tests/test_fused.py checks
losses and parameters step by step against it, on the CPU through Triton's interpreter (which runs these kernels
on CPU tensors, serially; tiny sizes only) and on a GPU with `pytest -m cuda`. Atomic adds make the summation
order differ run to run, so agreement is to float tolerance, not bit for bit.
"""
from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

triton = tl = None  # imported on first use (`_kernels`): optional, and its import reads TRITON_INTERPRET

BLOCK_ROWS = 64  # ratings per program of the forward/backward kernel (benchmarks/bench_gpu.py --sections tune)
BLOCK_ELEMS = 4096  # parameters per program of the Adam kernel
WARPS = 4  # warps per program of both kernels


def available(device: torch.device | str) -> bool:
    """Whether the fused step can run on device: Triton importable and the device CUDA (the CPU only interprets)."""
    return torch.device(device).type == "cuda" and importlib.util.find_spec("triton") is not None


def supports(settings: dict[str, Any]) -> bool:
    """Whether checked fit settings are a recipe the kernels compute: the biased dot product with Adam or AdamW."""
    return settings["model"] == "dotbias" and settings["optimizer"] in ("adam", "adamw")


# -- the kernels (plain functions here; `_kernels` compiles them for CUDA or wraps them for the interpreter) --------
def _forward_backward(perm, n, users, items, ratings, params, grad, sse,
                      item_off, ubias_off, ibias_off, gbias_off, k, inv_b, l2_factor, l2_bias, low, span,
                      HAS_PERM: tl.constexpr, HAS_RANGE: tl.constexpr, BLOCK: tl.constexpr,
                      K_PAD: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    if HAS_PERM:
        idx = tl.load(perm + rows, mask=live, other=0).to(tl.int64)
    else:
        idx = rows.to(tl.int64)
    u = tl.load(users + idx, mask=live, other=0).to(tl.int64)
    i = tl.load(items + idx, mask=live, other=0).to(tl.int64)
    r = tl.load(ratings + idx, mask=live, other=0.0)
    cols = tl.arange(0, K_PAD)
    m2 = live[:, None] & (cols[None, :] < k)
    u_at = params + u[:, None] * k + cols[None, :]
    i_at = params + item_off + i[:, None] * k + cols[None, :]
    uf = tl.load(u_at, mask=m2, other=0.0)
    itf = tl.load(i_at, mask=m2, other=0.0)
    bu = tl.load(params + ubias_off + u, mask=live, other=0.0)
    bi = tl.load(params + ibias_off + i, mask=live, other=0.0)
    x = tl.sum(uf * itf, axis=1) + bu + bi + tl.load(params + gbias_off)
    if HAS_RANGE:  # sigmoid_range: pred = low + span * s, d pred / dx = span * s * (1 - s)
        s = tl.sigmoid(x)
        pred = low + span * s
        slope = span * s * (1.0 - s)
    else:
        pred = x
        slope = 1.0
    err = tl.where(live, pred - r, 0.0)
    tl.atomic_add(sse, tl.sum(err * err, axis=0))
    dx = 2.0 * inv_b * err * slope  # d(mean squared error) / dx for each rating
    # per-row L2 (mean over the batch of wd * |row|^2): each use of a row adds 2 * wd / B * row to its gradient
    tl.atomic_add(grad + u[:, None] * k + cols[None, :], dx[:, None] * itf + l2_factor * uf, mask=m2)
    tl.atomic_add(grad + item_off + i[:, None] * k + cols[None, :], dx[:, None] * uf + l2_factor * itf, mask=m2)
    tl.atomic_add(grad + ubias_off + u, dx + l2_bias * bu, mask=live)
    tl.atomic_add(grad + ibias_off + i, dx + l2_bias * bi, mask=live)
    tl.atomic_add(grad + gbias_off, tl.sum(dx, axis=0))


def _adam(params, grad, exp_avg, exp_avg_sq, n, factors_end, biases_end, keep_factors, keep_biases,
          beta1, beta2, step_size, inv_sqrt_bc2, eps, BLOCK: tl.constexpr):
    at = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = at < n
    p = tl.load(params + at, mask=live, other=0.0)
    g = tl.load(grad + at, mask=live, other=0.0)
    m = tl.load(exp_avg + at, mask=live, other=0.0)
    v = tl.load(exp_avg_sq + at, mask=live, other=0.0)
    # decoupled decay (AdamW's p <- p * (1 - lr * wd)), per group: factors, biases, then the undecayed global bias
    p = p * tl.where(at < factors_end, keep_factors, tl.where(at < biases_end, keep_biases, 1.0))
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    p = p - step_size * m / (tl.sqrt(v) * inv_sqrt_bc2 + eps)
    tl.store(params + at, p, mask=live)
    tl.store(exp_avg + at, m, mask=live)
    tl.store(exp_avg_sq + at, v, mask=live)
    tl.store(grad + at, tl.zeros_like(g), mask=live)


@lru_cache(maxsize=1)
def _kernels() -> tuple[Any, Any, bool]:
    """The two kernels and whether they are interpreted: Triton's interpreter runs them (on CPU tensors) when
    TRITON_INTERPRET=1 was set before triton was first imported; otherwise Triton compiles them for CUDA."""
    global triton, tl
    try:
        import triton
        import triton.language as tl
    except ImportError:
        raise ImportError("the fused step needs Triton: pip install 'triton>=3' (CUDA builds of torch include it)")
    from triton.runtime.interpreter import InterpretedFunction
    interpreted = isinstance(tl.sum, InterpretedFunction)  # triton's own library follows the env at its import
    # n varies (the last batch): specialising on its divisibility by 16 would only compile needless variants
    return (triton.jit(_forward_backward, do_not_specialize=["n"]),
            triton.jit(_adam, do_not_specialize=["n"]), interpreted)


class _Done:
    """The loss of a fused forward/backward: its gradient is already in the flat buffer, so backward does nothing."""

    def backward(self) -> None:
        pass


class FusedDotBias:
    """Fused training of an EmbeddingDotBias with Adam or AdamW: state = the flat parameters, gradient and moments.

    The settings are the plain path's (`fit.torch_optimizer` and `forward_penalty`): `l2` adds
    wd * mean |factor rows|^2 + wd_bias * mean bias^2 over each batch to the loss; `decoupled` shrinks the factors
    by lr * wd and the biases by lr * wd_bias before each Adam step; the global bias is never decayed.
    For `train.train` it is both the update (torch.optim's face: param_groups[0]["lr"], zero_grad, step(closure))
    and, through `objective`, the objective; `reduce` runs on the flat gradient between the two kernels (the
    all-reduce of a distributed run).
    """

    def __init__(self, model: torch.nn.Module, *, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8,
                 wd: float = 0.0, wd_bias: float = 0.0, wd_mode: str = "l2", lr: float = 1e-3,
                 reduce: Callable[[Tensor], Any] | None = None):
        parts = [model.u_weight.weight, model.i_weight.weight, model.u_bias.weight, model.i_bias.weight,
                 model.global_bias]
        (n_users, k), n_items = parts[0].shape, parts[1].shape[0]
        self.k, self.y_range, self.reduce = k, model.y_range, reduce
        with torch.no_grad():
            self.params = torch.cat([p.detach().reshape(-1).float() for p in parts])
        at = 0
        for p in parts:  # the model's Parameters become views of the flat buffer (same numbers, no copy kept)
            p.data = self.params[at:at + p.numel()].view_as(p)
            at += p.numel()
        self.item_off = n_users * k
        self.ubias_off = (n_users + n_items) * k
        self.ibias_off = self.ubias_off + n_users
        self.gbias_off = self.ibias_off + n_items
        self.grad = torch.zeros_like(self.params)
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self.betas, self.eps, self.steps = (float(betas[0]), float(betas[1])), float(eps), 0
        self.param_groups = [{"lr": float(lr)}]
        decoupled = wd_mode == "decoupled"
        self.l2 = (0.0, 0.0) if decoupled else (float(wd), float(wd_bias))
        self.decay = (float(wd), float(wd_bias)) if decoupled else (0.0, 0.0)
        if self.params.device.type != "cuda" and not _kernels()[2]:
            raise RuntimeError("the fused step runs on CUDA; on the CPU only through Triton's interpreter "
                               "(set TRITON_INTERPRET=1 before triton is imported)")

    def objective(self, batch: Any) -> tuple[_Done, Tensor]:
        """Forward and backward of a batch (`stream.Batch`: ratings, the rows of them it takes, the whole batch's
        size over every process): the gradient added to the flat buffer; returns (a done loss, the rows' MSE)."""
        users, items, ratings, rows, size = batch
        count = len(rows) if rows is not None else len(ratings)
        sse = torch.zeros((), device=self.params.device)
        if count:
            fwd_bwd = _kernels()[0]
            inv_b = 1.0 / size
            low, high = self.y_range if self.y_range is not None else (0.0, 1.0)
            fwd_bwd[(triton.cdiv(count, BLOCK_ROWS),)](
                rows if rows is not None else users, count, users, items, ratings, self.params, self.grad, sse,
                self.item_off, self.ubias_off, self.ibias_off, self.gbias_off, self.k, inv_b,
                2.0 * self.l2[0] * inv_b, 2.0 * self.l2[1] * inv_b, low, high - low, HAS_PERM=rows is not None,
                HAS_RANGE=self.y_range is not None, BLOCK=BLOCK_ROWS, K_PAD=triton.next_power_of_2(self.k),
                num_warps=WARPS)
        return _Done(), sse / max(count, 1)

    def zero_grad(self) -> None:
        """Nothing to do: the Adam kernel leaves the gradient zeroed for the next step."""

    def step(self, closure: Callable[[], Any]) -> Any:
        """closure() (which runs `objective`), the reduce hook, then one Adam step over every parameter."""
        loss = closure()
        if self.reduce is not None:
            self.reduce(self.grad)
        self.steps += 1
        lr, (beta1, beta2), n = self.param_groups[0]["lr"], self.betas, self.params.numel()
        _kernels()[1][(triton.cdiv(n, BLOCK_ELEMS),)](
            self.params, self.grad, self.exp_avg, self.exp_avg_sq, n, self.ubias_off, self.gbias_off,
            1.0 - lr * self.decay[0], 1.0 - lr * self.decay[1], beta1, beta2, lr / (1.0 - beta1 ** self.steps),
            1.0 / math.sqrt(1.0 - beta2 ** self.steps), self.eps, BLOCK=BLOCK_ELEMS, num_warps=WARPS)
        return loss
