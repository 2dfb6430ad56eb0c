"""The graddesc epochs computed as the tabs' rows compute them, by the rules of `xlcollab.core.optim`.

The long sequential scalar traces run on Python floats: the rules are written once for floats and tensors, and
float64 tensors give bit-identical results (tests/test_graddesc.py checks it), at a fraction of the cost per step.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from xlcollab.core.optim import RULES
from xlcollab.errors import DivergedError, SettingsError
from xlcollab.sheets.graddesc.layout import Layout
from xlcollab.sheets.graddesc.specs import FD_OFFSET, TRUE_A, TRUE_B, Spec

DIVERGED = 1e200        # a loss or parameter beyond this has diverged: the next squares overflow a sheet


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


def rule_settings(spec: Spec, inputs: dict[str, float], lr: float) -> dict[str, Any]:
    """The keyword settings of the tab's rule (xlcollab.core.optim) for one epoch at learning rate `lr`."""
    if spec.rule == "sgd":
        beta = inputs.get("beta", 0.0)
        return {"lr": lr, "momentum": beta, "dampening": beta}
    if spec.rule == "adagrad":
        return {"lr": lr, "eps": inputs["eps"]}
    if spec.rule == "rmsprop":
        return {"lr": lr, "alpha": inputs["beta"], "eps": inputs["eps"]}
    if spec.counter:
        return {"lr": lr, "beta1": inputs["beta1"], "beta2": inputs["beta2"], "eps": inputs["eps"],
                "weight_decay": inputs["wd"], "decoupled": spec.decoupled, "bias_correction": True}
    return {"lr": lr, "beta1": inputs["beta1"], "beta2": inputs["beta2"], "eps": 0.0, "bias_correction": False}


def epoch_lr(spec: Spec, inputs: dict[str, float], epochs_done: int) -> float:
    """The learning rate of the next epoch: constant, or lr·γ^epochs_done on the annealed tab."""
    return inputs["lr"] * inputs["lr_decay"] ** epochs_done if spec.anneal else inputs["lr"]


def run_epoch(spec: Spec, settings: dict[str, Any], a, b, state_a: dict, state_b: dict,
              xs: list[float], ys: list[float], rows: list[dict] | None = None):
    """One pass over the data, one step per point, exactly as the tab's rows compute it.

    a, b are floats or float64 tensors (bit-identical results); the state dicts are updated in place.
    Returns (a, b, epoch loss = mean of the rows' losses); `rows` collects every column's value.
    """
    rule = RULES[spec.rule]
    wd = settings.get("weight_decay", 0.0) if spec.l2 else 0.0
    total = 0.0
    for x, y in zip(xs, ys):
        pred = a * x + b
        err = pred - y
        loss = err * err
        if spec.l2:
            loss = loss + wd / 2 * (a * a + b * b)
        ga = 2 * err * x
        gb = 2 * err
        new_a = rule(a, ga, state_a, **settings)
        new_b = rule(b, gb, state_b, **settings)
        if rows is not None:
            row = {"x": x, "y": y, "a": a, "b": b, "pred": pred, "err": err, "loss": loss,
                   "ga": ga + wd * a if spec.l2 else ga, "gb": gb + wd * b if spec.l2 else gb,
                   "new_a": new_a, "new_b": new_b}
            if spec.fd:
                e_a, e_b = (a + FD_OFFSET) * x + b - y, a * x + (b + FD_OFFSET) - y  # the sheet squares with ^2
                row["fd_a"], row["fd_b"] = (e_a * e_a - loss) / FD_OFFSET, (e_b * e_b - loss) / FD_OFFSET
            if spec.counter:
                row["step"] = state_a["step"]
            for key, short, _ in spec.buffers:
                row[f"{short}_a"], row[f"{short}_b"] = state_a[key], state_b[key]
            rows.append(row)
        total = total + loss
        a, b = new_a, new_b
    return a, b, total / len(xs)


@dataclass
class Start:
    """Everything a run starts from: the tab's inputs and the state in its top cells."""
    inputs: dict[str, float]
    epoch: int
    a: float
    b: float
    state_a: dict[str, float]
    state_b: dict[str, float]

    @classmethod
    def fresh(cls, spec: Spec, inputs: dict[str, float] | None = None) -> "Start":
        """The state `reset` writes: a, b at their start values, buffers 0, epoch 0."""
        inputs = inputs or {inp.name: float(inp.default) for inp in spec.inputs}
        zeros = {key: 0.0 for key, _, _ in spec.buffers} | ({"step": 0} if spec.counter else {})
        return cls(dict(inputs), 0, inputs["start_a"], inputs["start_b"], dict(zeros), dict(zeros))

    def state_value(self, spec: Spec, name: str) -> float:
        """The value of the state cell `name` (one of spec.state_names)."""
        if name in ("epoch", "a", "b"):
            return getattr(self, name)
        if name == "step":
            return self.state_a["step"]
        key = next(k for k, short, _ in spec.buffers if name.startswith(short + "_"))
        return (self.state_a if name.endswith("_a") else self.state_b)[key]

    def set_state(self, spec: Spec, state: dict[str, float]) -> None:
        """Take the state cells' values (name -> value, as `state_value` names them)."""
        self.epoch, self.a, self.b = int(state["epoch"]), state["a"], state["b"]
        for key, short, _ in spec.buffers:
            self.state_a[key], self.state_b[key] = state[f"{short}_a"], state[f"{short}_b"]
        if spec.counter:
            self.state_a["step"] = self.state_b["step"] = int(state["step"])


def simulate(spec: Spec, start: Start, xs: list[float], ys: list[float], epochs: int,
             *, sheet: str | None = None) -> list[list[float]]:
    """Run `epochs` epochs from `start` (updated in place); one trace row per epoch, as the trace block holds it."""
    trace = []
    a, b = start.a, start.b
    for k in range(start.epoch, start.epoch + epochs):
        lr = epoch_lr(spec, start.inputs, k)
        a, b, loss = run_epoch(spec, rule_settings(spec, start.inputs, lr), a, b, start.state_a, start.state_b, xs, ys)
        if not (loss < DIVERGED and abs(a) < DIVERGED and abs(b) < DIVERGED):  # NaN fails too
            raise DivergedError(f"sheet '{sheet or spec.sheet}': the loss became {loss} in epoch {k + 1}; "
                                f"lower the learning rate (cell {Layout(spec, len(xs)).inputs['lr']})")
        row = [k + 1, a, b, loss, lr]
        for key, _, _ in spec.buffers:
            row += [start.state_a[key], start.state_b[key]]
        trace.append(row + ([start.state_a["step"]] if spec.counter else []))
    start.a, start.b, start.epoch = a, b, start.epoch + epochs
    return trace
