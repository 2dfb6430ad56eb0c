"""Build collab_filter.xlsx: the five tabs of `xlcollab.sheets.collab`, with live formulas, from MovieLens.

Every block a solve reads or writes is a sheet-scoped defined name; the formulas refer to plain cell
addresses (readable in the formula bar, and computed identically by Excel and LibreOffice):
  * predictions for a blank rating are 0 (shown as nothing), so the masked loss
    SQRT(SUMPRODUCT(ISNUMBER(ratings)*(ratings-predictions)^2)/COUNT(ratings)) never meets "" - number,
    and it is the RMSE over observed ratings in both engines (LibreOffice's SUMXMY2 would count blanks);
  * one-hot x embedding and the hidden layer are array formulas (MMULT), each dot product a SUMPRODUCT
    or a 1x1 MMULT.
Colours: yellow inputs (ratings, ids, settings), blue parameters (what the solve changes), green
formulas, orange the objective.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from openpyxl import Workbook
from openpyxl.chart import Reference
from openpyxl.styles import Alignment
from openpyxl.utils.cell import get_column_letter as L
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.sheets.collab.layout import (N_FACTORS, N_MOVIES, N_USERS, NNET_FACTORS, NNET_HIDDEN, SHEETS, TRACE_ROWS,
                                    Y_RANGE)
from xlcollab.sheets.common import (HEADER_FONT, NOTE_FONT, define_block, force_full_recalc, heading,
                                    line_chart, save_workbook, store_solver_model, target, write_last_run)

RATING_FMT, PARAM_FMT, PRED_FMT = "0.0", "0.000", '0.00;-0.00;""'   # zero predictions (blank ratings) show nothing
TOP = 4             # first row under the title and its note
LONG_HEADER = 23    # header row of the long-form tables; data from the row below


class Data:
    """The crosstab's ratings in both shapes, with ids and titles."""

    def __init__(self) -> None:
        from xlcollab.core.data import crosstab, load_ratings

        table = crosstab(load_ratings(), N_USERS)
        self.user_ids = [int(u) for u in table.index]
        self.movie_ids = [int(m) for m in table.columns]
        self.titles = list(table.attrs["titles"])
        self.grid = table.to_numpy()  # NaN where not rated
        self.long = [(self.user_ids[i], self.movie_ids[j], float(self.grid[i, j]))
                     for i in range(N_USERS) for j in range(N_MOVIES) if not np.isnan(self.grid[i, j])]


def build_workbook(path: Path, *, seed: int = 42) -> Path:
    """Write the collab_filter workbook to `path`; the starting parameters come from `seed`."""
    data = Data()
    wb = Workbook()
    wb.remove(wb.active)
    rng = np.random.default_rng(seed)
    # fast.ai's sheets start every factor at a random value in [0, 1); the long-form tabs start where
    # dotprod starts, so all three show the same model from the same point.
    movie_factors = rng.uniform(0, 1, (N_FACTORS, N_MOVIES)).round(4)
    user_factors = rng.uniform(0, 1, (N_USERS, N_FACTORS)).round(4)
    bias_start = {
        "movie_factors": rng.uniform(0, 1, (N_FACTORS, N_MOVIES)).round(4),
        "user_factors": rng.uniform(0, 1, (N_USERS, N_FACTORS)).round(4),
        "movie_bias": rng.uniform(0, 1, (1, N_MOVIES)).round(4),
        "user_bias": rng.uniform(0, 1, (N_USERS, 1)).round(4),
    }
    builders = {
        "dotprod": lambda ws: _build_crosstab(ws, data, {"movie_factors": movie_factors, "user_factors": user_factors},
                                              bias=False),
        "bias": lambda ws: _build_crosstab(ws, data, bias_start, bias=True),
        "movielens_emb": lambda ws: _build_emb(ws, data, user_factors, movie_factors.T),
        "movielens_1hot": lambda ws: _build_1hot(ws, data, user_factors, movie_factors.T),
        "nnet": lambda ws: _build_nnet(ws, data, _nnet_start(rng, float(np.nanmean(data.grid)))),
    }
    for name in SHEETS:
        builders[name](wb.create_sheet(name))
    force_full_recalc(wb)
    return save_workbook(wb, path)


def _nnet_start(rng: np.random.Generator, mean_rating: float) -> dict[str, np.ndarray]:
    """Embeddings in [-1, 1); layer weights in torch.nn.Linear's default range ±1/sqrt(fan_in); the output
    bias starts where the sigmoid gives the mean rating, so the net starts from the average."""
    k, h = NNET_FACTORS, NNET_HIDDEN
    b1, b2 = 1 / np.sqrt(2 * k), 1 / np.sqrt(h)
    lo, hi = Y_RANGE
    p = (mean_rating - lo) / (hi - lo)
    return {
        "user_factors": rng.uniform(-1, 1, (N_USERS, k)).round(4),
        "movie_factors": rng.uniform(-1, 1, (N_MOVIES, k)).round(4),
        "hidden_weights": rng.uniform(-b1, b1, (2 * k, h)).round(4),
        "hidden_bias": rng.uniform(-b1, b1, (1, h)).round(4),
        "output_weights": rng.uniform(-b2, b2, (1, h)).round(4),
        "output_bias": np.full((1, 1), round(float(np.log(p / (1 - p))), 4)),
    }


# -- small helpers ----------------------------------------------------------------------------
def _a(col: int, row: int) -> str:
    """Absolute address: $B$3."""
    return f"${L(col)}${row}"


def _rng(c0: int, r0: int, c1: int, r1: int, *, absolute: bool = True) -> str:
    if absolute:
        return f"{_a(c0, r0)}:{_a(c1, r1)}"
    return f"{L(c0)}{r0}:{L(c1)}{r1}"


def _fill(ws: Worksheet, row: int, col: int, values: np.ndarray, fmt: str | None = None) -> None:
    for i, line in enumerate(np.atleast_2d(values)):
        for j, v in enumerate(line):
            cell = ws.cell(row + i, col + j, float(v))
            if fmt:
                cell.number_format = fmt


def _label(ws: Worksheet, row: int, col: int, text: str, *, bold: bool = True) -> None:
    cell = ws.cell(row, col, text)
    if bold:
        cell.font = HEADER_FONT


def _widths(ws: Worksheet, widths: dict[int, float]) -> None:
    for col, width in widths.items():
        ws.column_dimensions[L(col)].width = width


def _panel(ws: Worksheet, col: int, rmse_formula: str) -> None:
    """The RMSE cell and the "last run" block at the top of columns `col` (labels) and `col + 1` (values)."""
    _label(ws, TOP, col, "RMSE")
    ws.cell(TOP, col + 1, rmse_formula).number_format = "0.000000"
    define_block(ws, "rmse", TOP, col + 1, style="objective")
    write_last_run(ws, TOP + 2, col)
    _widths(ws, {col: 14, col + 1: 12})


def _squash_cells(ws: Worksheet, col: int, row: int) -> tuple[str, str, str]:
    """The sigmoid switch (on/off) and the y range cells under the panel: returns absolute addresses."""
    ws.cell(row, col, "sigmoid squash")
    ws.cell(row, col + 1, "on")
    define_block(ws, "squash", row, col + 1, style="input")
    dv = DataValidation(type="list", formula1='"on,off"', allow_blank=False, showErrorMessage=True,
                        errorTitle="sigmoid squash", error="type on or off")
    ws.add_data_validation(dv)
    dv.add(ws.cell(row, col + 1))
    ws.cell(row + 1, col, "y low")
    ws.cell(row + 2, col, "y high")
    ws.cell(row + 1, col + 1, Y_RANGE[0])
    ws.cell(row + 2, col + 1, Y_RANGE[1])
    define_block(ws, "y_range", row + 1, col + 1, row + 2, col + 1, style="input")
    return _a(col + 1, row), _a(col + 1, row + 1), _a(col + 1, row + 2)


def _y_range_cells(ws: Worksheet, col: int, row: int) -> tuple[str, str]:
    ws.cell(row, col, "y low")
    ws.cell(row + 1, col, "y high")
    ws.cell(row, col + 1, Y_RANGE[0])
    ws.cell(row + 1, col + 1, Y_RANGE[1])
    define_block(ws, "y_range", row, col + 1, row + 1, col + 1, style="input")
    return _a(col + 1, row), _a(col + 1, row + 1)


def _trace(ws: Worksheet, col: int, row: int, chart_anchor: str, sheet_title: str) -> None:
    """The RMSE-by-epoch block (epoch, RMSE; written by solve) and its line chart."""
    _label(ws, row, col, "RMSE by epoch")
    _label(ws, row + 1, col, "epoch")
    _label(ws, row + 1, col + 1, "RMSE")
    define_block(ws, "trace", row + 2, col, row + 1 + TRACE_ROWS, col + 1, style="output")
    for r in range(row + 2, row + 2 + TRACE_ROWS):
        ws.cell(r, col + 1).number_format = "0.000000"
    line_chart(ws, chart_anchor, title=f"{sheet_title}: RMSE by epoch", x_title="epoch", y_title="RMSE",
               data=Reference(ws, min_col=col + 1, min_row=row + 1, max_row=row + 1 + TRACE_ROWS),
               categories=Reference(ws, min_col=col, min_row=row + 2, max_row=row + 1 + TRACE_ROWS))


def _solver(ws: Worksheet, rmse: tuple[int, int], blocks: list[tuple[int, int, int, int]]) -> None:
    """Excel Solver's model: minimise the RMSE cell by changing the parameter blocks (row0, col0, row1, col1)."""
    store_solver_model(ws, target(ws, *rmse), [target(ws, r0, c0, r1, c1) for r0, c0, r1, c1 in blocks])


# -- dotprod and bias -----------------------------------------------------------------------
def _build_crosstab(ws: Worksheet, data: Data, start: dict[str, np.ndarray], *, bias: bool) -> None:
    """fast.ai's crosstab sheet: ratings on top; movie factors above, user factors left of the predictions."""
    k, nu, nm = N_FACTORS, N_USERS, N_MOVIES
    uf0, ub, idc, m0 = 2, 2 + k, 3 + k, 4 + k            # B..F user factors, G user bias, H ids, I.. movies
    m1 = m0 + nm - 1
    panel = m1 + 2
    title_row, id_row, r0 = TOP + 1, TOP + 2, TOP + 3     # titles, movie ids, first rating row
    r1 = r0 + nu - 1
    f0 = r1 + 3                                           # first movie-factor row
    mb = f0 + k                                           # movie-bias row (bias tab)
    head = mb + 1                                         # header row over the predictions
    p0 = head + 1
    p1 = p0 + nu - 1
    if bias:
        heading(ws, "A1", "Dot product + biases: rating ≈ user·movie + user bias + movie bias",
                "Yellow = ratings and settings you may edit (blank = not rated); blue = what `xlcollab solve` (or Excel "
                "Solver) changes; green = formulas; orange = the RMSE being minimised. Squash on: sigmoid into y range.")
    else:
        heading(ws, "A1", "Dot product: rating ≈ user factors · movie factors",
                "Yellow = ratings you may edit (blank = not rated); blue = what `xlcollab solve` (or Excel Solver) "
                "changes; green = formulas; orange = the RMSE over the observed ratings, being minimised.")

    # ratings crosstab
    _label(ws, TOP, m0, "Ratings: the 15 most active users × the 15 most-rated movies (MovieLens)")
    _label(ws, id_row, idc, "user \\ movie")
    for j, (mid, title) in enumerate(zip(data.movie_ids, data.titles)):
        t = ws.cell(title_row, m0 + j, title)
        t.alignment = Alignment(text_rotation=90, wrap_text=True, vertical="bottom", horizontal="center")
        ws.cell(id_row, m0 + j, mid).font = HEADER_FONT
    ws.row_dimensions[title_row].height = 120
    define_block(ws, "movie_ids", id_row, m0, id_row, m1)
    for i, uid in enumerate(data.user_ids):
        ws.cell(r0 + i, idc, uid).font = HEADER_FONT
        for j in range(nm):
            v = data.grid[i, j]
            cell = ws.cell(r0 + i, m0 + j, None if np.isnan(v) else float(v))
            cell.number_format = RATING_FMT
    define_block(ws, "user_ids", r0, idc, r1, idc)
    define_block(ws, "ratings", r0, m0, r1, m1, style="input")

    # parameters
    _label(ws, f0 - 1, m0, "movie factors (5 × 15)")
    for f in range(k):
        ws.cell(f0 + f, idc, f"factor {f + 1}")
    _fill(ws, f0, m0, start["movie_factors"], PARAM_FMT)
    define_block(ws, "movie_factors", f0, m0, f0 + k - 1, m1, style="param")
    for f in range(k):
        _label(ws, head, uf0 + f, f"factor {f + 1}")
    _label(ws, head - 1, uf0, "user factors (15 × 5)")
    _fill(ws, p0, uf0, start["user_factors"], PARAM_FMT)
    define_block(ws, "user_factors", p0, uf0, p1, uf0 + k - 1, style="param")
    blocks = [(f0, m0, f0 + k - 1, m1), (p0, uf0, p1, uf0 + k - 1)]
    if bias:
        ws.cell(mb, idc, "movie bias")
        _fill(ws, mb, m0, start["movie_bias"], PARAM_FMT)
        define_block(ws, "movie_bias", mb, m0, mb, m1, style="param")
        _label(ws, head, ub, "user bias")
        _fill(ws, p0, ub, start["user_bias"], PARAM_FMT)
        define_block(ws, "user_bias", p0, ub, p1, ub, style="param")
        blocks += [(mb, m0, mb, m1), (p0, ub, p1, ub)]

    # predictions
    _label(ws, head, idc, "user \\ movie")
    for j in range(nm):
        ws.cell(head, m0 + j, f"={L(m0 + j)}{id_row}").font = HEADER_FONT
    if bias:
        sq, lo, hi = _squash_cells(ws, panel, TOP + 12)
    for i in range(nu):
        ws.cell(p0 + i, idc, f"={L(idc)}{r0 + i}").font = HEADER_FONT
        for j in range(nm):
            c = L(m0 + j)
            dot = f"MMULT(${L(uf0)}{p0 + i}:${L(uf0 + k - 1)}{p0 + i},{c}${f0}:{c}${f0 + k - 1})"
            if bias:
                score = f"{dot}+${L(ub)}{p0 + i}+{c}${mb}"
                value = f'IF({sq}="on",{lo}+({hi}-{lo})/(1+EXP(-({score}))),{score})'
            else:
                value = dot
            ws.cell(p0 + i, m0 + j, f"=IF(ISNUMBER({c}{r0 + i}),{value},0)").number_format = PRED_FMT
    define_block(ws, "predictions", p0, m0, p1, m1, style="output")

    ratings = _rng(m0, r0, m1, r1, absolute=False)
    preds = _rng(m0, p0, m1, p1, absolute=False)
    _panel(ws, panel, f"=SQRT(SUMPRODUCT(ISNUMBER({ratings})*({ratings}-{preds})^2)/COUNT({ratings}))")
    _trace(ws, panel, TOP + 17, f"{L(panel + 3)}{TOP}", ws.title)
    _solver(ws, (TOP, panel + 1), blocks)
    _widths(ws, {1: 2, **{c: 7 for c in range(uf0, idc)}, idc: 12, **{c: 7 for c in range(m0, m1 + 1)}})


# -- long form: movielens_emb, movielens_1hot, nnet -------------------------------------------------
def _tables(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray) -> dict[str, int]:
    """User and movie embedding tables (id + factors) at the top; returns their column positions."""
    k = users.shape[1]
    uid, uf = 1, 2
    mid = uf + k + 1
    mf = mid + 1
    tcol = mf + k
    r0, r1 = TOP + 2, TOP + 1 + N_USERS
    _label(ws, TOP, uid, f"user embeddings ({N_USERS} × {k})")
    _label(ws, TOP + 1, uid, "userId")
    _label(ws, TOP, mid, f"movie embeddings ({N_MOVIES} × {k})")
    _label(ws, TOP + 1, mid, "movieId")
    for f in range(k):
        _label(ws, TOP + 1, uf + f, f"factor {f + 1}")
        _label(ws, TOP + 1, mf + f, f"factor {f + 1}")
    _label(ws, TOP + 1, tcol, "title")
    for i, u in enumerate(data.user_ids):
        ws.cell(r0 + i, uid, u)
    for j, (m, title) in enumerate(zip(data.movie_ids, data.titles)):
        ws.cell(r0 + j, mid, m)
        ws.cell(r0 + j, tcol, title).font = NOTE_FONT
    _fill(ws, r0, uf, users, PARAM_FMT)
    _fill(ws, r0, mf, movies, PARAM_FMT)
    define_block(ws, "user_ids", r0, uid, r1, uid, style="input")
    define_block(ws, "movie_ids", r0, mid, r1, mid, style="input")
    define_block(ws, "user_factors", r0, uf, r1, uf + k - 1, style="param")
    define_block(ws, "movie_factors", r0, mf, r1, mf + k - 1, style="param")
    _widths(ws, {tcol: 28})
    return {"uid": uid, "uf": uf, "mid": mid, "mf": mf, "k": k, "r0": r0, "r1": r1, "title": tcol,
            "blocks": [(r0, uf, r1, uf + k - 1), (r0, mf, r1, mf + k - 1)]}


def _long_ratings(ws: Worksheet, data: Data) -> tuple[int, int]:
    """userId, movieId, rating per row under LONG_HEADER (columns A..C); returns (first row, last row)."""
    for c, text in enumerate(("userId", "movieId", "rating"), start=1):
        _label(ws, LONG_HEADER, c, text)
    first = LONG_HEADER + 1
    for n, (u, m, r) in enumerate(data.long):
        ws.cell(first + n, 1, u)
        ws.cell(first + n, 2, m)
        ws.cell(first + n, 3, r).number_format = RATING_FMT
    last = first + len(data.long) - 1
    define_block(ws, "ratings", first, 1, last, 3, style="input")
    return first, last


def _lookups(ws: Worksheet, t: dict, first: int, last: int, col: int) -> None:
    """INDEX/MATCH lookups of each row's user factors then movie factors, from column `col` on."""
    k, r0, r1 = t["k"], t["r0"], t["r1"]
    users = _rng(t["uf"], r0, t["uf"] + k - 1, r1)
    movies = _rng(t["mf"], r0, t["mf"] + k - 1, r1)
    uids, mids = _rng(t["uid"], r0, t["uid"], r1), _rng(t["mid"], r0, t["mid"], r1)
    for r in range(first, last + 1):
        for f in range(k):
            ws.cell(r, col + f, f"=INDEX({users},MATCH($A{r},{uids},0),{f + 1})").number_format = PARAM_FMT
            ws.cell(r, col + k + f, f"=INDEX({movies},MATCH($B{r},{mids},0),{f + 1})").number_format = PARAM_FMT


def _long_tail(ws: Worksheet, first: int, last: int, pcol: int, ecol: int) -> str:
    """Name predictions and errors; return the RMSE formula =SQRT(AVERAGE(errors))."""
    _label(ws, LONG_HEADER, pcol, "prediction")
    _label(ws, LONG_HEADER, ecol, "squared error")
    define_block(ws, "predictions", first, pcol, last, pcol, style="output")
    define_block(ws, "errors", first, ecol, last, ecol, style="output")
    return f"=SQRT(AVERAGE({_rng(ecol, first, ecol, last, absolute=False)}))"


def _build_emb(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray) -> None:
    """Long form: each rating row looks up its user's and movie's factors and takes their SUMPRODUCT."""
    heading(ws, "A1", "Embeddings: the dot-product model, one row per rating",
            "Each row looks up its user's and its movie's factors (INDEX/MATCH) and predicts their SUMPRODUCT; "
            "RMSE = SQRT(AVERAGE(squared errors)): the same objective as the dotprod tab.")
    t = _tables(ws, data, users, movies)
    k = t["k"]
    first, last = _long_ratings(ws, data)
    c0 = 4
    _label(ws, LONG_HEADER - 1, c0, "user factors (looked up)")
    _label(ws, LONG_HEADER - 1, c0 + k, "movie factors (looked up)")
    for f in range(k):
        _label(ws, LONG_HEADER, c0 + f, f"u{f + 1}")
        _label(ws, LONG_HEADER, c0 + k + f, f"m{f + 1}")
    _lookups(ws, t, first, last, c0)
    pcol, ecol = c0 + 2 * k, c0 + 2 * k + 1
    for r in range(first, last + 1):
        u, m = _rng(c0, r, c0 + k - 1, r, absolute=False), _rng(c0 + k, r, c0 + 2 * k - 1, r, absolute=False)
        ws.cell(r, pcol, f"=SUMPRODUCT({u},{m})").number_format = "0.000"
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = "0.0000"
    rmse = _long_tail(ws, first, last, pcol, ecol)
    panel = t["title"] + 2
    _panel(ws, panel, rmse)
    _trace(ws, ecol + 2, LONG_HEADER - 1, f"{L(panel + 3)}{TOP}", ws.title)
    _solver(ws, (TOP, panel + 1), t["blocks"])


def _build_1hot(ws: Worksheet, data: Data, users: np.ndarray, movies: np.ndarray) -> None:
    """One-hot rows times the embedding matrices (MMULT array formulas) give exactly the lookups of movielens_emb."""
    heading(ws, "A1", "One-hot encoding × embedding matrix = embedding lookup",
            "Each row's one-hot user vector (1 × 15) times the user embedding matrix (15 × 5) is that user's factors "
            "(MMULT); the same for movies. Predictions and RMSE equal those of movielens_emb.")
    t = _tables(ws, data, users, movies)
    k, r0, r1 = t["k"], t["r0"], t["r1"]
    first, last = _long_ratings(ws, data)
    uh, mh = 4, 4 + N_USERS                 # one-hot blocks
    uv, mv = mh + N_MOVIES, mh + N_MOVIES + k  # MMULT results
    pcol, ecol = mv + k, mv + k + 1
    for text, col in (("user one-hot", uh), ("movie one-hot", mh), ("user one-hot × user embeddings", uv),
                      ("movie one-hot × movie embeddings", mv)):
        _label(ws, LONG_HEADER - 1, col, text)
    for j in range(N_USERS):
        ws.cell(LONG_HEADER, uh + j, f"=INDEX({_rng(t['uid'], r0, t['uid'], r1)},{j + 1})").font = HEADER_FONT
    for j in range(N_MOVIES):
        ws.cell(LONG_HEADER, mh + j, f"=INDEX({_rng(t['mid'], r0, t['mid'], r1)},{j + 1})").font = HEADER_FONT
    for f in range(k):
        _label(ws, LONG_HEADER, uv + f, f"u{f + 1}")
        _label(ws, LONG_HEADER, mv + f, f"m{f + 1}")
    users_m = _rng(t["uf"], r0, t["uf"] + k - 1, r1)
    movies_m = _rng(t["mf"], r0, t["mf"] + k - 1, r1)
    for r in range(first, last + 1):
        for j in range(N_USERS):
            ws.cell(r, uh + j, f"=IF($A{r}={L(uh + j)}${LONG_HEADER},1,0)")
        for j in range(N_MOVIES):
            ws.cell(r, mh + j, f"=IF($B{r}={L(mh + j)}${LONG_HEADER},1,0)")
        onehot_u = _rng(uh, r, uh + N_USERS - 1, r, absolute=False)
        onehot_m = _rng(mh, r, mh + N_MOVIES - 1, r, absolute=False)
        ref_u = _rng(uv, r, uv + k - 1, r, absolute=False)
        ref_m = _rng(mv, r, mv + k - 1, r, absolute=False)
        ws.cell(r, uv).value = ArrayFormula(ref_u, f"=MMULT({onehot_u},{users_m})")
        ws.cell(r, mv).value = ArrayFormula(ref_m, f"=MMULT({onehot_m},{movies_m})")
        for f in range(k):
            ws.cell(r, uv + f).number_format = ws.cell(r, mv + f).number_format = PARAM_FMT
        ws.cell(r, pcol, f"=SUMPRODUCT({ref_u},{ref_m})").number_format = "0.000"
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = "0.0000"
    define_block(ws, "user_onehot", first, uh, last, uh + N_USERS - 1)
    define_block(ws, "movie_onehot", first, mh, last, mh + N_MOVIES - 1)
    _widths(ws, {c: 4 for c in range(uh, uv)})
    rmse = _long_tail(ws, first, last, pcol, ecol)
    panel = t["title"] + 2
    _panel(ws, panel, rmse)
    _trace(ws, ecol + 2, LONG_HEADER - 1, f"{L(panel + 3)}{TOP}", ws.title)
    _solver(ws, (TOP, panel + 1), t["blocks"])


def _build_nnet(ws: Worksheet, data: Data, start: dict[str, np.ndarray]) -> None:
    """The lesson's mini net: [user emb, movie emb] -> ReLU hidden layer -> output unit -> sigmoid into y range."""
    k, h = NNET_FACTORS, NNET_HIDDEN
    heading(ws, "A1", "A neural net instead of a dot product",
            f"Each row: the user's and movie's embeddings side by side ({2 * k} numbers) → hidden layer "
            f"MAX(0, inputs × weights + bias) ({h} units) → output unit → sigmoid into the y range.")
    t = _tables(ws, data, start["user_factors"], start["movie_factors"])
    first, last = _long_ratings(ws, data)
    # weights, to the right of the tables: W (2k x h), hidden bias (1 x h), output weights (1 x h), output bias
    wl = t["title"] + 2
    w0, w1 = wl + 1, wl + h
    top = TOP + 2
    _label(ws, TOP, wl, f"hidden layer weights ({2 * k} × {h})")
    for j in range(h):
        _label(ws, TOP + 1, w0 + j, f"h{j + 1}")
    for i in range(2 * k):
        ws.cell(top + i, wl, f"user f{i + 1}" if i < k else f"movie f{i - k + 1}")
    _fill(ws, top, w0, start["hidden_weights"], PARAM_FMT)
    hb, ow, ob = top + 2 * k, top + 2 * k + 1, top + 2 * k + 2
    ws.cell(hb, wl, "hidden bias")
    ws.cell(ow, wl, "output weights")
    ws.cell(ob, wl, "output bias")
    _fill(ws, hb, w0, start["hidden_bias"], PARAM_FMT)
    _fill(ws, ow, w0, start["output_weights"], PARAM_FMT)
    _fill(ws, ob, w0, start["output_bias"], PARAM_FMT)
    blocks = t["blocks"] + [(top, w0, top + 2 * k - 1, w1), (hb, w0, hb, w1), (ow, w0, ow, w1), (ob, w0, ob, w0)]
    for name, (r0, c0, r1, c1) in zip(("hidden_weights", "hidden_bias", "output_weights", "output_bias"), blocks[2:]):
        define_block(ws, name, r0, c0, r1, c1, style="param")
    _widths(ws, {wl: 14})
    panel = w1 + 2
    _panel(ws, panel, "")  # formula set below, once the columns are known
    lo, hi = _y_range_cells(ws, panel, TOP + 12)

    # per-row network
    c0 = 4
    xcols = (c0, c0 + 2 * k - 1)
    pre0 = c0 + 2 * k
    relu0 = pre0 + h
    out, pcol, ecol = relu0 + h, relu0 + h + 1, relu0 + h + 2
    for text, col in (("inputs: user ‖ movie embeddings", c0), ("inputs × weights + bias", pre0),
                      ("ReLU: MAX(0, ·)", relu0)):
        _label(ws, LONG_HEADER - 1, col, text)
    for f in range(k):
        _label(ws, LONG_HEADER, c0 + f, f"u{f + 1}")
        _label(ws, LONG_HEADER, c0 + k + f, f"m{f + 1}")
    for j in range(h):
        _label(ws, LONG_HEADER, pre0 + j, f"z{j + 1}")
        _label(ws, LONG_HEADER, relu0 + j, f"a{j + 1}")
    _label(ws, LONG_HEADER, out, "output")
    _lookups(ws, t, first, last, c0)
    weights = _rng(w0, top, w1, top + 2 * k - 1)
    hbias = _rng(w0, hb, w1, hb)
    oweights = _rng(w0, ow, w1, ow)
    for r in range(first, last + 1):
        x = _rng(xcols[0], r, xcols[1], r, absolute=False)
        z = _rng(pre0, r, pre0 + h - 1, r, absolute=False)
        ws.cell(r, pre0).value = ArrayFormula(z, f"=MMULT({x},{weights})+{hbias}")
        for j in range(h):
            ws.cell(r, pre0 + j).number_format = "0.000"
            ws.cell(r, relu0 + j, f"=MAX(0,{L(pre0 + j)}{r})").number_format = "0.000"
        a = _rng(relu0, r, relu0 + h - 1, r, absolute=False)
        ws.cell(r, out, f"=SUMPRODUCT({a},{oweights})+{_a(w0, ob)}").number_format = "0.000"
        ws.cell(r, pcol, f"={lo}+({hi}-{lo})/(1+EXP(-{L(out)}{r}))").number_format = "0.000"
        ws.cell(r, ecol, f"=({L(pcol)}{r}-C{r})^2").number_format = "0.0000"
    define_block(ws, "inputs", first, xcols[0], last, xcols[1])
    define_block(ws, "hidden", first, relu0, last, relu0 + h - 1)
    define_block(ws, "outputs", first, out, last, out)
    ws.cell(TOP, panel + 1).value = _long_tail(ws, first, last, pcol, ecol)
    _trace(ws, ecol + 2, LONG_HEADER - 1, f"{L(panel + 3)}{TOP}", ws.title)
    _solver(ws, (TOP, panel + 1), blocks)
