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


@dataclass(frozen=True)
class Grid:
    """Where the crosstab's blocks are, for nu users, nm movies and k factors: the columns of the first user factor,
    the user bias, the ids, the first and last movie and the panel; the rows of the titles, the movie ids, the first
    and last rating, the first movie factor, the movie bias, the predictions' header, the first and last prediction."""
    nu: int
    nm: int
    k: int
    uf0: int
    ub: int
    idc: int
    m0: int
    m1: int
    panel: int
    title_row: int
    id_row: int
    r0: int
    r1: int
    f0: int
    mb: int
    head: int
    p0: int
    p1: int

    @classmethod
    def of(cls, nu: int, nm: int, k: int) -> "Grid":
        uf0 = 2                                  # B.. user factors, then the user bias, the ids, the movies
        m0 = uf0 + k + 2
        r0 = b.TOP + 3                           # under the titles and the movie ids
        f0 = r0 + nu + 2                         # the movie factors under the ratings, then the movie bias
        head = f0 + k + 1                        # the predictions' header, under the movie bias row
        return cls(nu, nm, k, uf0, uf0 + k, uf0 + k + 1, m0, m0 + nm - 1, m0 + nm + 1, b.TOP + 1, b.TOP + 2, r0,
                   r0 + nu - 1, f0, f0 + k, head, head + 1, head + nu)

    def params(self, bias: bool) -> list[tuple[int, int, int, int]]:
        """The parameter blocks (row0, col0, row1, col1) in Solver's order."""
        k, m0, m1, f0, p0, p1, uf0 = self.k, self.m0, self.m1, self.f0, self.p0, self.p1, self.uf0
        blocks = [(f0, m0, f0 + k - 1, m1), (p0, uf0, p1, uf0 + k - 1)]
        return blocks + ([(self.mb, m0, self.mb, m1), (p0, self.ub, p1, self.ub)] if bias else [])


def build_crosstab(ws: Worksheet, data: Data, start: dict[str, np.ndarray], *, bias: bool) -> None:
    """Ratings on top; movie factors above and user factors left of the predictions; the RMSE panel on the right."""
    g = Grid.of(len(data.user_ids), len(data.movie_ids), start["user_factors"].shape[1])
    b.widths(ws, {1: 2, **{c: 8 for c in range(g.uf0, g.idc)}, g.idc: 12, **{c: 7 for c in range(g.m0, g.m1 + 1)}})
    if bias:
        heading(ws, "A1", "Dot product + biases: rating ≈ user·movie + user bias + movie bias")
        text = ("Squash on: the sum goes through a sigmoid into the y range. Solve (or Excel's Solver) changes the "
                "blue cells to make the orange RMSE over the observed ratings as small as it can.")
    else:
        heading(ws, "A1", "Dot product: rating ≈ user factors · movie factors")
        text = ("Each prediction is the dot product of its user's factors (left) and its movie's factors (above). "
                "Solve (or Excel's Solver) changes the blue cells to make the orange RMSE over the observed ratings "
                "as small as it can; blank ratings count for nothing.")
    note(ws, 2, 1, g.m1, text + b.solver_note(g.params(bias)))
    legend(ws, 3, g.m0, b.LEGEND, span=b.LEGEND_SPAN)
    _ratings(ws, data, g)
    _parameters(ws, start, g, bias=bias)
    _predictions(ws, data, g, bias=bias)
    ratings, preds = b.rng(g.m0, g.r0, g.m1, g.r1, absolute=False), b.rng(g.m0, g.p0, g.m1, g.p1, absolute=False)
    b.panel(ws, g.panel, f"=SQRT(SUMPRODUCT(ISNUMBER({ratings})*({ratings}-{preds})^2)/COUNT({ratings}))")
    b.trace(ws, g.panel, b.TOP + 17, f"{L(g.panel + b.CHART_COL)}{b.TOP}")
    b.solver(ws, (b.TOP, g.panel + 1), g.params(bias))
    define_block(ws, "buttons", b.BUTTONS_ROW, g.uf0)
    _comments(ws, g, bias=bias)
    ws.freeze_panes = f"A{g.id_row + 1}"
    print_one_page(ws, f"A1:{L(g.panel + b.CHART_END)}{g.p1}")


def _ratings(ws: Worksheet, data: Data, g: Grid) -> None:
    """The titles (upwards), the movie ids, the user ids and the ratings (blank where not rated)."""
    ws.cell(b.TOP, g.m0, f"Ratings: the {g.nu} most active users × the {g.nm} most-rated movies "
                         f"({data.source})").font = HEADER_FONT
    b.label(ws, g.id_row, g.idc, "user \\ movie")
    for j, title in enumerate(data.titles):
        ws.cell(g.title_row, g.m0 + j, title).alignment = Alignment(text_rotation=90, wrap_text=True,
                                                                   vertical="bottom", horizontal="center")
    b.header_ids(ws, g.id_row, g.m0, data.movie_ids, rotate=_long_ids(data.movie_ids))
    ws.row_dimensions[g.title_row].height = 120
    define_block(ws, "movie_ids", g.id_row, g.m0, g.id_row, g.m1)
    for i, uid in enumerate(data.user_ids):
        ws.cell(g.r0 + i, g.idc, uid).font = HEADER_FONT
        for j in range(g.nm):
            v = data.grid[i, j]
            ws.cell(g.r0 + i, g.m0 + j, None if np.isnan(v) else float(v)).number_format = b.RATING_FMT
    define_block(ws, "user_ids", g.r0, g.idc, g.r1, g.idc)
    define_block(ws, "ratings", g.r0, g.m0, g.r1, g.m1, style="input")


def _parameters(ws: Worksheet, start: dict[str, np.ndarray], g: Grid, *, bias: bool) -> None:
    """Movie factors above the predictions, user factors left of them (and the biases on the bias tab)."""
    k = g.k
    b.label(ws, g.f0 - 1, g.m0, f"movie factors ({k} × {g.nm})")
    for f in range(k):
        ws.cell(g.f0 + f, g.idc, f"factor {f + 1}")
        b.label(ws, g.head, g.uf0 + f, f"factor {f + 1}", wrap=True)
    b.fill(ws, g.f0, g.m0, start["movie_factors"], b.PARAM_FMT)
    define_block(ws, "movie_factors", g.f0, g.m0, g.f0 + k - 1, g.m1, style="param")
    b.label(ws, g.head - 1, g.uf0, f"user factors ({g.nu} × {k})")
    b.fill(ws, g.p0, g.uf0, start["user_factors"], b.PARAM_FMT)
    define_block(ws, "user_factors", g.p0, g.uf0, g.p1, g.uf0 + k - 1, style="param")
    if bias:
        ws.cell(g.mb, g.idc, "movie bias")
        b.fill(ws, g.mb, g.m0, start["movie_bias"], b.PARAM_FMT)
        define_block(ws, "movie_bias", g.mb, g.m0, g.mb, g.m1, style="param")
        b.label(ws, g.head, g.ub, "user bias", wrap=True)
        b.fill(ws, g.p0, g.ub, start["user_bias"], b.PARAM_FMT)
        define_block(ws, "user_bias", g.p0, g.ub, g.p1, g.ub, style="param")
    ws.row_dimensions[g.head].height = 32


def _predictions(ws: Worksheet, data: Data, g: Grid, *, bias: bool) -> None:
    """=IF(ISNUMBER(rating), MMULT(user row, movie column) [+ biases, squashed], 0) per cell (0 shows nothing)."""
    b.label(ws, g.head, g.idc, "user \\ movie")
    b.header_ids(ws, g.head, g.m0, data.movie_ids, rotate=_long_ids(data.movie_ids))
    if bias:
        sq, lo, hi = b.squash_cells(ws, g.panel, b.TOP + 12)
    for i in range(g.nu):
        p = g.p0 + i
        ws.cell(p, g.idc, data.user_ids[i]).font = HEADER_FONT
        for j in range(g.nm):
            c = L(g.m0 + j)
            dot = f"MMULT(${L(g.uf0)}{p}:${L(g.uf0 + g.k - 1)}{p},{c}${g.f0}:{c}${g.f0 + g.k - 1})"
            if bias:
                score = f"{dot}+${L(g.ub)}{p}+{c}${g.mb}"
                value = f'IF({sq}="on",{lo}+({hi}-{lo})/(1+EXP(-({score}))),{score})'
            else:
                value = dot
            ws.cell(p, g.m0 + j, f"=IF(ISNUMBER({c}{g.r0 + i}),{value},0)").number_format = b.PRED_FMT
    define_block(ws, "predictions", g.p0, g.m0, g.p1, g.m1, style="output")


def _comments(ws: Worksheet, g: Grid, *, bias: bool) -> None:
    """Cell comments on the cells a student should look at first."""
    for (row, col), text in {
        (g.r0, g.m0): "A rating from MovieLens (0.5 to 5). Blank: not rated; its prediction shows nothing and counts "
                      "for nothing in the RMSE. Change a rating and Solve again.",
        (g.f0, g.m0): f"This movie's {g.k} factors: numbers the fit chooses, one per hidden 'taste' (how much action, "
                      "how much romance, ...). Nobody tells the model what the factors mean.",
        (g.p0, g.uf0): f"This user's {g.k} factors: how much they like each hidden taste.",
        (g.p0, g.m0): "The user's factors (row, left) times the movie's factors (column, above), summed: MMULT of a "
                      "row and a column. Blank where the rating is blank.",
        (b.TOP, g.panel + 1): "The objective: the root mean squared error of the predictions over the observed "
                              "ratings. Solve changes the blue cells to make it as small as it can.",
        (b.TOP + 3, g.panel + 1): "Solve writes what it ran (optimizer, lr, epochs, ...) and the RMSE it reached "
                                  "here; the RMSE-by-epoch trace below feeds the chart.",
    }.items():
        comment(ws, f"{L(col)}{row}", text)
    if bias:
        comment(ws, f"{L(g.panel + 1)}{b.TOP + 12}", "on: every prediction goes through a sigmoid into the y range "
                "below (fast.ai's y_range), so no prediction leaves the ratings' scale. off: the plain sum.")


def _long_ids(ids: list) -> bool:
    """Whether some id is too long for a column of width 7 (it is then written upwards)."""
    return any(len(str(v)) > 5 for v in ids)
