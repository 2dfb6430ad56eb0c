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
TRACE_ROWS = 2000       # capacity of every trace block: `run` refuses when it would overflow
FD_OFFSET = 0.01        # the finite-difference offset of the basic SGD tab
TRUE_A, TRUE_B = 2, 30


@dataclass(frozen=True)
class Input:
    name: str      # defined name of the input cell
    label: str
    default: float
    kind: str      # start | lr | beta | eps | wd | gamma: what values are allowed (LIMITS)


# what each kind of input may be, as limits of xlcollab.core.checks.number
LIMITS: dict[str, dict[str, Any]] = {
    "start": {}, "lr": {"lo": 0, "lo_open": True}, "beta": {"lo": 0, "hi": 1, "hi_open": True},
    "eps": {"lo": 0}, "wd": {"lo": 0}, "gamma": {"lo": 0, "hi": 1, "lo_open": True},
}


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
        """The step table's columns, left to right."""
        cols = ["x", "y", "a", "b", "pred", "err", "loss", "ga", "gb"]
        cols += ["fd_a", "fd_b"] if self.fd else []
        cols += ["step"] if self.counter else []
        for _, short, _ in self.buffers:
            cols += [f"{short}_a", f"{short}_b"]
        return cols + ["new_a", "new_b"]

    @property
    def state_names(self) -> list[str]:
        """The state carried into the first row: epochs done, a, b, t, the buffers of a and b."""
        names = ["epoch", "a", "b"] + (["step"] if self.counter else [])
        for _, short, _ in self.buffers:
            names += [f"{short}_a", f"{short}_b"]
        return names

    @property
    def trace_columns(self) -> list[str]:
        """One trace row per epoch: what `run` appends."""
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

# The macros of xlcollab.excel each tab has a button for (the .xlsm writer reads this; it knows no tab names).
BUTTONS: dict[str, tuple[str, ...]] = {sheet: ("run", "reset") for sheet in OPTIMIZERS}


def tabs(sheets: str | Iterable[str], *, path: str | None = None) -> list[str]:
    """The optimizer tabs a Run or Reset acts on: "all", one tab or several; any other name is refused."""
    return pick_tabs(sheets, OPTIMIZERS, "Run and Reset work on the graddesc optimizer tabs", path=path)
