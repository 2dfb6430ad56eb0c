"""Where everything of an optimizer tab sits, and the step table's formulas (what `build` writes, what `run` checks).

An optimizer tab, top to bottom:
  rows 5..   inputs (yellow, column B; names start_a, start_b, lr, beta/beta1/beta2, eps, wd, lr_decay),
             the state carried into the first row (blue, column F; names epoch, a, b, step, m_a, m_b, ...),
             outputs (green, column J; names loss, end_a, end_b, lr_now);
  row 15/16+ the step table (name `steps`): one row per data point, formulas only: the row's a and b,
             prediction, error, loss, gradients, optimizer state, new a and b (which the next row takes);
  beside it  the trace (name `trace`, TRACE_ROWS rows): epoch, a, b, loss, lr, state, written by `run`.
The defined names are the only cells `run_book` / `reset_book` read or write: every formula refers to cells,
so a name may be moved only together with the formulas that use it.
"""
from __future__ import annotations

from dataclasses import dataclass

from openpyxl.utils.cell import absolute_coordinate, get_column_letter

from xlcollab.book.base import range_name
from xlcollab.sheets.graddesc.specs import FD_OFFSET, TRACE_ROWS, Spec

TOP = 5                 # first row of the inputs / state / outputs blocks
HEADER = 15             # header row of the step table and the trace
FIRST = HEADER + 1      # first step row and first trace row
DATA_FIRST = 5          # first data row on the `data` tab


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
            lr, decay = absolute_coordinate(self.inputs["lr"]), absolute_coordinate(self.inputs["lr_decay"])
            out["lr_now"] = f"={lr}*{decay}^{absolute_coordinate(self.state['epoch'])}"
        return out

    def lr_cell(self) -> str:
        return absolute_coordinate(self.outputs["lr_now"] if self.spec.anneal else self.inputs["lr"])

    def formulas(self) -> list[list[str]]:
        """The step table's formulas, row by row: what `build` writes and what `run` insists on finding."""
        return [self._row(i) for i in range(self.n)]

    def _row(self, i: int) -> list[str]:
        s, c, r = self.spec, self.col, FIRST + i
        inp = {k: absolute_coordinate(v) for k, v in self.inputs.items()}
        top = {k: absolute_coordinate(v) for k, v in self.state.items()}

        def prev(key: str) -> str:
            """The value of column `key` the row above left (the state cell, in the first row)."""
            return top[key] if i == 0 else f"{c[key]}{r - 1}"

        x, y, a, b = (f"{c[k]}{r}" for k in ("x", "y", "a", "b"))
        err, loss = f"{c['err']}{r}", f"{c['loss']}{r}"
        f = {"x": f"=data!A{DATA_FIRST + i}", "y": f"=data!B{DATA_FIRST + i}",
             "a": "=" + (top["a"] if i == 0 else f"{c['new_a']}{r - 1}"),
             "b": "=" + (top["b"] if i == 0 else f"{c['new_b']}{r - 1}"),
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
        if s.counter:
            f["step"] = f"={prev('step')}+1"
        for p in ("a", "b"):
            f.update(self._update(p, r, inp, prev))
        return [f[k] for k in s.columns]

    def _update(self, p: str, r: int, inp: dict[str, str], prev) -> dict[str, str]:
        """The rule's columns for parameter `p` in row `r`: its buffers and its new value."""
        s, c, lr = self.spec, self.col, self.lr_cell()
        g, here = f"{c['g' + p]}{r}", f"{c[p]}{r}"
        if s.rule == "sgd" and not s.buffers:
            return {"new_" + p: f"={here}-{lr}*{g}"}
        if s.rule == "sgd":
            beta, m = inp["beta"], f"{c['m_' + p]}{r}"
            return {"m_" + p: f"={beta}*{prev('m_' + p)}+(1-{beta})*{g}", "new_" + p: f"={here}-{lr}*{m}"}
        if s.rule == "adagrad":
            total = f"{c['s_' + p]}{r}"
            return {"s_" + p: f"={prev('s_' + p)}+{g}*{g}",
                    "new_" + p: f"={here}-{lr}*({g}/(SQRT({total})+{inp['eps']}))"}
        if s.rule == "rmsprop":
            beta, v = inp["beta"], f"{c['v_' + p]}{r}"
            return {"v_" + p: f"={beta}*{prev('v_' + p)}+(1-{beta})*({g}*{g})",
                    "new_" + p: f"={here}-{lr}*({g}/(SQRT({v})+{inp['eps']}))"}
        b1, b2 = inp["beta1"], inp["beta2"]  # adam
        m, v = f"{c['m_' + p]}{r}", f"{c['v_' + p]}{r}"
        out = {"m_" + p: f"={b1}*{prev('m_' + p)}+(1-{b1})*{g}",
               "v_" + p: f"={b2}*{prev('v_' + p)}+(1-{b2})*({g}*{g})"}
        if s.counter:
            t = f"{c['step']}{r}"
            shrunk = f"{here}*(1-{lr}*{inp['wd']})" if s.decoupled else here
            out["new_" + p] = f"={shrunk}-{lr}/(1-{b1}^{t})*({m}/(SQRT({v})/SQRT(1-{b2}^{t})+{inp['eps']}))"
        else:
            out["new_" + p] = f"={here}-{lr}*({m}/SQRT({v}))"
        return out
