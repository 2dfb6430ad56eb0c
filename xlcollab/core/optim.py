"""The spreadsheet update rules as tensor code: one functional rule per optimizer, torch.optim style.

Each rule takes one parameter and its gradient, updates the named buffers in `state` (the names
torch.optim uses: `momentum_buffer`, `sum`, `square_avg`, `exp_avg`, `exp_avg_sq`, `step`) and
returns the new parameter. The arithmetic is written once, in the order the sheets' formulas compute
it, and runs unchanged on torch tensors of any shape and on Python floats. Float64 tensors and floats
give bit-identical results (+ - * / are correctly rounded on both, and `_sqrt` makes the tensors' sqrt
so too), which lets the graddesc sheets run their long scalar traces on plain floats, far cheaper per
step than 0-d tensors, without changing a bit.

Buffers start at zero, as the sheets' top cells do. `make_optimizer` returns torch.optim's own class
wherever the maths is the same, and `SheetOptimizer` (our rule, in place) where it is not. torch is
imported only where a torch optimizer is made, so `xlcollab run` never pays for it.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

Number = Any  # a float or a torch.Tensor: the rules use only + - * / and sqrt


def _sqrt(x: Number) -> Number:
    """Correctly rounded sqrt of a float (math.sqrt, as Excel and LibreOffice) or a tensor.

    torch's CPU sqrt (SLEEF) is within one ulp but not always correctly rounded (about 1 value in 80
    here), so for float64 tensors one Newton step with an exact residual (Dekker's product) rounds it
    correctly; other dtypes keep Tensor.sqrt.
    """
    if type(x) is float or isinstance(x, (float, int)):  # the first test is the fast path of the sheet runs
        return math.sqrt(x)
    s = x.sqrt()
    if str(x.dtype) != "torch.float64":
        return s
    c = s * 134217729.0            # Veltkamp split: s = hi + lo, each half the bits
    hi = c - (c - s)
    lo = s - hi
    p = s * s
    err = ((hi * hi - p) + 2 * hi * lo) + lo * lo  # s*s == p + err exactly
    fixed = s + ((x - p) - err) / (2 * s)
    return fixed.where((s > 0) & s.isfinite(), s)


def sgd(param: Number, grad: Number, state: dict[str, Any], *, lr: float, momentum: float = 0.0,
        dampening: float = 0.0, weight_decay: float = 0.0) -> Number:
    """Stochastic gradient descent, optionally with momentum; the `basic SGD` and `momentum` sheets.

    Sheet lines (one row per step)::

        g   = de/dp (+ weight_decay * p)
        m   = momentum * m_prev + (1 - dampening) * g      (m_prev = 0 in the first row)
        p   = p - lr * m                                   (p - lr * g without momentum)

    Differs from torch.optim.SGD: the buffer starts at zero, as the sheet's top cell does, where torch
    starts it at the first gradient. With dampening = 0 (torch's default) the two are the same maths;
    the `momentum` sheet uses dampening = momentum, the exponential average m = βm + (1-β)g, so its
    first step is (1-β) times torch's. Steps equal torch's up to rounding: torch fuses p - lr·g into
    one multiply-add, where this rule (like the sheet's formula) rounds the product, then the difference.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        grad = momentum * state.get("momentum_buffer", 0.0) + (1 - dampening) * grad
        state["momentum_buffer"] = grad
    return param - lr * grad


def adagrad(param: Number, grad: Number, state: dict[str, Any], *, lr: float, eps: float = 1e-10,
            weight_decay: float = 0.0) -> Number:
    """Adagrad; the `adagrad` sheet.

    Sheet lines::

        s = s_prev + g * g
        p = p - lr * (g / (sqrt(s) + eps))

    Same maths as torch.optim.Adagrad(lr, eps=eps) with lr_decay = 0 and initial_accumulator_value = 0.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    total = state.get("sum", 0.0) + grad * grad
    state["sum"] = total
    return param - lr * (grad / (_sqrt(total) + eps))


def rmsprop(param: Number, grad: Number, state: dict[str, Any], *, lr: float, alpha: float = 0.99,
            eps: float = 1e-8, weight_decay: float = 0.0) -> Number:
    """RMSprop; the `rmsprop` sheet (β is torch's `alpha`).

    Sheet lines::

        v = β * v_prev + (1 - β) * g * g
        p = p - lr * (g / (sqrt(v) + eps))

    Same maths as torch.optim.RMSprop(lr, alpha=β, eps=eps) without momentum or centering.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    avg = alpha * state.get("square_avg", 0.0) + (1 - alpha) * (grad * grad)
    state["square_avg"] = avg
    return param - lr * (grad / (_sqrt(avg) + eps))


def adam(param: Number, grad: Number, state: dict[str, Any], *, lr: float, beta1: float = 0.9,
         beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
         bias_correction: bool = True) -> Number:
    """Adam, with L2 or decoupled (AdamW) weight decay; the `adam`, `adam_ann`, `l2` and `adamw` sheets.

    Sheet lines::

        g = de/dp + wd * p                     (L2, decoupled=False: the `l2` sheet)
        t = t_prev + 1
        m = β1 * m_prev + (1 - β1) * g
        v = β2 * v_prev + (1 - β2) * g * g
        p = p * (1 - lr * wd)                   (decoupled=True instead: the `adamw` sheet)
        p = p - lr / (1 - β1^t) * (m / (sqrt(v) / sqrt(1 - β2^t) + eps))
        p = p - lr * (m / (sqrt(v) + eps))      (bias_correction=False: fast.ai's classic sheet, eps 0)

    Differs from torch.optim: with bias_correction=False (fast.ai's `adam` sheet: β1 0.7, β2 0.9,
    lr 1, eps 0) the first steps are not scaled up, so they are smaller than torch.optim.Adam's; torch
    has no switch for that. With bias correction this is torch.optim.Adam (decoupled=False, L2 decay)
    and torch.optim.AdamW (decoupled=True); torch updates m with lerp, m + (1-β1)(g - m), equal up to
    rounding (a few ulps) to the sheet's β1 m + (1-β1) g.
    """
    if weight_decay and not decoupled:
        grad = grad + weight_decay * param
    step = state.get("step", 0) + 1
    state["step"] = step
    exp_avg = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * grad
    exp_avg_sq = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * (grad * grad)
    state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
    if weight_decay and decoupled:
        param = param * (1 - lr * weight_decay)
    if bias_correction:
        return param - lr / (1 - beta1 ** step) * (exp_avg / (_sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + eps))
    return param - lr * (exp_avg / (_sqrt(exp_avg_sq) + eps))


def adamw(param: Number, grad: Number, state: dict[str, Any], *, lr: float, beta1: float = 0.9,
          beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01, bias_correction: bool = True) -> Number:
    """AdamW: `adam` with decoupled weight decay, p = p * (1 - lr * wd) before the Adam step."""
    return adam(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                decoupled=True, bias_correction=bias_correction)


RULES = {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam, "adamw": adamw}


def check_settings(rule: str, settings: dict[str, float]) -> None:
    """Refuse impossible settings with a SettingsError quoting the value (torch.optim's checks)."""
    from xlcollab.errors import SettingsError

    if rule not in RULES:
        raise SettingsError(f"unknown optimizer {rule!r} (choose from {', '.join(RULES)})")
    for key, value in settings.items():
        if isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingsError(f"{key} must be a finite number, got {value!r}")
        if key in ("beta1", "beta2", "alpha", "momentum", "dampening") and not 0 <= value < 1:
            raise SettingsError(f"{key} must be in [0, 1), got {value!r}")
        if key in ("lr", "eps", "weight_decay") and value < 0:
            raise SettingsError(f"{key} must be >= 0, got {value!r}")


def _torch_equivalent(rule: str, params: Iterable, settings: dict[str, Any]):
    """torch.optim's own optimizer when `rule` with `settings` is the same maths, else None."""
    import torch

    s = dict(settings)
    if rule == "sgd" and not s.get("dampening", 0.0):
        return torch.optim.SGD(params, lr=s["lr"], momentum=s.get("momentum", 0.0),
                               weight_decay=s.get("weight_decay", 0.0))
    if rule == "adagrad":
        return torch.optim.Adagrad(params, lr=s["lr"], eps=s.get("eps", 1e-10), weight_decay=s.get("weight_decay", 0.0))
    if rule == "rmsprop":
        return torch.optim.RMSprop(params, lr=s["lr"], alpha=s.get("alpha", 0.99), eps=s.get("eps", 1e-8),
                                   weight_decay=s.get("weight_decay", 0.0))
    if rule in ("adam", "adamw") and s.get("bias_correction", True):
        betas = (s.get("beta1", 0.9), s.get("beta2", 0.999))
        decoupled = rule == "adamw" or s.get("decoupled", False)
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        return cls(params, lr=s["lr"], betas=betas, eps=s.get("eps", 1e-8),
                   weight_decay=s.get("weight_decay", 0.01 if rule == "adamw" else 0.0))
    return None


def make_optimizer(rule: str, params: Iterable, **settings: Any):
    """An optimizer over `params` running `rule`: torch.optim's class where the maths is the same, else ours."""
    check_settings(rule, settings)
    params = list(params)
    found = _torch_equivalent(rule, params, settings)
    return found if found is not None else SheetOptimizer(params, rule, **settings)


def SheetOptimizer(params: Iterable, rule: str, **settings: Any):
    """A torch.optim.Optimizer that applies one of our rules in place (for the classic sheet forms)."""
    return _sheet_optimizer_class()(params, rule, settings)


@functools.cache
def _sheet_optimizer_class():
    """The class behind SheetOptimizer, made on first use: importing torch here keeps `xlcollab run` quick."""
    import torch

    class _SheetOptimizer(torch.optim.Optimizer):
        def __init__(self, params, rule: str, settings: dict[str, Any]):
            check_settings(rule, settings)
            self.rule = rule
            super().__init__(params, dict(settings))

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            fn = RULES[self.rule]
            for group in self.param_groups:
                settings = {k: v for k, v in group.items() if k != "params"}
                for p in group["params"]:
                    if p.grad is not None:
                        p.copy_(fn(p, p.grad, self.state[p], **settings))
            return loss

        def __repr__(self) -> str:
            return f"SheetOptimizer({self.rule}, {self.defaults})"

    _SheetOptimizer.__name__ = _SheetOptimizer.__qualname__ = "SheetOptimizer"
    return _SheetOptimizer


def _ratio_or_zero(num: Number, den: Number) -> Number:
    """num / den, and 0 where den is 0 (no step from a moment that holds no gradient yet): floats or tensors."""
    if isinstance(den, (float, int)):
        return num / den if den else 0.0 * num
    return (num / den).where(den != 0, num * 0)


def sheet_adam(param: Number, grad: Number, state: dict[str, Any], *, lr: float, beta1: float = 0.9,
               beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
               bias_correction: bool = True) -> Number:
    """Adam as the graddesc sheets compute it: `adam`, with β1^t and β2^t carried as running products.

    Sheet lines (as `adam`, except)::

        β1^t = β1^(t-1) · β1,  β2^t = β2^(t-1) · β2   (state: beta1_power, beta2_power; 1 before the first step)
        p = p - lr / (1 - β1^t) * (m / (sqrt(v) / sqrt(1 - β2^t) + eps))
        p = p - lr * (m / sqrt(v)), and no step while v = 0      (bias_correction=False: fast.ai's form, no ε)

    A product shrinks to 0 where a spreadsheet's β^t underflows into an error (#NUM! from t ≈ 6,700 for β = 0.9),
    and fast.ai's form without ε would divide 0 by 0 once v underflows. Same maths as torch.optim.Adam/AdamW
    (which compute β^t as a power) up to rounding.
    """
    if weight_decay and not decoupled:
        grad = grad + weight_decay * param
    state["step"] = state.get("step", 0) + 1
    power1 = state.get("beta1_power", 1.0) * beta1
    power2 = state.get("beta2_power", 1.0) * beta2
    exp_avg = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * grad
    exp_avg_sq = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * (grad * grad)
    state.update(exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, beta1_power=power1, beta2_power=power2)
    if weight_decay and decoupled:
        param = param * (1 - lr * weight_decay)
    if bias_correction:
        return param - lr / (1 - power1) * (exp_avg / (_sqrt(exp_avg_sq) / _sqrt(1 - power2) + eps))
    return param - lr * _ratio_or_zero(exp_avg, _sqrt(exp_avg_sq))


RULES["sheet_adam"] = sheet_adam
