"""Where everything of an optimizer tab sits, and its formulas (what `build` writes and what `run` checks).

An optimizer tab, top to bottom:
  rows 1-4   title, what the rule is, how it differs from torch.optim, the colour legend;
  rows 5-13  the Run and Reset buttons (name `buttons`, A5), under them Run's settings (name `settings`, A13:B13:
             the epochs one click runs, blank for RUN_EPOCHS), and three blocks from column C, each a caption, a row
             of labels and a row of values: the inputs (yellow; names start_a, start_b, lr, beta/beta1/beta2, eps,
             wd, lr_decay, jump, divisor), the state carried into the first row (blue; names epoch, lr_now, a, b,
             step, b1t, b2t, rms_a, rms_b, g_rms, m_a, m_b, ...) and this epoch's outputs (green; loss, end_a, end_b
             and what the next epoch's state takes: rms_a_next, rms_b_next, g_rms_now, ratio, lr_next);
  row 15     the headers; from row 16 the step table (name `steps`): one row per data point, formulas only, the
             row's a and b, prediction, error, loss, gradients, optimizer state, new a and b (which the next row takes);
  beside it  the trace (name `trace`, TRACE_ROWS rows): epoch, a, b, loss, lr, state, written by `run`.
The defined names are the only cells `run_book` / `reset_book` read or write: every formula refers to cells,
so a name may be moved only together with the formulas that use it.
Run's settings block holds only the epochs per click: the learning rate and the other hyperparameters are already
the inputs block's cells (the formulas read them, so they cannot live twice), and a device would mean nothing here:
Run steps the rules on Python floats, one row at a time (no tensor a GPU could take).
"""
from __future__ import annotations

from dataclasses import dataclass

from openpyxl.utils.cell import absolute_coordinate, get_column_letter

from xlcollab.book.base import cell_name, range_name
from xlcollab.sheets.graddesc.specs import FD_OFFSET, TRACE_ROWS, Spec

BUTTONS_CELL = "A5"     # where the .xlsm puts the Run and Reset buttons (stacked down from here, two columns wide)
SETTINGS_ROW = 13       # Run's settings block: label in A, value in B (under the Reset button, rows 8-9)
RUN_EPOCHS = 5          # epochs per click of Run while its settings cell is blank, as the original graddesc button
BLOCK_COL = 3           # first column of the inputs / state / outputs blocks (C)
INPUT_ROW, STATE_ROW, OUTPUT_ROW = 7, 10, 13   # the value rows; the labels are one row up, the captions two
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
        return {inp.name: cell_name(INPUT_ROW, BLOCK_COL + i) for i, inp in enumerate(self.spec.inputs)}

    @property
    def state(self) -> dict[str, str]:
        return {name: cell_name(STATE_ROW, BLOCK_COL + i) for i, name in enumerate(self.spec.state_names)}

    @property
    def outputs(self) -> dict[str, str]:
        return {name: cell_name(OUTPUT_ROW, BLOCK_COL + i) for i, name in enumerate(self.spec.output_names)}

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

    @property
    def block_width(self) -> int:
        """Columns the widest of the three top blocks takes, from BLOCK_COL."""
        return max(len(self.spec.inputs), len(self.spec.state_names), len(self.spec.output_names))

    def column(self, key: str) -> str:
        """The step table's whole column `key`, e.g. "H16:H44"."""
        c = self.col[key]
        return f"{c}{FIRST}:{c}{self.last}"

    def output_formulas(self) -> dict[str, str]:
        """The "this epoch" block: the epoch's loss, a and b after it, and the next epoch's lr / RMS (Run copies them)."""
        s, c = self.spec, self.col
        inp = {k: absolute_coordinate(v) for k, v in self.inputs.items()}
        top = {k: absolute_coordinate(v) for k, v in self.state.items()}
        out = {"loss": f"=AVERAGE({self.column('loss')})",
               "end_a": f"={c['new_a']}{self.last}", "end_b": f"={c['new_b']}{self.last}"}
        for p in ("a", "b") if s.rms_scaled else ():  # the RMS of every gradient so far
            g, rms, done = self.column("g" + p), top["rms_" + p], top["epoch"]
            out[f"rms_{p}_next"] = f"=SQRT(({rms}*{rms}*{done}*COUNT({g})+SUMSQ({g}))/(({done}+1)*COUNT({g})))"
        if s.schedule == "jump":
            both = f"{self.column('ga')},{self.column('gb')}"
            here = {k: absolute_coordinate(v) for k, v in self.outputs.items()}
            out["g_rms_now"] = f"=SQRT(SUMSQ({both})/COUNT({both}))"
            out["ratio"] = f"=IF({top['g_rms']}=0,1,{here['g_rms_now']}/{top['g_rms']})"
            out["lr_next"] = f"=IF({here['ratio']}>{inp['jump']},{top['lr_now']}/{inp['divisor']},{top['lr_now']})"
        elif s.schedule == "anneal":
            out["lr_next"] = f"={top['lr_now']}*{inp['lr_decay']}"
        return out

    def lr_cell(self) -> str:
        """The cell the rows take their learning rate from: the input, or the state's lr of this epoch."""
        return absolute_coordinate(self.state["lr_now"] if self.spec.schedule != "constant" else self.inputs["lr"])

    def formulas(self) -> list[list[str]]:
        """The step table's formulas, row by row: what `build` writes and what `run` insists on finding."""
        return [self._row(i) for i in range(self.n)]

    def _row(self, i: int) -> list[str]:
        s, c, r = self.spec, self.col, FIRST + i
        inp = {k: absolute_coordinate(v) for k, v in self.inputs.items()}
        top = {k: absolute_coordinate(v) for k, v in self.state.items()}

        def prev(key: str, state: str | None = None) -> str:
            """The value of column `key` the row above left (the state cell `state` or `key`, in the first row)."""
            return top[state or key] if i == 0 else f"{c[key]}{r - 1}"

        x, y, a, b = (f"{c[k]}{r}" for k in ("x", "y", "a", "b"))
        err, loss = f"{c['err']}{r}", f"{c['loss']}{r}"
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
        if s.counter:
            f["step"] = f"={prev('step')}+1"
            f["b1t"] = f"={prev('b1t')}*{inp['beta1']}"
            f["b2t"] = f"={prev('b2t')}*{inp['beta2']}"
        for p in ("a", "b"):
            f.update(self._update(p, r, inp, top, prev))
        return [f[k] for k in s.columns]

    def _update(self, p: str, r: int, inp: dict[str, str], top: dict[str, str], prev) -> dict[str, str]:
        """The rule's columns for parameter `p` in row `r`: its buffers and its new value."""
        s, c, lr = self.spec, self.col, self.lr_cell()
        g, here = f"{c['g' + p]}{r}", f"{c[p]}{r}"
        if s.rule == "sgd" and s.rms_scaled:  # fast.ai's Adagrad: lr / the gradients' RMS so far (no step while it is 0)
            rms = top["rms_" + p]
            return {"new_" + p: f"={here}-IF({rms}=0,0,{lr}/{rms})*{g}"}
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
        b1, b2 = inp["beta1"], inp["beta2"]  # sheet_adam
        m, v = f"{c['m_' + p]}{r}", f"{c['v_' + p]}{r}"
        out = {"m_" + p: f"={b1}*{prev('m_' + p)}+(1-{b1})*{g}",
               "v_" + p: f"={b2}*{prev('v_' + p)}+(1-{b2})*({g}*{g})"}
        if s.counter:
            b1t, b2t = f"{c['b1t']}{r}", f"{c['b2t']}{r}"
            shrunk = f"{here}*(1-{lr}*{inp['wd']})" if s.decoupled else here
            out["new_" + p] = f"={shrunk}-{lr}/(1-{b1t})*({m}/(SQRT({v})/SQRT(1-{b2t})+{inp['eps']}))"
        else:  # fast.ai's form: no ε, and no step while v is 0 (instead of 0/0)
            out["new_" + p] = f"={here}-{lr}*IF({v}=0,0,{m}/SQRT({v}))"
        return out
