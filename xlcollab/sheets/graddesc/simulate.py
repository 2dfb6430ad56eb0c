"""The graddesc epochs computed as the tabs' rows compute them, by the rules of `xlcollab.core.optim`.

The long sequential scalar traces run on Python floats: the rules are written once for floats and tensors, and
float64 tensors give bit-identical results (tests/test_graddesc.py checks it), at a fraction of the cost per step.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from xlcollab.core.optim import RULES, sheet_adam
from xlcollab.errors import DivergedError, SettingsError
from xlcollab.sheets.graddesc.layout import Layout
from xlcollab.sheets.graddesc.specs import FD_OFFSET, TRUE_A, TRUE_B, Spec

DIVERGED = 1e200        # a loss or parameter beyond this has diverged: the next squares overflow a sheet
SHEET_RULES = {**RULES, "sheet_adam": sheet_adam}   # Spec.rule -> the update of each row


def make_data(seed: int = 42, n_points: int = 29, noise: float = 0.0) -> tuple[list[int], list[float]]:
    """x: random integers 1..100; y = 2x + 30 (+ Gaussian noise of std `noise`), from a fixed seed."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 1 <= n_points <= 1000:
        raise SettingsError(f"n_points must be an integer from 1 to 1000, got {n_points!r}")
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise SettingsError(f"noise must be a number >= 0, got {noise!r}")
    rng = random.Random(seed)
    xs = [rng.randint(1, 100) for _ in range(n_points)]
    ys = [TRUE_A * x + TRUE_B + (rng.gauss(0.0, noise) if noise else 0) for x in xs]
    return xs, ys


def rule_settings(spec: Spec, start: "Start") -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword settings of the tab's rule (xlcollab.core.optim) for a and for b in the next epoch."""
    inputs, lr = start.inputs, start.lr
    if spec.rms_scaled:  # fast.ai's Adagrad: lr / the RMS of the parameter's gradients so far
        rms_a, rms_b = start.state["rms_a"], start.state["rms_b"]
        return {"lr": lr / rms_a if rms_a else 0.0}, {"lr": lr / rms_b if rms_b else 0.0}
    if spec.rule == "sgd":
        beta = inputs.get("beta", 0.0)
        settings = {"lr": lr, "momentum": beta, "dampening": beta}
    elif spec.rule == "adagrad":
        settings = {"lr": lr, "eps": inputs["eps"]}
    elif spec.rule == "rmsprop":
        settings = {"lr": lr, "alpha": inputs["beta"], "eps": inputs["eps"]}
    elif spec.counter:
        settings = {"lr": lr, "beta1": inputs["beta1"], "beta2": inputs["beta2"], "eps": inputs["eps"],
                    "weight_decay": inputs["wd"], "decoupled": spec.decoupled, "bias_correction": True}
    else:
        settings = {"lr": lr, "beta1": inputs["beta1"], "beta2": inputs["beta2"], "eps": 0.0, "bias_correction": False}
    return settings, settings


@dataclass
class Epoch:
    """What one pass over the data gives: a and b after it, the mean of the rows' losses, and the sums of the
    squared gradient columns (what the RMS cells of the "this epoch" block add up)."""
    a: Any
    b: Any
    loss: Any
    sumsq_a: Any
    sumsq_b: Any


def run_epoch(spec: Spec, settings: tuple[dict[str, Any], dict[str, Any]], a, b, state_a: dict, state_b: dict,
              xs: list[float], ys: list[float], rows: list[dict] | None = None) -> Epoch:
    """One pass over the data, one step per point, exactly as the tab's rows compute it.

    a, b are floats or float64 tensors (bit-identical results); the state dicts are updated in place;
    `rows` collects every column's value.
    """
    rule = SHEET_RULES[spec.rule]
    settings_a, settings_b = settings
    wd = settings_a.get("weight_decay", 0.0) if spec.l2 else 0.0
    total = sumsq_a = sumsq_b = 0.0
    for x, y in zip(xs, ys):
        pred = a * x + b
        err = pred - y
        loss = err * err
        if spec.l2:
            loss = loss + wd / 2 * (a * a + b * b)
        ga = 2 * err * x
        gb = 2 * err
        new_a = rule(a, ga, state_a, **settings_a)
        new_b = rule(b, gb, state_b, **settings_b)
        if spec.l2:  # the gradient columns show the L2 term the rule added
            ga, gb = ga + wd * a, gb + wd * b
        if rows is not None:
            rows.append(_row(spec, x, y, a, b, pred, err, loss, ga, gb, new_a, new_b, state_a, state_b))
        total = total + loss
        sumsq_a, sumsq_b = sumsq_a + ga * ga, sumsq_b + gb * gb
        a, b = new_a, new_b
    return Epoch(a, b, total / len(xs), sumsq_a, sumsq_b)


def _row(spec: Spec, x, y, a, b, pred, err, loss, ga, gb, new_a, new_b, state_a: dict, state_b: dict) -> dict:
    """Every column of one step row, by the step table's keys."""
    row = {"x": x, "y": y, "a": a, "b": b, "pred": pred, "err": err, "loss": loss, "ga": ga, "gb": gb,
           "new_a": new_a, "new_b": new_b}
    if spec.fd:
        e_a, e_b = (a + FD_OFFSET) * x + b - y, a * x + (b + FD_OFFSET) - y  # the sheet squares with ^2
        row["fd_a"], row["fd_b"] = (e_a * e_a - loss) / FD_OFFSET, (e_b * e_b - loss) / FD_OFFSET
    if spec.counter:
        row |= {"step": state_a["step"], "b1t": state_a["beta1_power"], "b2t": state_a["beta2_power"]}
    for key, short, _ in spec.buffers:
        row[f"{short}_a"], row[f"{short}_b"] = state_a[key], state_b[key]
    return row


# the per-parameter state of the rules, by the name of its state cell (without the _a / _b of per-parameter cells)
_SHARED = {"step": "step", "b1t": "beta1_power", "b2t": "beta2_power"}


@dataclass
class Start:
    """Everything a run starts from: the tab's inputs and its state cells (Spec.state_names -> value)."""
    inputs: dict[str, float]
    state: dict[str, float]

    @classmethod
    def fresh(cls, spec: Spec, inputs: dict[str, float] | None = None,
              data: tuple[list[float], list[float]] | None = None) -> "Start":
        """The state `reset` writes: a, b at their start values, buffers 0, epoch 0, the lr of epoch 1.

        fast.ai's Adagrad divides epoch 1's lr by the RMS of the gradients at the start values, over `data`.
        """
        inputs = dict(inputs or {inp.name: float(inp.default) for inp in spec.inputs})
        state = {name: 0.0 for name in spec.state_names} | {"epoch": 0, "a": inputs["start_a"], "b": inputs["start_b"]}
        if spec.schedule != "constant":
            state["lr_now"] = inputs["lr"]
        if spec.counter:
            state |= {"step": 0, "b1t": 1.0, "b2t": 1.0}
        if spec.rms_scaled:
            if data is None:
                raise ValueError(f"{spec.sheet}: the start needs the data (its RMS is measured at the start values)")
            xs, ys = data
            errs = [2 * (state["a"] * x + state["b"] - y) for x, y in zip(xs, ys)]
            rms_a = math.sqrt(sum((e * x) * (e * x) for e, x in zip(errs, xs)) / len(xs))
            rms_b = math.sqrt(sum(e * e for e in errs) / len(xs))
            # 15 significant digits: what a spreadsheet shows, and a number every file format stores exactly
            state["rms_a"], state["rms_b"] = float(f"{rms_a:.15g}"), float(f"{rms_b:.15g}")
        return cls(inputs, state)

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])

    @property
    def a(self) -> float:
        return self.state["a"]

    @property
    def b(self) -> float:
        return self.state["b"]

    @property
    def lr(self) -> float:
        """The learning rate of the next epoch."""
        return self.state.get("lr_now", self.inputs["lr"])

    def rule_states(self, spec: Spec) -> tuple[dict[str, Any], dict[str, Any]]:
        """The rule's state dicts of a and of b (torch.optim's buffer names), from the state cells."""
        states = []
        for p in ("a", "b"):
            rule_state = {key: self.state[f"{short}_{p}"] for key, short, _ in spec.buffers}
            if spec.counter:
                rule_state |= {key: self.state[name] for name, key in _SHARED.items()}
            states.append(rule_state)
        return states[0], states[1]

    def take(self, spec: Spec, epoch: Epoch, state_a: dict[str, Any], state_b: dict[str, Any], n: int) -> None:
        """After an epoch: its a, b and rule states, and the next epoch's lr and RMS, as Run copies them."""
        s, done = self.state, self.state["epoch"]
        if spec.rms_scaled:  # the RMS of every gradient so far: SQRT((rms·rms·epochs·n + SUMSQ(gradients)) / ((epochs+1)·n))
            s["rms_a"] = math.sqrt((s["rms_a"] * s["rms_a"] * done * n + epoch.sumsq_a) / ((done + 1) * n))
            s["rms_b"] = math.sqrt((s["rms_b"] * s["rms_b"] * done * n + epoch.sumsq_b) / ((done + 1) * n))
        s |= {"epoch": done + 1, "a": epoch.a, "b": epoch.b}
        for key, short, _ in spec.buffers:
            s[f"{short}_a"], s[f"{short}_b"] = state_a[key], state_b[key]
        if spec.counter:
            s |= {name: state_a[key] for name, key in _SHARED.items()}
        if spec.schedule == "anneal":
            s["lr_now"] = s["lr_now"] * self.inputs["lr_decay"]
        elif spec.schedule == "jump":
            g_rms = math.sqrt((epoch.sumsq_a + epoch.sumsq_b) / (2 * n))
            ratio = g_rms / s["g_rms"] if s["g_rms"] else 1.0
            if ratio > self.inputs["jump"]:
                s["lr_now"] = s["lr_now"] / self.inputs["divisor"]
            s["g_rms"] = g_rms


def simulate(spec: Spec, start: Start, xs: list[float], ys: list[float], epochs: int,
             *, sheet: str | None = None) -> list[list[float]]:
    """Run `epochs` epochs from `start` (updated in place); one trace row per epoch, as the trace block holds it."""
    trace = []
    where = f"sheet '{sheet or spec.sheet}'"
    for _ in range(epochs):
        lr, k = start.lr, start.epoch + 1
        state_a, state_b = start.rule_states(spec)
        try:
            epoch = run_epoch(spec, rule_settings(spec, start), start.a, start.b, state_a, state_b, xs, ys)
        except ZeroDivisionError:  # ε = 0 and a gradient of exactly 0: the sheet shows #DIV/0! too
            raise DivergedError(f"{where}: a step divided 0 by 0 in epoch {k} (a zero gradient with ε = 0); "
                                f"set ε above 0") from None
        if not (epoch.loss < DIVERGED and abs(epoch.a) < DIVERGED and abs(epoch.b) < DIVERGED):  # NaN fails too
            raise DivergedError(f"{where}: the loss became {epoch.loss} in epoch {k}; "
                                f"lower the learning rate (cell {Layout(spec, len(xs)).inputs['lr']})")
        start.take(spec, epoch, state_a, state_b, len(xs))
        trace.append([k, start.a, start.b, epoch.loss, lr] + [start.state[name] for name in spec.trace_columns[5:]])
    return trace
