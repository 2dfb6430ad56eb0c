"""The crosstab tabs, dotprod and bias: fast.ai's sheet, ratings on top, factors around the predictions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from openpyxl.styles import Alignment
from openpyxl.utils.cell import get_column_letter as L
from openpyxl.worksheet.worksheet import Worksheet

import xlcollab.sheets.collab.parts as b
from xlcollab.sheets.collab.data import Data
from xlcollab.sheets.common import HEADER_FONT, comment, define_block, heading, legend, note, print_one_page


def build_crosstab(ws: Worksheet, data: Data, start: dict[str, np.ndarray], *, bias: bool) -> None:
    """Ratings on top; movie factors above and user factors left of the predictions; the RMSE panel on the right."""
    nu, nm, k = len(data.user_ids), len(data.movie_ids), start["user_factors"].shape[1]
    uf0, ub, idc, m0 = 2, 2 + k, 3 + k, 4 + k            # B.. user factors, user bias, ids, then the movies
    m1 = m0 + nm - 1
    panel = m1 + 2
    title_row, id_row, r0 = b.TOP + 1, b.TOP + 2, b.TOP + 3     # titles, movie ids, first rating row
    r1 = r0 + nu - 1
    f0 = r1 + 3                                           # first movie-factor row
    mb = f0 + k                                           # movie-bias row (bias tab)
    head = mb + 1                                         # header row over the predictions
    p0, p1 = head + 1, head + nu
    b.widths(ws, {1: 2, **{c: 8 for c in range(uf0, idc)}, idc: 12, **{c: 7 for c in range(m0, m1 + 1)}})
    params = [(f0, m0, f0 + k - 1, m1), (p0, uf0, p1, uf0 + k - 1)] + ([(mb, m0, mb, m1), (p0, ub, p1, ub)] if bias else [])
    if bias:
        heading(ws, "A1", "Dot product + biases: rating ≈ user·movie + user bias + movie bias")
        text = ("Squash on: the sum goes through a sigmoid into the y range. Solve (or Excel's Solver) changes the "
                "blue cells to make the orange RMSE over the observed ratings as small as it can.")
    else:
        heading(ws, "A1", "Dot product: rating ≈ user factors · movie factors")
        text = ("Each prediction is the dot product of its user's factors (left) and its movie's factors (above). "
                "Solve (or Excel's Solver) changes the blue cells to make the orange RMSE over the observed ratings "
                "as small as it can; blank ratings count for nothing.")
    note(ws, 2, 1, m1, text + b.solver_note(params))
    legend(ws, 3, m0, b.LEGEND, span=b.LEGEND_SPAN)

    # ratings crosstab
    ws.cell(b.TOP, m0, f"Ratings: the {nu} most active users × the {nm} most-rated movies ({data.source})").font = HEADER_FONT
    b.label(ws, id_row, idc, "user \\ movie")
    for j, (mid, title) in enumerate(zip(data.movie_ids, data.titles)):
        t = ws.cell(title_row, m0 + j, title)
        t.alignment = Alignment(text_rotation=90, wrap_text=True, vertical="bottom", horizontal="center")
    b.header_ids(ws, id_row, m0, data.movie_ids, rotate=_long_ids(data.movie_ids))
    ws.row_dimensions[title_row].height = 120
    define_block(ws, "movie_ids", id_row, m0, id_row, m1)
    for i, uid in enumerate(data.user_ids):
        ws.cell(r0 + i, idc, uid).font = HEADER_FONT
        for j in range(nm):
            v = data.grid[i, j]
            ws.cell(r0 + i, m0 + j, None if np.isnan(v) else float(v)).number_format = b.RATING_FMT
    define_block(ws, "user_ids", r0, idc, r1, idc)
    define_block(ws, "ratings", r0, m0, r1, m1, style="input")

    # parameters
    b.label(ws, f0 - 1, m0, f"movie factors ({k} × {nm})")
    for f in range(k):
        ws.cell(f0 + f, idc, f"factor {f + 1}")
    b.fill(ws, f0, m0, start["movie_factors"], b.PARAM_FMT)
    define_block(ws, "movie_factors", f0, m0, f0 + k - 1, m1, style="param")
    for f in range(k):
        b.label(ws, head, uf0 + f, f"factor {f + 1}", wrap=True)
    b.label(ws, head - 1, uf0, f"user factors ({nu} × {k})")
    b.fill(ws, p0, uf0, start["user_factors"], b.PARAM_FMT)
    define_block(ws, "user_factors", p0, uf0, p1, uf0 + k - 1, style="param")
    if bias:
        ws.cell(mb, idc, "movie bias")
        b.fill(ws, mb, m0, start["movie_bias"], b.PARAM_FMT)
        define_block(ws, "movie_bias", mb, m0, mb, m1, style="param")
        b.label(ws, head, ub, "user bias", wrap=True)
        b.fill(ws, p0, ub, start["user_bias"], b.PARAM_FMT)
        define_block(ws, "user_bias", p0, ub, p1, ub, style="param")
    ws.row_dimensions[head].height = 32
    _predictions(ws, data, Grid(uf0, ub, idc, m0, r0, f0, mb, head, p0, k), bias=bias, panel=panel)
    ratings, preds = b.rng(m0, r0, m1, r1, absolute=False), b.rng(m0, p0, m1, p1, absolute=False)
    b.panel(ws, panel, f"=SQRT(SUMPRODUCT(ISNUMBER({ratings})*({ratings}-{preds})^2)/COUNT({ratings}))")
    b.trace(ws, panel, b.TOP + 17, f"{L(panel + 3)}{b.TOP}")
    b.solver(ws, (b.TOP, panel + 1), params)
    define_block(ws, "buttons", b.BUTTONS_ROW, uf0)
    for (row, col), text in {
        (r0, m0): "A rating from MovieLens (0.5 to 5). Blank: not rated; its prediction shows nothing and counts for "
                  "nothing in the RMSE. Change a rating and Solve again.",
        (f0, m0): f"This movie's {k} factors: numbers the fit chooses, one per hidden 'taste' (how much action, how "
                  "much romance, ...). Nobody tells the model what the factors mean.",
        (p0, uf0): f"This user's {k} factors: how much they like each hidden taste.",
        (p0, m0): "The user's factors (row, left) times the movie's factors (column, above), summed: MMULT of a row "
                  "and a column. Blank where the rating is blank.",
        (b.TOP, panel + 1): "The objective: the root mean squared error of the predictions over the observed "
                            "ratings. Solve changes the blue cells to make it as small as it can.",
        (b.TOP + 3, panel + 1): "Solve writes what it ran (optimizer, lr, epochs, ...) and the RMSE it reached here; "
                                "the RMSE-by-epoch trace below feeds the chart.",
    }.items():
        comment(ws, f"{L(col)}{row}", text)
    if bias:
        comment(ws, f"{L(panel + 1)}{b.TOP + 12}", "on: every prediction goes through a sigmoid into the y range "
                "below (fast.ai's y_range), so no prediction leaves the ratings' scale. off: the plain sum.")
    ws.freeze_panes = f"A{id_row + 1}"
    print_one_page(ws, f"A1:{L(panel + 9)}{p1}")


@dataclass(frozen=True)
class Grid:
    """Where the crosstab's blocks start: user factor, user bias, id and first movie columns; first rating,
    movie-factor, movie-bias, prediction-header and prediction rows; the number of factors."""
    uf0: int
    ub: int
    idc: int
    m0: int
    r0: int
    f0: int
    mb: int
    head: int
    p0: int
    k: int


def _predictions(ws: Worksheet, data: Data, g: Grid, *, bias: bool, panel: int) -> None:
    """=IF(ISNUMBER(rating), MMULT(user row, movie column) [+ biases, squashed], 0) per cell (0 shows nothing)."""
    nu, nm = len(data.user_ids), len(data.movie_ids)
    b.label(ws, g.head, g.idc, "user \\ movie")
    b.header_ids(ws, g.head, g.m0, data.movie_ids, rotate=_long_ids(data.movie_ids))
    if bias:
        sq, lo, hi = b.squash_cells(ws, panel, b.TOP + 12)
    for i in range(nu):
        p = g.p0 + i
        ws.cell(p, g.idc, data.user_ids[i]).font = HEADER_FONT
        for j in range(nm):
            c = L(g.m0 + j)
            dot = f"MMULT(${L(g.uf0)}{p}:${L(g.uf0 + g.k - 1)}{p},{c}${g.f0}:{c}${g.f0 + g.k - 1})"
            if bias:
                score = f"{dot}+${L(g.ub)}{p}+{c}${g.mb}"
                value = f'IF({sq}="on",{lo}+({hi}-{lo})/(1+EXP(-({score}))),{score})'
            else:
                value = dot
            ws.cell(p, g.m0 + j, f"=IF(ISNUMBER({c}{g.r0 + i}),{value},0)").number_format = b.PRED_FMT
    define_block(ws, "predictions", g.p0, g.m0, g.p0 + nu - 1, g.m0 + nm - 1, style="output")


def _long_ids(ids: list) -> bool:
    """Whether some id is too long for a column of width 7 (it is then written upwards)."""
    return any(len(str(v)) > 5 for v in ids)
