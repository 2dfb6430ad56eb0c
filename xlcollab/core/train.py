"""The one training loop: forward -> backward -> update, one trace row per epoch (micrograd's loop, batched).

`CollabFit.fit` runs it in minibatches with torch.optim; the collab sheet solves run it on one full batch in
float64 with `core.optim`'s rules and L-BFGS, and import no torch.optim (whose first use imports torch._dynamo,
seconds of a sheet solve that otherwise takes a fraction of one).

The update is anything with `zero_grad()` and `step(closure) -> loss`, torch.optim's protocol: the closure clears
the gradients, evaluates the objective at the current parameters, back-propagates and returns the loss; `step`
may call it more than once (a line search) and returns the loss of the point it started from, the very tensor a
closure call returned. torch.optim's optimizers qualify, and so do `optim.Rule` and `optim.LBFGS`. An update
whose `converged` attribute turns true ends the run early.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from xlcollab.errors import DivergedError

Batch = Any
Objective = Callable[[Batch], tuple[Any, Any]]  # batch -> (loss to minimise, data term the trace reports)


_ENGINE: list[Any] = []  # found on first use: this module does not import torch (the CLI's other commands need none)


def _engine() -> Any:
    """torch's autograd engine, where torch.autograd.backward hands the work over (None if this torch hides it)."""
    try:
        from torch.autograd.variable import Variable

        return Variable._execution_engine if hasattr(Variable._execution_engine, "run_backward") else None
    except (ImportError, AttributeError):
        return None


def backward(loss: Any) -> None:
    """loss.backward() for a CPU loss of one element, straight into the autograd engine: torch.autograd.backward's
    argument handling costs ~25 µs a call, a sixth of a collab tab's whole evaluation, which its solve runs
    hundreds of times. Anything else (a loss with no graph behind it, e.g. a fused step's, whose backward does
    nothing; a GPU loss, whose backward runs on the device's threads and needs the context torch hands them; a torch
    without the engine object) goes the usual way: its own .backward()."""
    if not _ENGINE:
        _ENGINE.append(_engine())
    engine = _ENGINE[0]
    if (engine is None or getattr(loss, "grad_fn", None) is None  # not a tensor off a graph (a fused step's loss)
            or loss.numel() != 1 or loss.device.type != "cpu"):
        loss.backward()
        return
    engine.run_backward((loss,), (loss.new_ones(loss.shape),), False, False, (), True, True)


def full_batch(epoch: int) -> list[tuple[None, int]]:
    """The batches of a full-batch run: one, of weight 1 (the objective knows its data)."""
    return [(None, 1)]


def one_cycle(pct: float, lr: float, pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5) -> float:
    """fastai's one-cycle: cosine from lr/div up to lr over pct_start, then cosine down to lr/div_final."""
    def cos(a: float, b: float, p: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * p)) / 2
    if pct < pct_start:
        return cos(lr / div, lr, pct / pct_start)
    return cos(lr, lr / div_final, (pct - pct_start) / (1 - pct_start))


def schedule_lr(schedule: str, pct: float, lr: float) -> float:
    """Learning rate at fraction pct (0 <= pct < 1) of the run: "one-cycle", "annealed" (cosine to 0), "constant"."""
    if schedule == "one-cycle":
        return one_cycle(pct, lr)
    if schedule == "annealed":
        return lr * (1 + math.cos(math.pi * pct)) / 2
    return lr


def sgdr(step: int, cycle_steps: int, lr: float, cycle_mult: int = 1) -> float:
    """fastai v0.7's SGDR (CosAnneal) at `step` (from 0): cosine from lr towards 0 over each cycle, back to lr at the
    start of the next; the first cycle has cycle_steps steps, each next one cycle_mult times the one before, and the
    first 1/20 of the first cycle runs at lr / 100 (fastai's warm-up). Past the warm-up it is torch's
    CosineAnnealingWarmRestarts(T_0=cycle_steps, T_mult=cycle_mult, eta_min=0) stepped once per step."""
    if step < cycle_steps / 20:
        return lr / 100
    t, length = step, cycle_steps
    while t >= length:
        t, length = t - length, length * cycle_mult
    return lr / 2 * (1 + math.cos(math.pi * t / length))


def lr_schedule(schedule: str, lr: float, epochs: int, steps_per_epoch: int, cycle_len: int = 1,
                cycle_mult: int = 1) -> Callable[[int], float]:
    """step -> learning rate for a run of `epochs` epochs of `steps_per_epoch` steps (sgdr: cycles of epochs)."""
    if schedule == "sgdr":
        return lambda step: sgdr(step, cycle_len * steps_per_epoch, lr, cycle_mult)
    return lambda step: schedule_lr(schedule, step / (epochs * steps_per_epoch), lr)


def _set_lr(update: Any, lr: float) -> None:
    for group in update.param_groups:
        group["lr"] = lr


def _progress_bar(progress: bool | None, epochs: int, desc: str) -> Any:
    """A tqdm bar over epochs when asked (None: only when stderr is a terminal); it leaves no line behind."""
    if not (progress or (progress is None and sys.stderr.isatty())):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=desc, unit="epoch", leave=False, file=sys.stderr)


def _report(bar: Any, row: dict[str, Any], on_epoch: Callable[[dict[str, Any]], None] | None) -> None:
    """Hand the epoch's row on with the bar wiped off its line first, then redraw the bar one epoch on: whatever
    on_epoch prints (the CLI's table row, on stdout or stderr) lands on a clean line of the same terminal."""
    if bar is None:
        if on_epoch is not None:
            on_epoch(row)
        return
    bar.clear()
    if on_epoch is not None:
        on_epoch(row)
    bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")}, refresh=False)
    bar.update()
    bar.refresh()


def _data_term(loss: Any, evaluations: list[tuple[Any, Any]], update: Any) -> Any:
    """The data term of the evaluation whose loss tensor the step returned (the point it started from)."""
    data = next((d for l_, d in evaluations if l_ is loss), None)
    if data is None:
        raise TypeError(f"{type(update).__name__}.step must return the loss tensor a closure call returned")
    return data


def _check_finite(row: dict[str, Any], name: str, lr_hint: float | None) -> None:
    """DivergedError for the first NaN or infinite number of an epoch's row, naming the epoch."""
    bad = next(((k, v) for k, v in row.items() if k != "epoch" and not math.isfinite(v)), None)
    if bad is not None:
        hint = "" if lr_hint is None else f" (lr {lr_hint:g}); try a lower learning rate, e.g. --lr {lr_hint / 10:g}"
        raise DivergedError(f"{name + ': ' if name else ''}the {bad[0]} became {bad[1]} in epoch {row['epoch']}{hint}")


def train(update: Any, objective: Objective, epochs: int, *,
          batches: Callable[[int], Iterable[tuple[Batch, int]]] = full_batch,
          lr_at: Callable[[int], float] | None = None,
          evaluate: Callable[[], dict[str, float]] | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None,
          progress: bool | None = False, name: str = "", lr_hint: float | None = None,
          reduce_total: Callable[[Any, int], tuple[Any, int]] | None = None) -> list[dict[str, Any]]:
    """Run `epochs` epochs; return one row per epoch: epoch (from 1), loss, evaluate()'s numbers, lr, seconds.

    batches(epoch) gives (batch, weight) pairs; objective(batch) gives (loss, data): the loss is minimised, and
    row["loss"] is the weighted mean over the epoch of each step's data term taken at the point the step started
    from (fastai's train loss; a full batch: the loss before the epoch's step). lr_at(step) sets the learning rate
    of every step (counted from 0 over the run). A NaN or infinite loss or evaluate() number stops the run with
    DivergedError naming the epoch (prefixed by `name`) and suggesting lr_hint / 10. reduce_total(total, weight),
    if given, combines an epoch's data-term total and weight with other processes' (a distributed run).
    """
    rows: list[dict[str, Any]] = []
    evaluations: list[tuple[Any, Any]] = []  # (loss, data) of the closure calls since the step before
    bar = _progress_bar(progress, epochs, name or "fit")
    step, lr = 0, None
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            total, weight = None, 0
            for batch, n in batches(epoch - 1):
                if lr_at is not None:
                    lr = lr_at(step)
                    _set_lr(update, lr)

                def closure(batch: Batch = batch) -> Any:
                    update.zero_grad()
                    loss, data = objective(batch)
                    backward(loss)
                    evaluations.append((loss, data))
                    return loss

                del evaluations[:-1]  # keep the last: a step may start from the point the step before accepted
                part = _data_term(update.step(closure), evaluations, update).detach()
                part = part if n == 1 else part * n  # a full batch: no tensor op for the weight
                total = part if total is None else total + part
                weight += n
                step += 1
            if reduce_total is not None:
                total, weight = reduce_total(total, weight)
            row = {"epoch": epoch, "loss": float(total) / weight}
            row.update(evaluate() if evaluate is not None else {})
            _check_finite(row, name, lr_hint)
            if lr is not None:
                row["lr"] = lr
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            _report(bar, row, on_epoch)
            if getattr(update, "converged", False):
                break
    finally:
        if bar is not None:
            bar.close()
    return rows
