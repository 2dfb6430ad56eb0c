"""The spreadsheet update rules as tensor code: one functional rule per optimizer, torch.optim style.

Each rule takes one parameter and its gradient, updates the named buffers in `state` (the names
torch.optim uses: `momentum_buffer`, `sum`, `square_avg`, `exp_avg`, `exp_avg_sq`, `step`) and
returns the new parameter. The arithmetic is written once, in the order the sheets' formulas compute
it, and runs unchanged on torch tensors of any shape and on Python floats. Float64 tensors and floats
give bit-identical results (+ - * / are correctly rounded on both, and `exact_sqrt` makes the tensors'
sqrt so too), which lets the graddesc sheets run their long scalar traces on plain floats, far cheaper per
step than 0-d tensors, without changing a bit.

Buffers start at zero, as the sheets' top cells do. `Rule` runs a rule as an update of core.train's loop
(torch.optim's step(closure) protocol, without torch.optim), and `LBFGS` is the sheet solves' quasi-Newton
method. This module never imports torch, so `xlcollab run` (plain floats) never pays for it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from xlcollab.core import checks

Number = Any  # a float or a torch.Tensor: the rules use only + - * / and sqrt


def exact_sqrt(x: Number) -> Number:
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
    return param - lr * (grad / (exact_sqrt(total) + eps))


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
    return param - lr * (grad / (exact_sqrt(avg) + eps))


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
        denom = exact_sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + eps
        return param - lr / (1 - beta1 ** step) * (exp_avg / denom)
    return param - lr * (exp_avg / (exact_sqrt(exp_avg_sq) + eps))


RULES = {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


# -- the rules and L-BFGS as updates of the training loop (xlcollab.core.train) --------------------------------------
Closure = Callable[[], Any]


def _check_rule_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """torch.optim's range checks on a rule's settings; CheckError quotes the bad value."""
    for key, value in settings.items():
        if key in ("decoupled", "bias_correction"):
            if not isinstance(value, bool):
                raise checks.CheckError(f"{key} must be True or False, found {checks.describe(value)}")
        elif key in ("beta1", "beta2", "alpha", "momentum", "dampening"):
            checks.number(value, key, lo=0, hi=1, hi_open=True)
        elif key == "lr":
            checks.number(value, key, lo=0, lo_open=True)
        elif key in ("eps", "weight_decay"):
            checks.number(value, key, lo=0)
        else:
            raise checks.CheckError(f"unknown setting {key!r} of an update rule")
    return settings


class Rule:
    """One rule above as the training loop's update: `step(closure)` evaluates the loss and its gradient
    (the closure), then moves each tensor in place by the rule, keeping its buffers in `state`.

    torch.optim's protocol without torch.optim: creating a torch.optim optimizer imports torch._dynamo
    (seconds), more than a whole sheet solve. `param_groups[0]` holds the settings, so a schedule can set "lr".
    """

    def __init__(self, params: Iterable, rule: str, **settings: Any) -> None:
        self.rule = RULES[checks.choice(rule, "the update rule", tuple(RULES))]
        self.params = list(params)
        self.param_groups = [_check_rule_settings(dict(settings))]
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, closure: Closure) -> Any:
        """One update from the gradient the closure leaves in `.grad`; returns the closure's loss."""
        loss = closure()
        settings = self.param_groups[0]
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                p.detach().copy_(self.rule(p.detach(), p.grad, state, **settings))
        return loss


class LBFGS:
    """L-BFGS over float64 tensors: the inverse Hessian of the last `history` steps, backtracking (Armijo)
    line search; the training loop's update (`step(closure)`, as torch.optim.LBFGS with max_iter=1).

    One `step` is one iteration (one direction, one line search), i.e. one epoch of a sheet's trace. The first
    step is scaled like torch.optim.LBFGS's (min(1, 1/|g|_1) * lr); later ones try lr, then halve. The vector
    algebra runs in numpy on the parameters flattened into one vector: on a few hundred numbers that is many
    times cheaper than torch calls; the gradients still come from autograd, through the closure. `step` reuses
    the loss and gradient of the point the last line search accepted (the parameters are unchanged since), so
    an iteration costs one closure call when the first trial step is accepted. `converged` turns true when no
    step changes the parameters any more (a minimum to machine precision), the gradient vanishes, or no partial
    derivative at the point a step accepts exceeds `tolerance_grad` (torch.optim.LBFGS's first-order test).
    """

    def __init__(self, params: Iterable, lr: float = 1.0, history: int = 20, tolerance_grad: float = 0.0) -> None:
        self.params = list(params)
        self._flat = [p.detach().view(-1) if p.is_contiguous() else p.detach() for p in self.params]  # _set's targets
        self.param_groups = [{"lr": checks.number(lr, "lr", lo=0, lo_open=True),
                              "history": checks.whole(history, "history", lo=1)}]
        self.tolerance_grad = checks.number(tolerance_grad, "tolerance_grad", lo=0)
        self._forget()
        self.converged = False
        self._at: tuple[np.ndarray, Any, float, np.ndarray] | None = None  # (x, loss, f, g) of the accepted point
        self._at_versions: list[int] = []  # the parameters' version counters when _at was taken
        from torch import from_numpy  # L-BFGS steps tensors: torch is loaded already; the rules need no torch

        self._from_numpy = from_numpy

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _get(self) -> np.ndarray:
        return np.concatenate([p.detach().cpu().numpy().ravel() for p in self.params])

    def _versions(self) -> list[int]:
        """torch's in-place version counter of each parameter: unchanged means no one has moved them since."""
        return [p._version for p in self.params]

    def _set(self, x: np.ndarray) -> None:
        i = 0
        for flat in self._flat:
            n = flat.numel()
            part = self._from_numpy(x[i:i + n])
            flat.copy_(part if flat.dim() == 1 else part.view(flat.shape))
            i += n

    def _grad(self) -> np.ndarray:
        grads = [(p.grad if p.grad is not None else p.detach() * 0).cpu().numpy().ravel() for p in self.params]
        return grads[0] if len(grads) == 1 else np.concatenate(grads)  # the tensor is the closure's own: no copy

    def _evaluate(self, closure: Closure) -> tuple[Any, float, np.ndarray]:
        loss = closure()
        return loss, float(loss.detach()), self._grad()

    def _forget(self) -> None:
        """No curvature pairs: m = 0 of the stored steps S and gradient changes Y."""
        self.m, self.o = 0, 0
        self.S = self.Y = np.zeros((0, 0))

    def _remember(self, s: np.ndarray, y: np.ndarray, history: int, sy: float, yy: float) -> None:
        """Add the pair (s, y) (sy = s·y, yy = y·y, as the caller has them), dropping the oldest beyond `history`.
        The pairs are rows o..o+m of S and Y (oldest first), a window sliding down buffers of 2 * history rows, moved
        back to their top once per `history` pairs. Kept up to date with them: R, the upper triangle of S Y', and its inverse, which grows by one column
        (the inverse of [[R, c], [0, d]] is [[R⁻¹, -R⁻¹c/d], [0, 1/d]]) and loses its first row and column with the
        oldest pair (R⁻¹'s trailing block is the trailing block's inverse): the direction needs no solve."""
        cap = 2 * history
        if not self.m or len(self.S) != cap:  # the first pair, or a new history length: start afresh
            n = len(s)
            self.S, self.Y = np.empty((cap, n)), np.empty((cap, n))
            self.R, self.Rinv = np.zeros((cap, cap)), np.zeros((cap, cap))
            self.m, self.o = 0, 0
        o, m = self.o, self.m
        if m == history:  # drop the oldest
            o, m = o + 1, m - 1
        if o + m == cap:  # the window reached the buffers' end: move it to their top
            for a in (self.S, self.Y):
                a[:m] = a[o:o + m]
            for a in (self.R, self.Rinv):
                a[:m, :m] = a[o:o + m, o:o + m]
            o = 0
        k = o + m
        self.S[k], self.Y[k] = s, y
        d = sy
        c = self.S[o:k] @ y
        self.R[o:k, k], self.R[k, k] = c, d
        self.Rinv[o:k, k], self.Rinv[k, k] = self.Rinv[o:k, o:k] @ c / -d, 1.0 / d
        self.R[k, o:k] = self.Rinv[k, o:k] = 0.0
        self.o, self.m, self.yy = o, m + 1, yy

    def direction(self, g: np.ndarray) -> np.ndarray:
        """-H g, H the inverse Hessian the stored pairs imply (the two-loop recursion's), in Byrd, Nocedal &
        Schnabel's compact form (1994): with R the upper triangle of S Y' and γ = s·y / y·y of the newest pair,
        a = R⁻¹ S g, q = g - Y'a, b = R⁻ᵀ(γ Y q + (R - diag R)' a), H g = γ q + S'(a - b). A few array
        operations, where the recursion takes four per pair (the sheets' solves are dominated by such overhead)."""
        if not self.m:
            return -g * min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-300))  # a zero gradient: no step, converged
        w = slice(self.o, self.o + self.m)
        S, Y, R, Rinv = self.S[w], self.Y[w], self.R[w, w], self.Rinv[w, w]
        gamma = R[-1, -1] / self.yy
        a = Rinv @ (S @ g)
        q = g - a @ Y
        b = (gamma * (Y @ q) + a @ R - R.diagonal() * a) @ Rinv
        return -(gamma * q + (a - b) @ S)

    def step(self, closure: Closure) -> Any:
        """One iteration; returns the loss at the point it started from (a NaN/inf loss: no step)."""
        if self._at is not None and (self._at_versions == self._versions()  # untouched since the line search
                                     or np.array_equal(self._at[0], self._get())):  # or moved back onto it
            x, loss, f, g = self._at
        else:
            x = self._get()
            loss, f, g = self._evaluate(closure)
        if not math.isfinite(f):
            return loss  # diverged: the loop sees the loss and stops
        if not np.isfinite(g).all():  # e.g. sqrt's slope at an exact zero RMSE: nowhere left to go
            self.converged = True
            return loss
        lr, history = self.param_groups[0]["lr"], self.param_groups[0]["history"]
        d = self.direction(g)
        slope = float(g.dot(d))
        if slope >= 0:  # not a descent direction: forget the curvature pairs, go downhill
            self._forget()
            d, slope = -g, -float(g.dot(g))
        if slope > -1e-30:
            self.converged = True
            return loss
        t = lr
        while True:
            x_new = x + t * d
            self._set(x_new)
            loss_new, f_new, g_new = self._evaluate(closure)
            if math.isfinite(f_new) and f_new <= f + 1e-4 * t * slope:
                break
            t *= 0.5
            if t * float(np.abs(d).max()) < 1e-16 * (1 + float(np.abs(x).max())):
                self.converged = True  # no step changes x any more: a minimum to machine precision
                self._set(x)
                self._at, self._at_versions = (x, loss, f, g), self._versions()
                return loss
        s, y = x_new - x, g_new - g
        ys, yy = float(y.dot(s)), float(y.dot(y))
        if ys > 1e-10 * math.sqrt(float(s.dot(s)) * yy):  # curvature, scale-free
            self._remember(s, y, history, ys, yy)
        self._at, self._at_versions = (x_new, loss_new, f_new, g_new), self._versions()
        if self.tolerance_grad and float(np.abs(g_new).max()) <= self.tolerance_grad:
            self.converged = True  # first-order optimal, in numpy: a torch norm per epoch costs ~10 µs in situ
        return loss


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
        return param - lr / (1 - power1) * (exp_avg / (exact_sqrt(exp_avg_sq) / exact_sqrt(1 - power2) + eps))
    return param - lr * _ratio_or_zero(exp_avg, exact_sqrt(exp_avg_sq))

