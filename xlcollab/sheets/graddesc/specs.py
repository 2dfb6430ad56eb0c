"""What each optimizer tab of the graddesc workbook is: its inputs, its rule, its notes (data only, no code paths).

Every tab fits y = a·x + b to the `data` tab with one SGD step per row; `Spec` says which rule of
`xlcollab.core.optim` the rows compute, with which inputs and state buffers, and what to tell a student about
how it differs from torch.optim. Where the tabs sit is `layout.py`'s job; the step arithmetic is `simulate.py`'s.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xlcollab.sheets.common import pick_tabs

DATA = "data"
COMPARE = "compare"
TRACE_ROWS = 3000       # capacity of every trace block: `run` refuses when it would overflow
FD_OFFSET = 0.01        # the finite-difference offset of the basic SGD tab
TRUE_A, TRUE_B = 2, 30


@dataclass(frozen=True)
class Input:
    name: str      # defined name of the input cell
    label: str
    default: float
    kind: str      # start | lr | beta | eps | wd | gamma | factor: what values are allowed (LIMITS)


# what each kind of input may be, as limits of xlcollab.core.checks.number
LIMITS: dict[str, dict[str, Any]] = {
    "start": {}, "lr": {"lo": 0, "lo_open": True}, "beta": {"lo": 0, "hi": 1, "hi_open": True},
    "eps": {"lo": 0}, "wd": {"lo": 0}, "gamma": {"lo": 0, "hi": 1, "lo_open": True}, "factor": {"lo": 1, "lo_open": True},
}


@dataclass(frozen=True)
class Spec:
    """One optimizer tab: its inputs, its rule and the rule's fixed options, its state buffers, its schedule."""
    sheet: str
    rule: str                                  # key of simulate.SHEET_RULES: the update of each row
    inputs: tuple[Input, ...]
    buffers: tuple[tuple[str, str, str], ...]  # (rule state key, short name, header label): one column per parameter
    note: str
    differs: str
    counter: bool = False      # torch's bias-corrected Adam: t and the products β1^t, β2^t are state
    l2: bool = False           # weight decay as L2 in the loss (grad + wd·p)
    decoupled: bool = False    # AdamW's decoupled decay
    fd: bool = False           # finite-difference estimates beside the gradients
    schedule: str = "constant"  # constant | anneal (lr·γ after each epoch) | jump (fast.ai's VBA: lr / divisor when
    #                             the gradients' RMS grows by more than `jump` times from one epoch to the next)
    rms_scaled: bool = False   # fast.ai's Adagrad: once an epoch, a parameter's lr is divided by its gradients' RMS so far

    @property
    def columns(self) -> list[str]:
        """The step table's columns, left to right."""
        cols = ["x", "y", "a", "b", "pred", "err", "loss", "ga", "gb"]
        cols += ["fd_a", "fd_b"] if self.fd else []
        cols += ["step", "b1t", "b2t"] if self.counter else []
        for _, short, _ in self.buffers:
            cols += [f"{short}_a", f"{short}_b"]
        return cols + ["new_a", "new_b"]

    @property
    def state_names(self) -> list[str]:
        """The state carried into the first row: epochs done, (lr), a, b, t and the powers, RMS, the buffers."""
        names = ["epoch"] + (["lr_now"] if self.schedule != "constant" else []) + ["a", "b"]
        names += ["step", "b1t", "b2t"] if self.counter else []
        names += ["rms_a", "rms_b"] if self.rms_scaled else []
        names += ["g_rms"] if self.schedule == "jump" else []
        for _, short, _ in self.buffers:
            names += [f"{short}_a", f"{short}_b"]
        return names

    @property
    def output_names(self) -> list[str]:
        """The "this epoch" block: the epoch's loss, a and b after it, and what the next epoch's state takes."""
        names = ["loss", "end_a", "end_b"]
        names += ["rms_a_next", "rms_b_next"] if self.rms_scaled else []
        names += ["g_rms_now", "ratio"] if self.schedule == "jump" else []
        return names + (["lr_next"] if self.schedule != "constant" else [])

    @property
    def trace_columns(self) -> list[str]:
        """One trace row per epoch, what `run` appends: epoch, a, b, loss, the lr used, then the state after it."""
        return ["epoch", "a", "b", "loss", "lr"] + [n for n in self.state_names if n not in ("epoch", "lr_now", "a", "b")]


_START = (Input("start_a", "start a", 1, "start"), Input("start_b", "start b", 1, "start"))
_M, _V = ("exp_avg", "m", "β1·m + (1-β1)·g"), ("exp_avg_sq", "v", "β2·v + (1-β2)·g²")
_FASTAI_ADAM = (Input("beta1", "β1", 0.7, "beta"), Input("beta2", "β2", 0.9, "beta"))

# adamw and l2 share torch's Adam settings, so the two tabs differ only in where the weight decay goes
_TORCH_ADAM = _START + (Input("lr", "learning rate", 0.05, "lr"), Input("beta1", "β1", 0.9, "beta"),
                        Input("beta2", "β2", 0.999, "beta"), Input("eps", "ε", 1e-8, "eps"),
                        Input("wd", "weight decay", 1e-3, "wd"))
_POWERS = ("β1^t and β2^t are carried from row to row as products (β^t·β), which shrink to 0 where a spreadsheet's "
           "power β^t would underflow into an error after some 6,700 steps.")

SPECS: dict[str, Spec] = {s.sheet: s for s in (
    Spec("basic SGD", "sgd", _START + (Input("lr", "learning rate", 1e-4, "lr"),), (),
         "Plain SGD, one step per row: new p = p - lr·de/dp. Beside the analytic gradients, finite-difference "
         f"estimates: (loss at p + {FD_OFFSET} - loss) / {FD_OFFSET}.",
         "Same maths as torch.optim.SGD(lr), equal up to rounding (torch fuses p - lr·g into one multiply-add; a "
         "spreadsheet rounds twice). The estimates are shown only: the update uses the analytic gradients.",
         fd=True),
    Spec("momentum", "sgd", _START + (Input("lr", "learning rate", 3e-4, "lr"), Input("beta", "β (momentum)", 0.9, "beta")),
         (("momentum_buffer", "m", "β·m + (1-β)·g"),),
         "Momentum as an exponential average of the gradients: m = β·m + (1-β)·g, new p = p - lr·m.",
         "Differs from torch.optim.SGD(momentum=β): torch sums, m = β·m + g, starting from the first gradient, so "
         "its steps are up to 1/(1-β) times larger for the same lr. This form is torch's dampening=β, except that "
         "torch's first m is g where the sheet's is (1-β)·g."),
    Spec("adagrad", "adagrad", _START + (Input("lr", "learning rate", 5.0, "lr"), Input("eps", "ε", 1e-10, "eps")),
         (("sum", "s", "s + g²"),),
         "Adagrad: each parameter's step is divided by the root of its summed squared gradients: "
         "s = s + g², new p = p - lr·g/(√s + ε).",
         "Same maths as torch.optim.Adagrad(lr, eps=ε) with lr_decay 0 and initial_accumulator_value 0, equal up to "
         "rounding. fast.ai's own form is on the adagrad_fastai tab."),
    Spec("adagrad_fastai", "sgd", _START + (Input("lr", "learning rate", 0.02, "lr"),), (),
         "Adagrad as fast.ai's sheet did it: once an epoch, each parameter's learning rate is divided by the root mean "
         "square of all its gradients so far: new p = p - lr/rms·de/dp. Run computes the new RMS from this epoch's "
         "gradients (the green cells) and carries it into the next epoch.",
         "Differs from torch.optim.Adagrad: torch divides every step by the root of the running sum of the squared "
         "gradients (the adagrad tab), so its steps shrink as the sum grows; this form divides by their mean, once "
         "an epoch, and as the gradients vanish the mean shrinks and the steps grow back: lr 0.1 gets there 5 times "
         "faster, then leaves again (try it; adagrad_ann anneals the lr instead). Reset measures the first RMS at "
         "the start values.",
         rms_scaled=True),
    Spec("adagrad_ann", "sgd", _START + (Input("lr", "learning rate (epoch 1)", 0.3, "lr"),
                                         Input("lr_decay", "γ (lr decay per epoch)", 0.98, "gamma")), (),
         "fast.ai's Adagrad (as on adagrad_fastai) with the learning rate annealed once per epoch: "
         "lr next epoch = lr this epoch·γ.",
         "Differs from torch.optim.Adagrad as adagrad_fastai does; the schedule is torch.optim.lr_scheduler."
         "ExponentialLR(gamma=γ) stepped once per epoch. The lr is state, multiplied by γ after each epoch.",
         schedule="anneal", rms_scaled=True),
    Spec("rmsprop", "rmsprop", _START + (Input("lr", "learning rate", 0.01, "lr"), Input("beta", "β", 0.9, "beta"),
                                         Input("eps", "ε", 1e-8, "eps")),
         (("square_avg", "v", "β·v + (1-β)·g²"),),
         "RMSprop: the step is divided by the root of an exponential average of squared gradients: "
         "v = β·v + (1-β)·g², new p = p - lr·g/(√v + ε).",
         "Same maths as torch.optim.RMSprop(lr, alpha=β, eps=ε), equal up to rounding (torch's default β is 0.99)."),
    Spec("adam", "sheet_adam", _START + (Input("lr", "learning rate", 1.0, "lr"),) + _FASTAI_ADAM, (_M, _V),
         "Adam as in fast.ai's sheet: momentum on the gradient and RMSprop's scaling: m = β1·m + (1-β1)·g, "
         "v = β2·v + (1-β2)·g², new p = p - lr·m/√v.",
         "Differs from torch.optim.Adam: no bias correction (torch divides m by 1-β1^t and v by 1-β2^t, which "
         "enlarges its first steps) and no ε (torch adds ε to √v; here a v of 0 takes no step). See the adamw and "
         "l2 tabs for torch's form."),
    Spec("adamw", "sheet_adam", _TORCH_ADAM, (_M, _V),
         "AdamW: Adam with bias correction and decoupled weight decay: new p = p·(1 - lr·wd) - "
         "lr/(1-β1^t) · m/(√v/√(1-β2^t) + ε). The decay shrinks p directly, whatever the gradients' size.",
         "Same maths as torch.optim.AdamW(lr, betas=(β1, β2), eps=ε, weight_decay=wd), equal up to rounding (torch "
         "updates m with lerp and computes β^t as a power). " + _POWERS, counter=True, decoupled=True),
    Spec("l2", "sheet_adam", _TORCH_ADAM, (_M, _V),
         "Adam (bias-corrected, as on the adamw tab) with weight decay as an L2 term in the loss, wd/2·(a²+b²): "
         "its gradient wd·p goes through m and √v and is rescaled like any gradient. Compare adamw.",
         "Same maths as torch.optim.Adam(lr, betas=(β1, β2), eps=ε, weight_decay=wd), equal up to rounding (torch "
         "updates m with lerp and computes β^t as a power). " + _POWERS, counter=True, l2=True),
    Spec("adam_ann", "sheet_adam", _START + (Input("lr", "learning rate (epoch 1)", 1.0, "lr"),) + _FASTAI_ADAM
         + (Input("lr_decay", "γ (lr decay per epoch)", 0.9, "gamma"),), (_M, _V),
         "fast.ai's Adam (no bias correction, no ε) with the learning rate annealed once per epoch: "
         "lr next epoch = lr this epoch·γ.",
         "Differs from torch.optim.Adam as the adam tab does; the schedule is torch.optim.lr_scheduler."
         "ExponentialLR(gamma=γ) stepped once per epoch. The lr is state, multiplied by γ after each epoch.",
         schedule="anneal"),
    Spec("adam_ann_vba", "sheet_adam", _START + (Input("lr", "learning rate (epoch 1)", 1.0, "lr"),) + _FASTAI_ADAM
         + (Input("jump", "jump: a rise of the gradients' RMS by more than", 1.5, "factor"),
            Input("divisor", "divide lr by", 4.0, "factor")), (_M, _V),
         "fast.ai's Adam annealed as its VBA Run macro did: after each epoch, when the root mean square of the "
         "epoch's gradients is more than `jump` times the last epoch's, the learning rate is divided by `divisor`.",
         "Differs from torch.optim.Adam as the adam tab does. torch has no such schedule: ReduceLROnPlateau also "
         "divides the lr, but when a loss stops falling, not when the gradients jump.", schedule="jump"),
)}
OPTIMIZERS = list(SPECS)

# The macros of xlcollab.excel each tab has a button for (the .xlsm writer reads this; it knows no tab names).
BUTTONS: dict[str, tuple[str, ...]] = {sheet: ("run", "reset") for sheet in OPTIMIZERS}


def tabs(sheets: str | Iterable[str], *, path: str | None = None) -> list[str]:
    """The optimizer tabs a Run or Reset acts on: "all", one tab or several; any other name is refused."""
    return pick_tabs(sheets, OPTIMIZERS, "Run and Reset work on the graddesc optimizer tabs", path=path)
