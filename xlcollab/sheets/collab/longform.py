"""The long-form tabs: movielens_emb (look-ups), movielens_1hot (one-hot x embedding matrix) and nnet (a mini net).

Each holds the embedding tables at the top (from column C: columns A and B keep room for the buttons), one row per
rating below LONG_HEADER (userId, movieId, rating in columns A..C, then the tab's formulas), and the RMSE panel,
its trace and its chart on the right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from openpyxl.utils.cell import get_column_letter as L
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

import xlcollab.sheets.collab.parts as b
from xlcollab.sheets.collab.data import Data
from xlcollab.sheets.common import (FIX3, FIX4, INT, NOTE_FONT, comment, define_block, heading, legend, note,
                                    print_one_page)

ID_COLS = 3         # the user embedding table starts at column C
PRINTED_ROWS = 30   # the printed page shows the tables and the first rows of the long table
PANEL_ROWS = 16     # rows from TOP the panel, the y range and the chart take


@dataclass(frozen=True)
class Tables:
    """Where the embedding tables are: id and factor columns, first and last rows, the title column."""
    uid: int
    uf: int
    mid: int
    mf: int
    k: int
    r0: int
    ur1: int
    mr1: int
    title: int | None   # the movies' titles column, where the tab has one

    @property
    def right(self) -> int:
        """The first column right of the tables, a gap column left free."""
        return (self.title or self.mf + self.k - 1) + 2

    @property
    def blocks(self) -> list[tuple[int, int, int, int]]:
        return [(self.r0, self.uf, self.ur1, self.uf + self.k - 1), (self.r0, self.mf, self.mr1, self.mf + self.k - 1)]

    @property
    def long_header(self) -> int:
        """The header row of the long table: below both embedding tables (and, however few the users and movies,
        below the panel, the y range and the chart beside them) and a row of captions."""
        return max(self.ur1, self.mr1, b.TOP + PANEL_ROWS) + 3


def _tables(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray, *, titles: bool = True) -> Tables:
    """User and movie embedding tables (id + factors, and the movies' titles where asked) at the top."""
    k = users.shape[1]
    uid = ID_COLS
    t = Tables(uid, uid + 1, uid + k + 2, uid + k + 3, k, b.TOP + 2, b.TOP + 1 + len(data.user_ids),
               b.TOP + 1 + len(data.movie_ids), uid + 2 * k + 3 if titles else None)
    b.label(ws, b.TOP, t.uid, f"user embeddings ({len(data.user_ids)} × {k})")
    b.label(ws, b.TOP + 1, t.uid, "userId")
    b.label(ws, b.TOP, t.mid, f"movie embeddings ({len(data.movie_ids)} × {k})")
    b.label(ws, b.TOP + 1, t.mid, "movieId")
    for f in range(k):
        b.label(ws, b.TOP + 1, t.uf + f, f"factor {f + 1}", wrap=True)
        b.label(ws, b.TOP + 1, t.mf + f, f"factor {f + 1}", wrap=True)
    for i, u in enumerate(data.user_ids):
        ws.cell(t.r0 + i, t.uid, u).number_format = "General"
    for j, m in enumerate(data.movie_ids):
        ws.cell(t.r0 + j, t.mid, m).number_format = "General"
    if titles:
        b.label(ws, b.TOP + 1, t.title, "title")
        for j, title in enumerate(data.titles):
            ws.cell(t.r0 + j, t.title, title).font = NOTE_FONT
        b.widths(ws, {t.title: 30})
    b.fill(ws, t.r0, t.uf, users, b.PARAM_FMT)
    b.fill(ws, t.r0, t.mf, movies, b.PARAM_FMT)
    define_block(ws, "user_ids", t.r0, t.uid, t.ur1, t.uid, style="input")
    define_block(ws, "movie_ids", t.r0, t.mid, t.mr1, t.mid, style="input")
    define_block(ws, "user_factors", t.r0, t.uf, t.ur1, t.uf + k - 1, style="param")
    define_block(ws, "movie_factors", t.r0, t.mf, t.mr1, t.mf + k - 1, style="param")
    b.widths(ws, {1: 9, 2: 9, 3: 9, t.mid: 9, **{c: 8 for c in (*range(t.uf, t.uf + k), *range(t.mf, t.mf + k))}})
    ws.row_dimensions[b.TOP + 1].height = 30
    return t


def _long_ratings(ws: Worksheet, data: Data, header: int) -> tuple[int, int]:
    """userId, movieId, rating per row under `header` (columns A..C); returns (first row, last row)."""
    for c, text in enumerate(("userId", "movieId", "rating"), start=1):
        b.label(ws, header, c, text)
    first = header + 1
    for n, (u, m, r) in enumerate(data.long):
        ws.cell(first + n, 1, u).number_format = "General"
        ws.cell(first + n, 2, m).number_format = "General"
        ws.cell(first + n, 3, r).number_format = b.RATING_FMT
    last = first + len(data.long) - 1
    define_block(ws, "ratings", first, 1, last, 3, style="input")
    return first, last


def _lookups(ws: Worksheet, t: Tables, first: int, last: int, col: int) -> None:
    """INDEX/MATCH look-ups of each row's user factors then movie factors, from column `col` on (green)."""
    k = t.k
    users, movies = b.rng(t.uf, t.r0, t.uf + k - 1, t.ur1), b.rng(t.mf, t.r0, t.mf + k - 1, t.mr1)
    uids, mids = b.rng(t.uid, t.r0, t.uid, t.ur1), b.rng(t.mid, t.r0, t.mid, t.mr1)
    for r in range(first, last + 1):
        for f in range(k):
            ws.cell(r, col + f, f"=INDEX({users},MATCH($A{r},{uids},0),{f + 1})").number_format = b.PARAM_FMT
            ws.cell(r, col + k + f, f"=INDEX({movies},MATCH($B{r},{mids},0),{f + 1})").number_format = b.PARAM_FMT
    b.formulas_fill(ws, first, col, last, col + 2 * k - 1)
    b.widths(ws, {c: 8 for c in range(col, col + 2 * k)})


def _long_tail(ws: Worksheet, header: int, first: int, last: int, pcol: int, ecol: int) -> str:
    """Name predictions and errors; return the RMSE formula =SQRT(AVERAGE(errors))."""
    b.label(ws, header, pcol, "prediction", wrap=True)
    b.label(ws, header, ecol, "squared error", wrap=True)
    define_block(ws, "predictions", first, pcol, last, pcol, style="output")
    define_block(ws, "errors", first, ecol, last, ecol, style="output")
    b.widths(ws, {pcol: 10, ecol: 10})
    return f"=SQRT(AVERAGE({b.rng(ecol, first, ecol, last, absolute=False)}))"


def _frame(ws: Worksheet, title: str, text: str, t: Tables, panel: int, rmse: str, trace_col: int,
           blocks: list[tuple[int, int, int, int]], last_row: int, last_col: int, comments: dict[str, str]) -> None:
    """What every long-form tab has around its tables: title, note, legend, panel, trace, chart, Solver, page,
    and the tab's cell comments."""
    heading(ws, "A1", title)
    note(ws, 2, 1, panel - 1, text + b.solver_note(blocks))
    legend(ws, 3, ID_COLS, b.LEGEND, span=b.LEGEND_SPAN)
    b.panel(ws, panel, rmse)
    b.trace(ws, trace_col, t.long_header - 1, f"{L(panel + b.CHART_COL)}{b.TOP}")
    b.solver(ws, (b.TOP, panel + 1), blocks)
    define_block(ws, "buttons", b.BUTTONS_ROW, 1)
    comments = comments | {f"{L(panel + 1)}{b.TOP}": "The objective: SQRT(AVERAGE(squared errors)) over the rating "
                           "rows. Solve changes the blue cells to make it as small as it can."}
    for cell, remark in comments.items():
        comment(ws, cell, remark)
    ws.freeze_panes = f"A{t.long_header + 1}"
    last_printed = min(last_row, t.long_header + PRINTED_ROWS)
    print_one_page(ws, f"A1:{L(max(last_col, panel + b.CHART_END, trace_col + 1))}{last_printed}")


def build_emb(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray) -> None:
    """Long form: each rating row looks up its user's and movie's factors and takes their SUMPRODUCT."""
    t = _tables(ws, data, users, movies)
    k, head = t.k, t.long_header
    first, last = _long_ratings(ws, data, head)
    c0 = 4
    b.caption(ws, head - 1, c0, c0 + k - 1, "user factors (looked up)")
    b.caption(ws, head - 1, c0 + k, c0 + 2 * k - 1, "movie factors (looked up)")
    for f in range(k):
        b.label(ws, head, c0 + f, f"u{f + 1}")
        b.label(ws, head, c0 + k + f, f"m{f + 1}")
    _lookups(ws, t, first, last, c0)
    pcol, ecol = c0 + 2 * k, c0 + 2 * k + 1
    for r in range(first, last + 1):
        u, m = b.rng(c0, r, c0 + k - 1, r, absolute=False), b.rng(c0 + k, r, c0 + 2 * k - 1, r, absolute=False)
        ws.cell(r, pcol, f"=SUMPRODUCT({u},{m})").number_format = FIX3
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = FIX4
    rmse = _long_tail(ws, head, first, last, pcol, ecol)
    _frame(ws, "Embeddings: the dot-product model, one row per rating",
           "Each row looks up its user's and its movie's factors (INDEX/MATCH) and predicts their SUMPRODUCT; "
           "RMSE = SQRT(AVERAGE(squared errors)): the same objective as the dotprod tab.", t, t.right, rmse,
           ecol + 2, t.blocks, last, ecol,
           {f"D{first}": "INDEX/MATCH finds this row's user in the user table and takes their factor: an embedding "
                         "look-up, what nn.Embedding does.",
            f"{L(pcol)}{first}": "SUMPRODUCT of the looked-up user and movie factors: the same dot product as on the "
                                 "dotprod tab, one row per rating."})


def build_1hot(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray) -> None:
    """One-hot rows times the embedding matrices (MMULT array formulas) give exactly the look-ups of movielens_emb.

    The one-hot columns sit under the embedding tables, so they are as wide as a factor (no titles column here)."""
    t = _tables(ws, data, users, movies, titles=False)
    k, head, nu, nm = t.k, t.long_header, len(data.user_ids), len(data.movie_ids)
    first, last = _long_ratings(ws, data, head)
    uh, mh = 4, 4 + nu                     # one-hot blocks
    uv, mv = mh + nm, mh + nm + k          # MMULT results
    pcol, ecol = mv + k, mv + k + 1
    b.widths(ws, {c: max(7, ws.column_dimensions[L(c)].width or 0) for c in range(uh, uv)})
    for text, c0, c1 in (("user one-hot", uh, mh - 1), ("movie one-hot", mh, uv - 1),
                         ("one-hot × user embeddings", uv, mv - 1), ("one-hot × movie embeddings", mv, pcol - 1)):
        b.caption(ws, head - 1, c0, c1, text)
    for j in range(nu):
        ws.cell(head, uh + j, f"=INDEX({b.rng(t.uid, t.r0, t.uid, t.ur1)},{j + 1})")
    for j in range(nm):
        ws.cell(head, mh + j, f"=INDEX({b.rng(t.mid, t.r0, t.mid, t.mr1)},{j + 1})")
    b.style_headers(ws, head, uh, uv - 1, rotate=True)
    b.formulas_fill(ws, head, uh, head, uv - 1)
    ws.row_dimensions[head].height = 8 * max(len(str(v)) for v in (*data.user_ids, *data.movie_ids)) + 6
    for f in range(k):
        b.label(ws, head, uv + f, f"u{f + 1}")
        b.label(ws, head, mv + f, f"m{f + 1}")
    users_m, movies_m = b.rng(t.uf, t.r0, t.uf + k - 1, t.ur1), b.rng(t.mf, t.r0, t.mf + k - 1, t.mr1)
    for r in range(first, last + 1):
        for j in range(nu):
            ws.cell(r, uh + j, f"=IF($A{r}={L(uh + j)}${head},1,0)").number_format = INT
        for j in range(nm):
            ws.cell(r, mh + j, f"=IF($B{r}={L(mh + j)}${head},1,0)").number_format = INT
        onehot_u, onehot_m = b.rng(uh, r, uh + nu - 1, r, absolute=False), b.rng(mh, r, mh + nm - 1, r, absolute=False)
        ref_u, ref_m = b.rng(uv, r, uv + k - 1, r, absolute=False), b.rng(mv, r, mv + k - 1, r, absolute=False)
        ws.cell(r, uv).value = ArrayFormula(ref_u, f"=MMULT({onehot_u},{users_m})")
        ws.cell(r, mv).value = ArrayFormula(ref_m, f"=MMULT({onehot_m},{movies_m})")
        for f in range(k):
            ws.cell(r, uv + f).number_format = ws.cell(r, mv + f).number_format = b.PARAM_FMT
        ws.cell(r, pcol, f"=SUMPRODUCT({ref_u},{ref_m})").number_format = FIX3
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = FIX4
    define_block(ws, "user_onehot", first, uh, last, uh + nu - 1, style="output")
    define_block(ws, "movie_onehot", first, mh, last, mh + nm - 1, style="output")
    b.formulas_fill(ws, first, uv, last, pcol - 1)
    b.widths(ws, {c: 8 for c in range(uv, pcol)})
    rmse = _long_tail(ws, head, first, last, pcol, ecol)
    _frame(ws, "One-hot encoding × embedding matrix = embedding look-up",
           f"Each row's one-hot user vector (1 × {nu}) times the user embedding matrix ({nu} × {k}) is that user's "
           "factors (MMULT); the same for movies. Predictions and RMSE equal those of movielens_emb (the movies' "
           "titles are on that tab).", t,
           uv, rmse, ecol + 2, t.blocks, last, ecol,  # the panel over the products: the one-hot columns stay even
           {f"D{first}": "1 where this row's user is the column's user, 0 elsewhere: a one-hot vector.",
            f"{L(uv)}{first}": "MMULT(one-hot row, user embedding matrix): the one 1 picks the user's row, every "
                               "other term is 0. Exactly the look-up on movielens_emb."})


def build_nnet(ws: Worksheet, data: Data, start: dict[str, np.ndarray]) -> None:
    """The lesson's mini net: [user emb, movie emb] -> ReLU hidden layer -> output unit -> sigmoid into y range."""
    t = _tables(ws, data, start["user_factors"], start["movie_factors"], titles=False)
    k, h, head = t.k, start["hidden_weights"].shape[1], t.long_header
    first, last = _long_ratings(ws, data, head)
    wl, top = t.right, b.TOP + 2     # weights right of the tables: W (2k x h), biases, output weights
    w0, w1 = wl + 1, wl + h
    b.label(ws, b.TOP, wl, f"hidden layer weights ({2 * k} × {h})")
    for j in range(h):
        b.label(ws, b.TOP + 1, w0 + j, f"h{j + 1}")
    for i in range(2 * k):
        ws.cell(top + i, wl, f"user f{i + 1}" if i < k else f"movie f{i - k + 1}")
    hb, ow, ob = top + 2 * k, top + 2 * k + 1, top + 2 * k + 2
    for row, text in ((hb, "hidden bias"), (ow, "output weights"), (ob, "output bias")):
        ws.cell(row, wl, text)
    b.fill(ws, top, w0, start["hidden_weights"], b.PARAM_FMT)
    for row, name in ((hb, "hidden_bias"), (ow, "output_weights"), (ob, "output_bias")):
        b.fill(ws, row, w0, start[name], b.PARAM_FMT)
    weights = t.blocks + [(top, w0, top + 2 * k - 1, w1), (hb, w0, hb, w1), (ow, w0, ow, w1), (ob, w0, ob, w0)]
    for name, (r0, c0, r1, c1) in zip(("hidden_weights", "hidden_bias", "output_weights", "output_bias"), weights[2:]):
        define_block(ws, name, r0, c0, r1, c1, style="param")
    b.widths(ws, {wl: 14, **{c: 8 for c in range(w0, w1 + 1)}})
    panel = w1 + 2
    lo, hi = b.y_range_cells(ws, panel, b.TOP + 12)
    ecol = _network(ws, t, head, first, last, h, weights, lo, hi)
    rmse = _long_tail(ws, head, first, last, ecol - 1, ecol)
    _frame(ws, "A neural net instead of a dot product",
           f"Each row: the user's and movie's embeddings side by side ({2 * k} numbers) → hidden layer MAX(0, inputs "
           f"× weights + bias) ({h} units) → output unit → sigmoid into the y range (the movies' titles are on "
           "movielens_emb).", t, panel, rmse, ecol + 2,
           weights, last, ecol,
           {f"{L(ecol - 2 - h)}{first}": "ReLU: MAX(0, z). A negative sum is cut to 0, which is what makes the "
                                             "net more than a linear function.",
            f"{L(ecol - 1)}{first}": "The output squashed by a sigmoid into the y range: y low + (y high - y low) / "
                                     "(1 + EXP(-output))."})


def _network(ws: Worksheet, t: Tables, head: int, first: int, last: int, h: int,
             weights: list[tuple[int, int, int, int]], lo: str, hi: str) -> int:
    """The per-row network (inputs, pre-activations, ReLU, output, prediction, error); returns the error column."""
    k, c0 = t.k, 4
    pre0 = c0 + 2 * k
    relu0 = pre0 + h
    out, pcol, ecol = relu0 + h, relu0 + h + 1, relu0 + h + 2
    for text, a0, a1 in (("inputs: user ‖ movie embeddings", c0, pre0 - 1), ("inputs × weights + bias", pre0, relu0 - 1),
                         ("ReLU: MAX(0, ·)", relu0, out - 1)):
        b.caption(ws, head - 1, a0, a1, text)
    for f in range(k):
        b.label(ws, head, c0 + f, f"u{f + 1}")
        b.label(ws, head, c0 + k + f, f"m{f + 1}")
    for j in range(h):
        b.label(ws, head, pre0 + j, f"z{j + 1}")
        b.label(ws, head, relu0 + j, f"a{j + 1}")
    b.label(ws, head, out, "output")
    _lookups(ws, t, first, last, c0)
    (wr0, wc0, wr1, wc1), (hb, _, _, _), (ow, _, _, _), (ob, _, _, _) = weights[2:]
    w, hbias, oweights = b.rng(wc0, wr0, wc1, wr1), b.rng(wc0, hb, wc1, hb), b.rng(wc0, ow, wc1, ow)
    for r in range(first, last + 1):
        x = b.rng(c0, r, pre0 - 1, r, absolute=False)
        z = b.rng(pre0, r, pre0 + h - 1, r, absolute=False)
        ws.cell(r, pre0).value = ArrayFormula(z, f"=MMULT({x},{w})+{hbias}")
        for j in range(h):
            ws.cell(r, pre0 + j).number_format = FIX3
            ws.cell(r, relu0 + j, f"=MAX(0,{L(pre0 + j)}{r})").number_format = FIX3
        a = b.rng(relu0, r, relu0 + h - 1, r, absolute=False)
        ws.cell(r, out, f"=SUMPRODUCT({a},{oweights})+{b.a(wc0, ob)}").number_format = FIX3
        ws.cell(r, pcol, f"={lo}+({hi}-{lo})/(1+EXP(-{L(out)}{r}))").number_format = FIX3
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = FIX4
    define_block(ws, "inputs", first, c0, last, pre0 - 1)
    define_block(ws, "hidden", first, relu0, last, relu0 + h - 1)
    define_block(ws, "outputs", first, out, last, out)
    b.formulas_fill(ws, first, pre0, last, out)
    b.widths(ws, {c: 8 for c in range(pre0, out + 1)})
    return ecol
