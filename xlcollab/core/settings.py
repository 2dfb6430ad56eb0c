"""One settings schema: every setting of a fit and of a sheet solve, with its default, its check and its help line.

`CollabFit`'s constructor defaults and its checks, `xlcollab fit`'s flags and help texts, `xlcollab solve`'s
choices and the collab sheet solves all read these tables, so nothing is copied. No torch here: the CLI builds its
parsers (and refuses bad settings) from this module without importing torch, so `xlcollab --help` stays quick.
Checks go through `core.checks`; a failed one is a SettingsError naming the setting and quoting the value.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xlcollab.core import checks
from xlcollab.core.device import check_device
from xlcollab.errors import SettingsError

Check = Callable[[Any, str], Any]  # (value, setting name) -> the checked value; CheckError otherwise


@dataclass(frozen=True)
class Setting:
    """One setting: its default, its check, one help line, and how the CLI takes it (flag, text -> value)."""

    default: Any
    check: Check
    help: str
    flag: str
    parse: Callable[[Any], Any] | None = None  # None: a switch (--flag / --no-flag); with nargs: takes the words
    choices: tuple[str, ...] | None = None
    label: str | None = None  # how messages name it (default: the setting's name)
    nargs: int | str | None = None  # how many words the flag takes (None: one)
    metavar: str | tuple[str, ...] | None = None


def _choice(options: tuple[str, ...]) -> Check:
    return lambda value, what: checks.choice(value, what, options)


def _optional(check: Check) -> Check:
    """None allowed (it means "the default rule" the help line states), else `check`."""
    return lambda value, what: None if value is None else check(value, what)


def _whole(lo: int) -> Check:
    return lambda value, what: checks.whole(value, what, lo=lo)


def _number(**bounds: Any) -> Check:
    return lambda value, what: checks.number(value, what, **bounds)


def _switch(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise checks.CheckError(f"{what} must be True or False, found {checks.describe(value)}")
    return value


def _sizes(value: Any, what: str) -> tuple[int, ...]:
    """One or more whole numbers >= 1 (a single number is a one-layer tuple)."""
    sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not sizes:
        raise checks.CheckError(f"{what} must be one or more whole numbers >= 1, found none")
    return tuple(checks.whole(v, what, lo=1) for v in sizes)


def _dropout(value: Any, what: str) -> tuple[float, float]:
    """(p on the embeddings, p after each hidden layer), each in [0, 1)."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise checks.CheckError(f"{what} must be two probabilities (embeddings, hidden layers), found "
                                f"{checks.describe(value)}")
    return tuple(checks.number(v, what, lo=0, hi=1, hi_open=True) for v in value)  # type: ignore[return-value]


def _y_range(value: Any, what: str) -> tuple[float, float] | str | None:
    """'auto', None, or (low, high) with low < high."""
    if value is None or value == "auto":
        return value
    pair = isinstance(value, (tuple, list)) and len(value) == 2 and all(checks.is_number(v) for v in value)
    if not pair or not value[0] < value[1]:
        raise checks.CheckError(f"{what} must be 'auto', None or (low, high) with low < high, "
                                f"found {checks.describe(value)}")
    return float(value[0]), float(value[1])


_SIZE_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 2 ** 10, "m": 2 ** 20, "mb": 2 ** 20, "g": 2 ** 30, "gb": 2 ** 30,
               "t": 2 ** 40, "tb": 2 ** 40}


def _memory_size(value: Any, what: str) -> int:
    """'4GB', '512 MB', '1.5g' or a whole number of bytes -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?b?)\s*", str(value).lower())
    if isinstance(value, bool) or m is None or float(m.group(1)) < 1:
        raise checks.CheckError(f"{what} must be a size such as 4GB, 512MB or a number of bytes, "
                                f"found {checks.describe(value)}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def batch_size(text: str) -> int | None:
    """--batch-size: a whole number, or 'full' for one step per epoch (0 is a number, which the check refuses)."""
    return None if text.strip().lower() in ("full", "none") else int(text)


def y_range(words: list[str]) -> tuple[float, float] | str | None:
    """--y-range LOW HIGH, --y-range none or --y-range auto."""
    if len(words) == 1 and words[0].lower() in ("auto", "none"):
        return None if words[0].lower() == "none" else "auto"
    if len(words) != 2:
        raise ValueError(f"expected LOW HIGH, none or auto, found {' '.join(words)!r}")
    return float(words[0]), float(words[1])


def numbers(kind: type[int] | type[float]) -> Callable[[list[str]], tuple]:
    """A flag of several numbers (--hidden 100 50, --dropout 0.05 0.5) as a tuple of `kind`."""
    def parse(words: list[str]) -> tuple:
        try:
            return tuple(kind(w) for w in words)
        except ValueError:
            raise ValueError(f"expected {'whole numbers' if kind is int else 'numbers'}, found "
                             f"{' '.join(words)!r}") from None
    return parse


def optional_number(text: str) -> float | None:
    """--wd-bias: a number, or 'none' for the same as --wd."""
    return None if text.lower() == "none" else float(text)


MODEL_NAMES = ("dotbias", "dot", "nn", "bmf", "svdpp", "blend")  # core.models.MODELS maps these names to the classes
# What n_factors and epochs None ("auto") become, per model (bmf: factors per draw, and Gibbs sweeps); the gradient
# models' epochs None is the rule auto_epochs of the training set's size, resolved when the fit sees the data.
AUTO: dict[str, dict[str, int | None]] = {"bmf": {"n_factors": 6, "epochs": 150}}
AUTO_GRADIENT: dict[str, int | None] = {"n_factors": 64, "epochs": None}
AUTO_STEPS = 400  # optimizer steps the epochs rule aims at (benchmarks/study_defaults.py chose 400 of 400, 560, 800)
MIN_EPOCHS, MAX_EPOCHS = 7, 30


def auto_epochs(n_train: int, batch_size: int | None, steps: int = AUTO_STEPS) -> int:
    """Epochs for about `steps` optimizer steps, between MIN_EPOCHS and MAX_EPOCHS: a small training set gets more
    passes (cross-validation across six data sets, benchmarks/study_defaults.py: README); full batch: MIN_EPOCHS."""
    if batch_size is None:
        return MIN_EPOCHS
    per_epoch = -(-n_train // batch_size)
    return max(MIN_EPOCHS, min(MAX_EPOCHS, round(steps / per_epoch)))
FIT_OPTIMIZERS = ("adam", "adamw", "momentum", "sgd")
SCHEDULES = ("annealed", "one-cycle", "constant", "sgdr")
INITS = ("trunc-normal", "kaiming")
WD_MODES = ("l2", "decoupled")

# Every setting of CollabFit, in its constructor's order. The defaults are the tuned ones (README: valid RMSE
# 0.8366 on the seed-42 split of the embedded ml-latest-small).
FIT: dict[str, Setting] = {
    "model": Setting("dotbias", _choice(MODEL_NAMES), "dotbias: dot product + biases in a sigmoid range; dot: dot "
                     "product; nn: embedding net; bmf: Bayesian matrix factorisation by Gibbs sampling (core.bmf; "
                     "lr, wd, optimizer, batch size and schedule do not apply); svdpp: dotbias with SVD++'s implicit "
                     "feedback (core.svdpp); blend: bmf, svdpp and dotbias with 128 factors and wd 0.05, weighted by "
                     "least squares on a held out tenth of the training ratings (core.blend)", "--model", str, MODEL_NAMES),
    "n_factors": Setting(None, _optional(_whole(1)), "factors per user and movie (the net: both embedding sizes; "
                         "bmf: per draw); default 64, bmf 6", "--factors", int),
    "epochs": Setting(None, _optional(_whole(1)), "passes over the training ratings (bmf: Gibbs sweeps, the first "
                      "quarter discarded); default: at least 7 and about 400 optimizer steps, at most 30 (7 for the "
                      "embedded ratings, more for small sets; sgdr: the cycle end nearest that); bmf 150", "--epochs",
                      int),
    "lr": Setting(0.005, _number(lo=0, lo_open=True), "peak learning rate", "--lr", float),
    "wd": Setting(0.1, _number(lo=0), "weight decay of the factors (see --wd-mode)", "--wd", float),
    "wd_bias": Setting(0.01, _optional(_number(lo=0)), "weight decay of the user and movie biases ('none': as --wd)",
                       "--wd-bias", optional_number),
    "wd_mode": Setting(None, _optional(_choice(WD_MODES)), "l2: penalty in the loss on the rows a batch uses; "
                       "decoupled: AdamW-style shrink (default: decoupled for adamw, else l2)", "--wd-mode", str,
                       WD_MODES),
    "optimizer": Setting("adam", _choice(FIT_OPTIMIZERS), "torch.optim's Adam, AdamW, SGD with momentum or SGD",
                         "--optimizer", str, FIT_OPTIMIZERS),
    "batch_size": Setting(1024, _optional(_whole(1)), "ratings per step, or 'full' for full batch like Excel Solver",
                          "--batch-size", batch_size),
    "schedule": Setting("annealed", _choice(SCHEDULES), "learning-rate schedule; annealed: cosine from --lr down to "
                        "0; sgdr: fastai v0.7's SGDR, cosine annealing restarting at --lr at the start of each cycle "
                        "(--cycle-len, --cycle-mult)", "--schedule", str, SCHEDULES),
    "cycle_len": Setting(1, _whole(1), "epochs of the first SGDR cycle (--schedule sgdr)", "--cycle-len", int),
    "cycle_mult": Setting(1, _whole(1), "each SGDR cycle is this many times as long as the one before (the lesson's "
                          "cycle_len=1, cycle_mult=2: cycles of 1, 2, 4 epochs; --epochs must end a cycle)",
                          "--cycle-mult", int),
    "device": Setting("auto", check_device, "auto (CUDA for 1,000,000 training ratings or more, when present), cpu, "
                      "cuda or cuda:N", "--device", str),
    "valid_pct": Setting(0.2, _number(lo=0, hi=1, hi_open=True), "share of the ratings held out for validation",
                         "--valid-pct", float),
    "seed": Setting(42, _whole(0), "seed of the split, the start values and the shuffling", "--seed", int),
    "y_range": Setting("auto", _y_range, "sigmoid output range of dotbias and nn: auto (fastai's 0-5.5 for MovieLens "
                       "scales, else the ratings' range widened by a ninth), none, or LOW HIGH", "--y-range", y_range,
                       nargs="+", metavar=("LOW|none|auto", "HIGH")),
    "hidden": Setting((10,), _sizes, "sizes of the net's hidden layers, each linear -> ReLU -> dropout (--model nn; "
                      "the lesson's net has one of 10)", "--hidden", numbers(int), nargs="+", metavar="N"),
    "dropout": Setting((0.05, 0.5), _dropout, "dropout probabilities of the net: on the embeddings, after each hidden "
                       "layer (--model nn)", "--dropout", numbers(float), nargs=2, metavar=("P_EMB", "P_HIDDEN")),
    "user_factors": Setting(None, _optional(_whole(1)), "embedding size of the users (default: --factors); dot "
                            "and dotbias need it equal to --item-factors (a dot product pairs them), the net does not",
                            "--user-factors", int),
    "item_factors": Setting(None, _optional(_whole(1)), "embedding size of the movies (default: --factors)",
                            "--item-factors", int),
    "init": Setting("trunc-normal", _choice(INITS), "start values: trunc-normal (fastai's truncated normal, std "
                    "0.01, torch's defaults for the net's layers) or kaiming (He normal: std sqrt(2 / fan_in) for the "
                    "factor tables and the net's linear weights)", "--init", str, INITS),
    "momentum": Setting(0.9, _number(lo=0, hi=1, hi_open=True), "momentum of sgd with momentum, beta1 of adam/adamw",
                        "--momentum", float),
    "beta2": Setting(0.99, _number(lo=0, hi=1, hi_open=True), "beta2 of adam/adamw (fastai's 0.99, not torch's "
                     "0.999)", "--beta2", float),
    "clip": Setting(True, _switch, "clip predictions to the training ratings' range (as Surprise does)", "--clip"),
    "session_gap": Setting(2.0, _number(lo=0), "minutes: a user's training ratings less than this apart form one "
                           "sitting, and a rating with a time in a sitting gets the sitting's shrunk mean residual "
                           "added (core.sessions; needs timestamps); 0: off", "--session-gap", float),
    "session_shrink": Setting(1.0, _number(lo=0), "a sitting's bias is its residuals' sum / (count + this)",
                              "--session-shrink", float),
    "threads": Setting(None, _optional(_whole(1)), "torch threads during the fit (default: 1 for CPU fits under "
                       "1,000,000 training ratings, else torch's own)", "--threads", int),
    "progress": Setting(None, _optional(_switch), "a progress bar over the epochs on stderr (default: when stderr "
                        "is a terminal)", "--progress"),
    "fused": Setting(None, _optional(_switch), "the fused Triton training step of dotbias with adam or adamw on CUDA "
                     "(default: wherever it can run; off: the plain PyTorch path)", "--fused"),
    "memory_budget": Setting(None, _optional(_memory_size), "stream a ratings file from disk in chunks when it would "
                             "take more memory than this, e.g. 4GB (the shuffle is then chunked, in memory too)",
                             "--memory-budget", str, label="the memory budget"),
    "distributed": Setting(False, _switch, "one fit across the processes torchrun started (DistributedDataParallel; "
                           "NCCL on GPUs, gloo on CPUs)", "--distributed"),
}


def check_fit(params: dict[str, Any]) -> dict[str, Any]:
    """CollabFit's settings after checking each one, with the defaults that depend on others filled in
    (n_factors, epochs None -> AUTO of the model; wd_bias None -> wd; wd_mode None -> decoupled for adamw, else l2);
    SettingsError names the bad one."""
    unknown = sorted(set(params) - set(FIT))
    if unknown:
        raise SettingsError(f"unknown setting '{unknown[0]}'; the settings are {', '.join(FIT)}")
    out = {}
    for name, setting in FIT.items():
        value = params.get(name, setting.default)
        try:
            out[name] = setting.check(value, setting.label or name)
        except checks.CheckError as exc:
            raise SettingsError(str(exc)) from None
    for name, value in AUTO.get(out["model"], AUTO_GRADIENT).items():
        if out[name] is None:
            out[name] = value
    if out["wd_bias"] is None:
        out["wd_bias"] = out["wd"]
    if out["wd_mode"] is None:
        out["wd_mode"] = "decoupled" if out["optimizer"] == "adamw" else "l2"
    _resolve_sizes(out)
    if out["schedule"] == "sgdr" and out["epochs"] is not None:  # None: the fit takes the cycle end nearest the rule
        check_cycles(out["epochs"], out["cycle_len"], out["cycle_mult"])
    return out


def _resolve_sizes(s: dict[str, Any]) -> None:
    """user_factors/item_factors None -> n_factors; for a dot product the two must be equal, and n_factors is them."""
    for side in ("user_factors", "item_factors"):
        if s[side] is None:
            s[side] = s["n_factors"]
    if s["model"] == "nn":
        return
    if s["user_factors"] != s["item_factors"]:
        raise SettingsError(f"user_factors {s['user_factors']} and item_factors {s['item_factors']} differ: model "
                            f"{s['model']} takes the dot product of a user's and a movie's factors, so both need the "
                            f"same size (give --factors; different sizes are for --model nn)")
    s["n_factors"] = s["user_factors"]


def cycle_ends(cycle_len: int, cycle_mult: int, up_to: int) -> list[int]:
    """The epochs after which SGDR cycles end, up to the first at or past `up_to` (1, 2, 4 epochs: 1, 3, 7)."""
    ends, length = [cycle_len], cycle_len
    while ends[-1] < up_to:
        length *= cycle_mult
        ends.append(ends[-1] + length)
    return ends


def fit_epochs(s: dict[str, Any], n_train: int) -> int:
    """The epochs a fit of checked settings s runs on n_train training ratings: the setting, else auto_epochs's rule
    (sgdr: the cycle end nearest it, so the run ends a cycle)."""
    if s["epochs"] is not None:
        return s["epochs"]
    epochs = auto_epochs(n_train, s["batch_size"])
    return nearest_cycle_end(epochs, s["cycle_len"], s["cycle_mult"]) if s["schedule"] == "sgdr" else epochs


def nearest_cycle_end(epochs: int, cycle_len: int, cycle_mult: int) -> int:
    """The SGDR cycle end nearest `epochs` (the later one on a tie): what the epochs rule becomes under sgdr."""
    ends = cycle_ends(cycle_len, cycle_mult, epochs)[-2:]
    return min(ends, key=lambda end: (abs(end - epochs), -end))


def check_cycles(epochs: int, cycle_len: int, cycle_mult: int) -> None:
    """SGDR runs whole cycles: a run that stopped inside one would end at a high learning rate."""
    ends = cycle_ends(cycle_len, cycle_mult, epochs)
    if ends[-1] != epochs:
        raise SettingsError(f"epochs {epochs} ends inside an SGDR cycle: with cycle_len {cycle_len} and cycle_mult "
                            f"{cycle_mult} the cycles end after {', '.join(map(str, ends[-4:]))} epochs; give "
                            f"epochs {' or '.join(map(str, ends[-2:]))}")


def resolve_y_range(value: Any, rating_range: tuple[float, float]) -> tuple[float, float] | None:
    """"auto": fastai's (0, 5.5) for MovieLens scales, else the data's range widened by a ninth each side."""
    if value == "auto":
        lo, hi = rating_range
        pad = (hi - lo) / 9 or 0.5
        return (0.0, 5.5) if 0.0 <= lo and hi <= 5.5 else (lo - pad, hi + pad)
    return None if value is None else (float(value[0]), float(value[1]))


# -- the collab sheet solves ----------------------------------------------------------------------------------------
# Optimizer -> (lr, epochs) it runs with when it is not the tab's own default and no --lr / --epochs is given.
#: Excel Solver's engines as `solve --engine` and the settings cells name them (auto: LP when the model is linear)
SOLVE_ENGINES = ("auto", "grg", "lp", "evolutionary")
SOLVE_OPTIMIZERS: dict[str, tuple[float, int]] = {
    "adam": (0.05, 1000), "adamw": (0.05, 1000), "sgd": (0.5, 1000), "momentum": (0.1, 1000), "lbfgs": (1.0, 200)}
SOLVE: dict[str, Setting] = {
    "optimizer": Setting(None, _optional(_choice(tuple(SOLVE_OPTIMIZERS))), "update rule (default per tab: lbfgs for "
                         "the factor tabs, adam for bias and nnet)", "--optimizer", str, tuple(SOLVE_OPTIMIZERS),
                         label="the optimizer"),
    "lr": Setting(None, _optional(_number(lo=0, lo_open=True)), "learning rate (default per tab and optimizer)",
                  "--lr", float, label="the learning rate"),
    "epochs": Setting(None, _optional(_whole(1)), "full-batch steps (L-BFGS: iterations, each with its line search)",
                      "--epochs", int, label="epochs"),
    "wd": Setting(0.0, _number(lo=0), "weight decay (adam/sgd/momentum: L2 in the gradient; adamw: decoupled; "
                  "lbfgs: L2 in the loss)", "--wd", float, label="the weight decay"),
    "device": Setting("auto", check_device, "torch device: auto (the CPU: a tab is tiny), cpu, cuda or cuda:N",
                      "--device", str),
}


@dataclass(frozen=True)
class SolveSettings:
    """What one tab's solve runs with (device: still "auto"/"cpu"/"cuda"; the solve picks the torch device)."""

    optimizer: str
    lr: float
    epochs: int
    wd: float
    device: str


def check_solve(tab_default: tuple[str, float, int], *, optimizer: str | None = None, lr: float | None = None,
                epochs: int | None = None, wd: float | None = None, device: str = "auto") -> SolveSettings:
    """A tab's (optimizer, lr, epochs) default overridden by what was given; SettingsError names a bad value."""
    given = {"optimizer": optimizer.lower() if isinstance(optimizer, str) else optimizer, "lr": lr,
             "epochs": epochs, "wd": SOLVE["wd"].default if wd is None else wd, "device": device}
    try:
        s = {name: SOLVE[name].check(value, SOLVE[name].label or name) for name, value in given.items()}
    except checks.CheckError as exc:
        raise SettingsError(str(exc)) from None
    tab_optimizer, tab_lr, tab_epochs = tab_default
    opt = s["optimizer"] or tab_optimizer
    d_lr, d_epochs = (tab_lr, tab_epochs) if opt == tab_optimizer else SOLVE_OPTIMIZERS[opt]
    return SolveSettings(opt, d_lr if s["lr"] is None else s["lr"], d_epochs if s["epochs"] is None else s["epochs"],
                         s["wd"], s["device"])
