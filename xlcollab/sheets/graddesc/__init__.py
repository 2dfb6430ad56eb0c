"""The graddesc workbook: fit y = a·x + b one SGD step per row, one tab per update rule, run by torch's rules.

Tabs: `data` (x, y = 2x + 30 [+ noise]), one tab per optimizer (SPECS: basic SGD, momentum, adagrad,
rmsprop, adam, adamw, l2, adam_ann) and `compare` (every optimizer's loss per epoch on one chart).

An optimizer tab, top to bottom:
  rows 5..   inputs (yellow, column B; names start_a, start_b, lr, beta/beta1/beta2, eps, wd, lr_decay),
             the state carried into the first row (blue, column F; names epoch, a, b, step, m_a, m_b, ...),
             outputs (green, column J; names loss, end_a, end_b, lr_now);
  row 15/16+ the step table (name `steps`): one row per data point, formulas only: the row's a and b,
             prediction, error, loss, gradients, optimizer state, new a and b (which the next row takes);
  beside it  the trace (name `trace`, TRACE_ROWS rows): epoch, a, b, loss, lr, state, written by `run`,
             with an "Error by epoch" line chart over it.
The defined names above are the only cells `run_book` / `reset_book` read or write: every formula
refers to cells, so a name may be moved only together with the formulas that use it.

`run_book` does what the original VBA Run button did: it runs the tab's own rule (xlcollab.core.optim) on
the tab's data from the tab's state, N epochs, appends one trace row per epoch, and writes the final
a, b and state into the top cells so that the formulas show the next epoch. The long sequential scalar
traces run on Python floats: the rules are written once for floats and tensors, and float64 tensors
give bit-identical results (tests/test_graddesc.py checks it), at a fraction of the cost per step.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl.utils.cell import get_column_letter, quote_sheetname

from xlcollab.book.base import Book, bounds, cell_name, range_name
from xlcollab.errors import DivergedError, SettingsError, WorkbookError
from xlcollab.core.optim import RULES

DATA = "data"
COMPARE = "compare"
TRACE_ROWS = 2000       # capacity of every trace block: `run` refuses when it would overflow
TOP = 5                 # first row of the inputs / state / outputs blocks
HEADER = 15             # header row of the step table and the trace
FIRST = HEADER + 1      # first step row and first trace row
DATA_FIRST = 5          # first data row on the `data` tab
FD_OFFSET = 0.01        # the finite-difference offset of the basic SGD tab
TRUE_A, TRUE_B = 2, 30
DIVERGED = 1e200        # a loss or parameter beyond this has diverged: the next squares overflow a sheet


@dataclass(frozen=True)
class Input:
    name: str      # defined name of the input cell
    label: str
    default: float
    kind: str      # start | lr | beta | eps | wd | gamma: what values are allowed


@dataclass(frozen=True)
class Spec:
    """One optimizer tab: its inputs, its rule and the rule's fixed options, its state buffers."""
    sheet: str
    rule: str                                  # key of xlcollab.core.optim.RULES
    inputs: tuple[Input, ...]
    buffers: tuple[tuple[str, str, str], ...]  # (rule state key, short name, header label)
    note: str
    differs: str
    counter: bool = False                      # bias-corrected Adam: the step count t is state
    l2: bool = False                           # weight decay as L2 in the loss (grad + wd·p)
    decoupled: bool = False                    # AdamW's decoupled decay
    anneal: bool = False                       # lr = lr0 · γ^epoch
    fd: bool = False                           # finite-difference estimates beside the gradients

    @property
    def columns(self) -> list[str]:
        cols = ["x", "y", "a", "b", "pred", "err", "loss", "ga", "gb"]
        cols += ["fd_a", "fd_b"] if self.fd else []
        cols += ["step"] if self.counter else []
        for _, short, _ in self.buffers:
            cols += [f"{short}_a", f"{short}_b"]
        return cols + ["new_a", "new_b"]

    @property
    def state_names(self) -> list[str]:
        names = ["epoch", "a", "b"] + (["step"] if self.counter else [])
        for _, short, _ in self.buffers:
            names += [f"{short}_a", f"{short}_b"]
        return names

    @property
    def trace_columns(self) -> list[str]:
        cols = ["epoch", "a", "b", "loss", "lr"]
        for _, short, _ in self.buffers:
            cols += [f"{short}_a", f"{short}_b"]
        return cols + (["step"] if self.counter else [])


_START = (Input("start_a", "start a", 1, "start"), Input("start_b", "start b", 1, "start"))
_M, _V = ("exp_avg", "m", "m = β1·m + (1-β1)·g"), ("exp_avg_sq", "v", "v = β2·v + (1-β2)·g²")

# adamw and l2 share torch's Adam settings, so the two tabs differ only in where the weight decay goes
_TORCH_ADAM = _START + (Input("lr", "learning rate", 0.05, "lr"), Input("beta1", "β1", 0.9, "beta"),
                        Input("beta2", "β2", 0.999, "beta"), Input("eps", "ε", 1e-8, "eps"),
                        Input("wd", "weight decay", 1e-3, "wd"))

SPECS: dict[str, Spec] = {s.sheet: s for s in (
    Spec("basic SGD", "sgd", _START + (Input("lr", "learning rate", 1e-4, "lr"),), (),
         "Plain SGD, one step per row: new p = p - lr·de/dp. Beside the analytic gradients, finite-difference "
         f"estimates: (loss at p + {FD_OFFSET} - loss) / {FD_OFFSET}.",
         "Same maths as torch.optim.SGD(lr), equal up to rounding (torch fuses p - lr·g into one multiply-add; a "
         "spreadsheet rounds twice). The estimates are shown only: the update uses the analytic gradients.",
         fd=True),
    Spec("momentum", "sgd", _START + (Input("lr", "learning rate", 3e-4, "lr"), Input("beta", "β (momentum)", 0.9, "beta")),
         (("momentum_buffer", "m", "m = β·m + (1-β)·g"),),
         "Momentum as an exponential average of the gradients: m = β·m + (1-β)·g, new p = p - lr·m.",
         "Differs from torch.optim.SGD(momentum=β): torch sums, m = β·m + g, starting from the first gradient, so "
         "its steps are up to 1/(1-β) times larger for the same lr. This form is torch's dampening=β, except that "
         "torch's first m is g where the sheet's is (1-β)·g."),
    Spec("adagrad", "adagrad", _START + (Input("lr", "learning rate", 5.0, "lr"), Input("eps", "ε", 1e-10, "eps")),
         (("sum", "s", "s = s + g²"),),
         "Adagrad: each parameter's step is divided by the root of its summed squared gradients: "
         "s = s + g², new p = p - lr·g/(√s + ε).",
         "Same maths as torch.optim.Adagrad(lr, eps=ε) with lr_decay 0 and initial_accumulator_value 0, equal up to "
         "rounding."),
    Spec("rmsprop", "rmsprop", _START + (Input("lr", "learning rate", 0.01, "lr"), Input("beta", "β", 0.9, "beta"),
                                         Input("eps", "ε", 1e-8, "eps")),
         (("square_avg", "v", "v = β·v + (1-β)·g²"),),
         "RMSprop: the step is divided by the root of an exponential average of squared gradients: "
         "v = β·v + (1-β)·g², new p = p - lr·g/(√v + ε).",
         "Same maths as torch.optim.RMSprop(lr, alpha=β, eps=ε), equal up to rounding (torch's default β is 0.99)."),
    Spec("adam", "adam", _START + (Input("lr", "learning rate", 1.0, "lr"), Input("beta1", "β1", 0.7, "beta"),
                                   Input("beta2", "β2", 0.9, "beta")), (_M, _V),
         "Adam as in fast.ai's sheet: momentum on the gradient and RMSprop's scaling: m = β1·m + (1-β1)·g, "
         "v = β2·v + (1-β2)·g², new p = p - lr·m/√v.",
         "Differs from torch.optim.Adam: no bias correction (torch divides m by 1-β1^t and v by 1-β2^t, which "
         "enlarges its first steps) and no ε (torch adds ε to √v). See the adamw and l2 tabs for torch's form."),
    Spec("adamw", "adam", _TORCH_ADAM, (_M, _V),
         "AdamW: Adam with bias correction and decoupled weight decay: new p = p·(1 - lr·wd) - "
         "lr/(1-β1^t) · m/(√v/√(1-β2^t) + ε). The decay shrinks p directly, whatever the gradients' size.",
         "Same maths as torch.optim.AdamW(lr, betas=(β1, β2), eps=ε, weight_decay=wd); torch updates m with lerp, "
         "equal up to rounding.", counter=True, decoupled=True),
    Spec("l2", "adam", _TORCH_ADAM, (_M, _V),
         "Adam (bias-corrected, as on the adamw tab) with weight decay as an L2 term in the loss, wd/2·(a²+b²): "
         "its gradient wd·p goes through m and √v and is rescaled like any gradient. Compare adamw.",
         "Same maths as torch.optim.Adam(lr, betas=(β1, β2), eps=ε, weight_decay=wd); torch updates m with "
         "lerp, equal up to rounding.", counter=True, l2=True),
    Spec("adam_ann", "adam", _START + (Input("lr", "learning rate (epoch 1)", 1.0, "lr"), Input("beta1", "β1", 0.7, "beta"),
                                       Input("beta2", "β2", 0.9, "beta"), Input("lr_decay", "γ (lr decay per epoch)", 0.9, "gamma")),
         (_M, _V),
         "fast.ai's Adam (no bias correction, no ε) with the learning rate annealed once per epoch: "
         "lr this epoch = lr·γ^epoch.",
         "Differs from torch.optim.Adam as the adam tab does; the schedule is torch.optim.lr_scheduler."
         "ExponentialLR(gamma=γ) stepped once per epoch.", anneal=True),
)}
OPTIMIZERS = list(SPECS)


# -- layout ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where everything of one optimizer tab is, for `n` data points."""
    spec: Spec
    n: int

    @property
    def inputs(self) -> dict[str, str]:
        return {inp.name: f"B{TOP + i}" for i, inp in enumerate(self.spec.inputs)}

    @property
    def state(self) -> dict[str, str]:
        return {name: f"F{TOP + i}" for i, name in enumerate(self.spec.state_names)}

    @property
    def outputs(self) -> dict[str, str]:
        names = ["loss", "end_a", "end_b"] + (["lr_now"] if self.spec.anneal else [])
        return {name: f"J{TOP + i}" for i, name in enumerate(names)}

    @property
    def col(self) -> dict[str, str]:
        return {key: get_column_letter(i + 1) for i, key in enumerate(self.spec.columns)}

    @property
    def last(self) -> int:
        return FIRST + self.n - 1

    @property
    def steps(self) -> str:
        return range_name(FIRST, 1, self.last, len(self.spec.columns))

    @property
    def trace_col0(self) -> int:
        return len(self.spec.columns) + 2

    @property
    def trace(self) -> str:
        c0 = self.trace_col0
        return range_name(FIRST, c0, FIRST + TRACE_ROWS - 1, c0 + len(self.spec.trace_columns) - 1)

    def output_formulas(self) -> dict[str, str]:
        """The formulas of the "this epoch" block: the epoch's loss, a and b after it, its learning rate."""
        c = self.col
        out = {"loss": f"=AVERAGE({c['loss']}{FIRST}:{c['loss']}{self.last})",
               "end_a": f"={c['new_a']}{self.last}", "end_b": f"={c['new_b']}{self.last}"}
        if self.spec.anneal:
            out["lr_now"] = f"={_abs(self.inputs['lr'])}*{_abs(self.inputs['lr_decay'])}^{_abs(self.state['epoch'])}"
        return out

    def lr_cell(self) -> str:
        return _abs(self.outputs["lr_now"] if self.spec.anneal else self.inputs["lr"])

    def formulas(self) -> list[list[str]]:
        """The step table's formulas, row by row: what `build` writes and what `run` insists on finding."""
        return [self._row(i) for i in range(self.n)]

    def _row(self, i: int) -> list[str]:
        s, c, r = self.spec, self.col, FIRST + i
        inp = {k: _abs(v) for k, v in self.inputs.items()}
        top = {k: _abs(v) for k, v in self.state.items()}

        def prev(key: str, state_name: str) -> str:
            return top[state_name] if i == 0 else f"{c[key]}{r - 1}"

        x, y, a, b = (f"{c[k]}{r}" for k in ("x", "y", "a", "b"))
        err, loss, lr = f"{c['err']}{r}", f"{c['loss']}{r}", self.lr_cell()
        f = {"x": f"=data!A{DATA_FIRST + i}", "y": f"=data!B{DATA_FIRST + i}",
             "a": "=" + prev("new_a", "a"), "b": "=" + prev("new_b", "b"),
             "pred": f"={a}*{x}+{b}", "err": f"={c['pred']}{r}-{y}", "loss": f"={err}*{err}",
             "ga": f"=2*{err}*{x}", "gb": f"=2*{err}"}
        if s.l2:
            wd = inp["wd"]
            f["loss"] += f"+{wd}/2*({a}*{a}+{b}*{b})"
            f["ga"] += f"+{wd}*{a}"
            f["gb"] += f"+{wd}*{b}"
        if s.fd:
            f["fd_a"] = f"=((({a}+{FD_OFFSET})*{x}+{b}-{y})^2-{loss})/{FD_OFFSET}"
            f["fd_b"] = f"=(({a}*{x}+({b}+{FD_OFFSET})-{y})^2-{loss})/{FD_OFFSET}"
        t = f"{c['step']}{r}" if s.counter else ""
        if s.counter:
            f["step"] = f"={prev('step', 'step')}+1"
        for p in ("a", "b"):
            g, here = f"{c['g' + p]}{r}", f"{c[p]}{r}"
            if s.rule == "sgd" and not s.buffers:
                f["new_" + p] = f"={here}-{lr}*{g}"
            elif s.rule == "sgd":
                beta, m = inp["beta"], f"{c['m_' + p]}{r}"
                f["m_" + p] = f"={beta}*{prev('m_' + p, 'm_' + p)}+(1-{beta})*{g}"
                f["new_" + p] = f"={here}-{lr}*{m}"
            elif s.rule == "adagrad":
                s_ = f"{c['s_' + p]}{r}"
                f["s_" + p] = f"={prev('s_' + p, 's_' + p)}+{g}*{g}"
                f["new_" + p] = f"={here}-{lr}*({g}/(SQRT({s_})+{inp['eps']}))"
            elif s.rule == "rmsprop":
                beta, v = inp["beta"], f"{c['v_' + p]}{r}"
                f["v_" + p] = f"={beta}*{prev('v_' + p, 'v_' + p)}+(1-{beta})*({g}*{g})"
                f["new_" + p] = f"={here}-{lr}*({g}/(SQRT({v})+{inp['eps']}))"
            else:  # adam
                b1, b2 = inp["beta1"], inp["beta2"]
                m, v = f"{c['m_' + p]}{r}", f"{c['v_' + p]}{r}"
                f["m_" + p] = f"={b1}*{prev('m_' + p, 'm_' + p)}+(1-{b1})*{g}"
                f["v_" + p] = f"={b2}*{prev('v_' + p, 'v_' + p)}+(1-{b2})*({g}*{g})"
                if s.counter:
                    shrunk = f"{here}*(1-{lr}*{inp['wd']})" if s.decoupled else here
                    f["new_" + p] = (f"={shrunk}-{lr}/(1-{b1}^{t})*({m}/(SQRT({v})/SQRT(1-{b2}^{t})+{inp['eps']}))")
                else:
                    f["new_" + p] = f"={here}-{lr}*({m}/SQRT({v}))"
        return [f[k] for k in s.columns]


def _abs(cell: str) -> str:
    letters = cell.rstrip("0123456789")
    return f"${letters}${cell[len(letters):]}"


# -- the rules on the sheet problem (floats or tensors) ----------------------------------------------
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


# -- build ----------------------------------------------------------------------------------------
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


def build_workbook(path: Path, *, seed: int = 42, n_points: int = 29, noise: float = 0.0) -> Path:
    """Write the graddesc workbook to `path` (reproducible: the same arguments give the same bytes)."""
    from openpyxl import Workbook

    from xlcollab.sheets.common import force_full_recalc, save_workbook

    xs, ys = make_data(seed, n_points, noise)
    wb = Workbook()
    _build_data(wb.active, xs, ys, seed=seed, noise=noise)
    for spec in SPECS.values():
        _build_optimizer(wb.create_sheet(spec.sheet), spec, len(xs))
    _build_compare(wb.create_sheet(COMPARE), len(xs))
    wb.active = 1
    force_full_recalc(wb)
    return save_workbook(wb, path)


def _label(ws, row: int, col: int, text: str, name: str | None = None) -> None:
    from xlcollab.sheets.common import NOTE_FONT

    ws.cell(row, col, text)
    if name:
        ws.cell(row, col + 2, name).font = NOTE_FONT


def _build_data(ws, xs: list[int], ys: list[float], *, seed: int, noise: float) -> None:
    from xlcollab.sheets.common import HEADER_FONT, define_block, heading

    ws.title = DATA
    heading(ws, "A1", "data: y = a·x + b with a = 2, b = 30",
            f"x: random integers 1-100 (seed {seed}); y = 2x + 30{' + Gaussian noise' if noise else ''}. Every "
            "optimizer tab fits a and b to these points, one SGD step per row. Edit them if you like: run reads them.")
    for col, text in ((1, "x"), (2, "y")):
        ws.cell(DATA_FIRST - 1, col, text).font = HEADER_FONT
    for i, (x, y) in enumerate(zip(xs, ys)):
        ws.cell(DATA_FIRST + i, 1, x)
        ws.cell(DATA_FIRST + i, 2, y)
    last = DATA_FIRST + len(xs) - 1
    define_block(ws, "x", DATA_FIRST, 1, last, 1, style="input")
    define_block(ws, "y", DATA_FIRST, 2, last, 2, style="input")
    ws.cell(DATA_FIRST - 1, 4, "how these points were made").font = HEADER_FONT
    for i, (label, name, value) in enumerate((("true a", "true_a", TRUE_A), ("true b", "true_b", TRUE_B),
                                              ("seed", "seed", seed), ("points", "points", len(xs)),
                                              ("noise (std of y)", "noise", noise))):
        _label(ws, DATA_FIRST + i, 4, label, name)
        ws.cell(DATA_FIRST + i, 5, value)
        define_block(ws, name, DATA_FIRST + i, 5)
    ws.column_dimensions["D"].width = 18


def _build_optimizer(ws, spec: Spec, n: int) -> None:
    from openpyxl.chart import Reference

    from xlcollab.sheets.common import HEADER_FONT, NOTE_FONT, define_block, heading, line_chart

    lay = Layout(spec, n)
    heading(ws, "A1", f"{spec.sheet}: fit y = a·x + b, one step per row", spec.note)
    ws["A3"] = spec.differs
    ws["A3"].font = NOTE_FONT
    for col, text in ((1, "inputs (edit these)"), (5, "state carried into the first row"), (9, "this epoch")):
        ws.cell(TOP - 1, col, text).font = HEADER_FONT
    start = Start.fresh(spec)
    for i, inp in enumerate(spec.inputs):
        _label(ws, TOP + i, 1, inp.label, inp.name)
        ws.cell(TOP + i, 2, inp.default)
        define_block(ws, inp.name, TOP + i, 2, style="input")
    state_labels = {"epoch": "epochs done", "a": "a", "b": "b", "step": "steps done (t)"}
    for key, short, label in spec.buffers:
        state_labels |= {f"{short}_a": f"{short} of a ({label})", f"{short}_b": f"{short} of b"}
    for i, name in enumerate(spec.state_names):
        _label(ws, TOP + i, 5, state_labels[name], name)
        ws.cell(TOP + i, 6, _state_value(spec, start, name))
        define_block(ws, name, TOP + i, 6, style="param")
    labels = {"loss": "epoch loss (mean of the rows)", "end_a": "a after this epoch", "end_b": "b after this epoch",
              "lr_now": "lr this epoch = lr·γ^epoch"}
    for i, (name, formula) in enumerate(lay.output_formulas().items()):
        _label(ws, TOP + i, 9, labels[name], name)
        ws.cell(TOP + i, 10, formula)
        define_block(ws, name, TOP + i, 10, style="objective" if name == "loss" else "output")
    headers = _headers(spec)
    ws.cell(HEADER - 1, 1, "one SGD step per row (formulas only; run rewrites only the blue state cells)").font = NOTE_FONT
    for j, key in enumerate(spec.columns, start=1):
        ws.cell(HEADER, j, headers[key]).font = HEADER_FONT
        ws.column_dimensions[get_column_letter(j)].width = 12
    for i, row in enumerate(lay.formulas()):
        for j, formula in enumerate(row, start=1):
            ws.cell(FIRST + i, j, formula)
    define_block(ws, "steps", FIRST, 1, lay.last, len(spec.columns), style="output")
    c0 = lay.trace_col0
    ws.cell(HEADER - 1, c0, f"trace: one row per epoch, written by `xlcollab run`; holds {TRACE_ROWS:,} epochs "
                            "(run refuses when full; `xlcollab reset` clears it)").font = NOTE_FONT
    trace_headers = {"epoch": "epoch", "a": "a", "b": "b", "loss": "loss", "lr": "lr", "step": "t"}
    for key, short, _ in spec.buffers:
        trace_headers |= {f"{short}_a": f"{short} (a)", f"{short}_b": f"{short} (b)"}
    for j, key in enumerate(spec.trace_columns):
        ws.cell(HEADER, c0 + j, trace_headers[key]).font = HEADER_FONT
        ws.column_dimensions[get_column_letter(c0 + j)].width = 12
    define_block(ws, "trace", FIRST, c0, FIRST + TRACE_ROWS - 1, c0 + len(spec.trace_columns) - 1)
    for r in range(lay.last + 1, FIRST + TRACE_ROWS):  # empty <row> elements: appending fills them in place
        ws.row_dimensions[r]
    loss_col = c0 + spec.trace_columns.index("loss")
    line_chart(ws, "L1", title="Error by epoch", x_title="epoch", y_title="loss",
               data=Reference(ws, min_col=loss_col, min_row=HEADER, max_row=FIRST + TRACE_ROWS - 1),
               categories=Reference(ws, min_col=c0, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1),
               width=16, height=7)
    ws.column_dimensions["A"].width = ws.column_dimensions["E"].width = ws.column_dimensions["I"].width = 16


def _headers(spec: Spec) -> dict[str, str]:
    h = {"x": "x", "y": "y", "a": "a", "b": "b", "pred": "a·x+b", "err": "err = a·x+b-y",
         "loss": "loss = err²" + (" + wd/2·(a²+b²)" if spec.l2 else ""),
         "ga": "de/da = 2·err·x" + (" + wd·a" if spec.l2 else ""), "gb": "de/db = 2·err" + (" + wd·b" if spec.l2 else ""),
         "fd_a": f"est de/da (a+{FD_OFFSET})", "fd_b": f"est de/db (b+{FD_OFFSET})", "step": "t",
         "new_a": "new a", "new_b": "new b"}
    for _, short, label in spec.buffers:
        h |= {f"{short}_a": f"{short} (a): {label}", f"{short}_b": f"{short} (b)"}
    return h


def _state_value(spec: Spec, start: Start, name: str) -> float:
    if name in ("epoch", "a", "b"):
        return getattr(start, name)
    if name == "step":
        return start.state_a["step"]
    key = next(k for k, short, _ in spec.buffers if name.startswith(short + "_"))
    return (start.state_a if name.endswith("_a") else start.state_b)[key]


def _build_compare(ws, n: int) -> None:
    from openpyxl.chart import Reference, Series
    from openpyxl.chart.series import SeriesLabel

    from xlcollab.sheets.common import HEADER_FONT, heading, line_chart

    heading(ws, "A1", "compare: every optimizer's loss per epoch",
            "Read from each tab's trace block (epoch 1 is the first row after a reset). Run them all with "
            "`xlcollab run graddesc.xlsx --sheet all --epochs 100`.")
    for j, text in enumerate(("optimizer", "epochs done", "a", "b", "next epoch's loss"), start=1):
        ws.cell(4, j, text).font = HEADER_FONT
    chart = None
    for i, spec in enumerate(SPECS.values()):
        lay, q = Layout(spec, n), quote_sheetname(spec.sheet)
        ws.cell(5 + i, 1, spec.sheet)
        for j, cell in enumerate((lay.state["epoch"], lay.state["a"], lay.state["b"], lay.outputs["loss"]), start=2):
            ws.cell(5 + i, j, f"={q}!{_abs(cell)}")
        loss_col = lay.trace_col0 + spec.trace_columns.index("loss")
        src = ws.parent[spec.sheet]
        ref = Reference(src, min_col=loss_col, min_row=FIRST, max_row=FIRST + TRACE_ROWS - 1)
        if chart is None:
            chart = line_chart(ws, "A15", title="Error by epoch, every optimizer", x_title="epoch", y_title="loss",
                               data=ref, width=26, height=13)
            chart.series[0].tx = SeriesLabel(v=spec.sheet)
        else:
            series = Series(ref, title=spec.sheet)
            series.smooth = False
            chart.series.append(series)
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["E"].width = 18


# -- run and reset on any Book ---------------------------------------------------------------------
def _sheets(sheets) -> list[str]:
    if sheets == "all":
        return list(OPTIMIZERS)
    names = [sheets] if isinstance(sheets, str) else list(sheets)
    for name in names:
        if name not in SPECS:
            raise WorkbookError(f"'{name}' is not an optimizer tab of the graddesc workbook "
                                f"(choose from {', '.join(OPTIMIZERS)}, or all)")
    return names


def _number(book: Book, sheet: str, name: str, what: str) -> tuple[float, str]:
    """The number in a named single cell, or a WorkbookError naming the cell."""
    ref = book.ref_of(sheet, name)
    value = book.read(sheet, ref)[0][0]
    if isinstance(value, str) and value.startswith("="):
        raise WorkbookError(f"{what} must be a number, not the formula {value}", sheet=sheet, cell=ref, path=book.name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WorkbookError(f"{what} must be a number, got {value!r}", sheet=sheet, cell=ref, path=book.name)
    return float(value), ref


# what each kind of input may be: a test that passes for good values, and how to say it
_KINDS = {"start": (lambda v: True, "a number"), "lr": (lambda v: v > 0, "> 0"),
          "beta": (lambda v: 0 <= v < 1, "in [0, 1)"), "eps": (lambda v: v >= 0, ">= 0"),
          "wd": (lambda v: v >= 0, ">= 0"), "gamma": (lambda v: 0 < v <= 1, "in (0, 1]")}


def read_inputs(book: Book, sheet: str) -> dict[str, float]:
    """The tab's inputs, each checked (lr > 0, β in [0, 1), ε and wd >= 0, γ in (0, 1])."""
    spec, values = SPECS[sheet], {}
    for inp in spec.inputs:
        value, ref = _number(book, sheet, inp.name, inp.label)
        ok, rule = _KINDS[inp.kind]
        if not ok(value):
            raise WorkbookError(f"{inp.label} must be {rule}, got {value!r}", sheet=sheet, cell=ref, path=book.name)
        values[inp.name] = value
    return values


def read_start(book: Book, sheet: str) -> Start:
    """Inputs plus the state in the top cells (epochs done, a, b, t, buffers), each checked."""
    spec = SPECS[sheet]
    inputs = read_inputs(book, sheet)
    state: dict[str, float] = {}
    for name in spec.state_names:
        value, ref = _number(book, sheet, name, f"the state cell '{name}'")
        if name in ("epoch", "step") and (value < 0 or value != int(value)):
            raise WorkbookError(f"'{name}' must be a whole number >= 0, got {value!r}", sheet=sheet, cell=ref, path=book.name)
        if name[:2] in ("s_", "v_") and value < 0:
            raise WorkbookError(f"'{name}' is a sum of squares and cannot be negative, got {value!r}",
                                sheet=sheet, cell=ref, path=book.name)
        state[name] = value
    start = Start.fresh(spec, inputs)
    start.epoch, start.a, start.b = int(state["epoch"]), state["a"], state["b"]
    for key, short, _ in spec.buffers:
        start.state_a[key], start.state_b[key] = state[f"{short}_a"], state[f"{short}_b"]
    if spec.counter:
        start.state_a["step"] = start.state_b["step"] = int(state["step"])
    return start


def read_data(book: Book) -> tuple[list[float], list[float]]:
    """x and y from the `data` tab's named blocks, every value a number."""
    if DATA not in book.sheet_names():
        raise WorkbookError(f"no '{DATA}' tab: is this the graddesc workbook? (`xlcollab build` writes one)", path=book.name)
    columns = []
    for col, name in enumerate(("x", "y"), start=1):
        ref = book.ref_of(DATA, name)
        r0, c0, _, c1 = bounds(ref)
        if (r0, c0, c1) != (DATA_FIRST, col, col):  # the step formulas read data!A5, data!B5, ...
            raise WorkbookError(f"the name '{name}' is {ref}, but the step formulas read it from "
                                f"{cell_name(DATA_FIRST, col)} down; rebuild the workbook", sheet=DATA, path=book.name)
        values = []
        for i, (value,) in enumerate(book.read(DATA, ref)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise WorkbookError(f"{name} must be a number, got {value!r}", sheet=DATA,
                                    cell=cell_name(r0 + i, c0), path=book.name)
            values.append(float(value))
        columns.append(values)
    return columns[0], columns[1]


def _norm(formula: Any) -> Any:
    """A formula as text to compare: no $ anchors, spaces or sheet-name quotes (LibreOffice adds them)."""
    return formula.replace("$", "").replace(" ", "").replace("'", "").upper() if isinstance(formula, str) else formula


def check_formulas(book: Book, sheet: str, n: int) -> Layout:
    """The step table must hold exactly the formulas `build` wrote: otherwise torch would not be running the sheet."""
    spec = SPECS[sheet]
    lay = Layout(spec, n)
    ref = book.ref_of(sheet, "steps")
    if ref != lay.steps:
        raise WorkbookError(f"the step table 'steps' is {ref}, expected {lay.steps} for {n} data points; "
                            "rebuild the workbook (xlcollab build) after changing the number of points",
                            sheet=sheet, path=book.name)
    found = book.read(sheet, ref)
    for i, (got_row, want_row) in enumerate(zip(found, lay.formulas())):
        for j, (got, want) in enumerate(zip(got_row, want_row)):
            if _norm(got) != _norm(want):
                raise WorkbookError(f"holds {got!r} where the step table needs the formula {want}; undo the edit "
                                    "or rebuild the workbook", sheet=sheet, cell=cell_name(FIRST + i, j + 1), path=book.name)
    for name, cell in lay.inputs.items() | lay.state.items():
        if book.ref_of(sheet, name) != cell:
            raise WorkbookError(f"the name '{name}' points at {book.ref_of(sheet, name)}, but the formulas use {cell}",
                                sheet=sheet, path=book.name)
    if spec.anneal:  # the rows take their learning rate from this formula
        got, want = book.read(sheet, lay.outputs["lr_now"])[0][0], lay.output_formulas()["lr_now"]
        if _norm(got) != _norm(want):
            raise WorkbookError(f"holds {got!r} where the learning rate of the epoch needs the formula {want}",
                                sheet=sheet, cell=lay.outputs["lr_now"], path=book.name)
    return lay


def trace_fill(book: Book, sheet: str, *, strict: bool = True) -> tuple[str, int, int]:
    """(trace range, filled rows, capacity); strict: the filled rows must start at the top with no gaps.

    Not strict (for reset), `filled rows` reaches down to the last non-empty row, gaps included.
    """
    ref = book.ref_of(sheet, "trace")
    r0, c0, r1, c1 = bounds(ref)
    if strict:  # run: the epoch column tells which rows are filled (reading one column is 9x cheaper)
        filled = [v is not None and v != "" for (v,) in book.read(sheet, range_name(r0, c0, r1, c0))]
    else:       # reset: every column, so that nothing is left behind
        filled = [any(v is not None and v != "" for v in row) for row in book.read(sheet, ref)]
    if not strict:
        return ref, max((i + 1 for i, f in enumerate(filled) if f), default=0), len(filled)
    used = filled.index(False) if False in filled else len(filled)
    if any(filled[used:]):
        gap = used + filled[used:].index(True)
        raise WorkbookError(f"the trace block has a gap: row {r0 + used} is empty but row {r0 + gap} is not; "
                            "clear it with xlcollab reset", sheet=sheet, cell=cell_name(r0 + gap, c0), path=book.name)
    return ref, used, len(filled)


def run_book(book: Book, sheets, epochs: int) -> dict[str, dict[str, Any]]:
    """Run each tab's own rule for `epochs` epochs from its top cells; append the trace, write the new state.

    Everything is checked before anything is written (buffered in `book`; the caller commits).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise SettingsError(f"epochs must be a whole number >= 1, got {epochs!r}")
    names = _sheets(sheets)
    xs, ys = read_data(book)
    plans = []
    for sheet in names:
        book.require_sheet(sheet)
        lay = check_formulas(book, sheet, len(xs))
        start = read_start(book, sheet)
        ref, used, capacity = trace_fill(book, sheet)
        if used + epochs > capacity:
            last = ref.split(":")[1]
            raise WorkbookError(f"the trace block ({ref}) holds {capacity:,} epochs, {used:,} are filled: "
                                f"{epochs:,} more do not fit; run fewer epochs or xlcollab reset",
                                sheet=sheet, cell=last, path=book.name)
        plans.append((sheet, lay, start, ref, used))
    results, writes = {}, []
    for sheet, lay, start, ref, used in plans:
        spec, clock = SPECS[sheet], time.perf_counter()
        trace = simulate(spec, start, xs, ys, epochs, sheet=sheet)
        results[sheet] = {"epochs": epochs, "epoch": start.epoch, "a": start.a, "b": start.b, "loss": trace[-1][3],
                          "lr": trace[-1][4], "seconds": time.perf_counter() - clock}
        writes.append((sheet, lay, start, ref, used, trace))
    for sheet, lay, start, ref, used, trace in writes:
        r0 = FIRST + used
        book.write(sheet, range_name(r0, lay.trace_col0, r0 + len(trace) - 1, lay.trace_col0 + len(trace[0]) - 1), trace)
        _write_state(book, sheet, lay, start)
    return results


def _write_state(book: Book, sheet: str, lay: Layout, start: Start) -> None:
    spec = lay.spec
    for name, cell in lay.state.items():
        value = _state_value(spec, start, name)
        book.write(sheet, cell, int(value) if name in ("epoch", "step") else value)


def reset_book(book: Book, sheets) -> dict[str, dict[str, Any]]:
    """Put a, b back at the start values, zero the state and clear the trace (buffered; the caller commits)."""
    names = _sheets(sheets)
    plans = []
    for sheet in names:
        book.require_sheet(sheet)
        spec = SPECS[sheet]
        inputs = read_inputs(book, sheet)
        for name in spec.state_names:
            book.ref_of(sheet, name)
        ref, used, _ = trace_fill(book, sheet, strict=False)
        plans.append((sheet, spec, inputs, ref, used))
    results = {}
    for sheet, spec, inputs, ref, used in plans:
        start = Start.fresh(spec, inputs)
        for name in spec.state_names:
            value = _state_value(spec, start, name)
            book.write(sheet, book.ref_of(sheet, name), int(value) if name in ("epoch", "step") else value)
        if used:
            r0, c0, _, c1 = bounds(ref)
            book.write(sheet, range_name(r0, c0, r0 + used - 1, c1), [[None] * (c1 - c0 + 1) for _ in range(used)])
        results[sheet] = {"a": start.a, "b": start.b, "cleared": used}
    return results
