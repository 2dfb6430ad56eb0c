"""The collab_filter workbook's `Intro` tab: what each tab teaches, how to use the buttons and the command line."""
from __future__ import annotations

from openpyxl.worksheet.worksheet import Worksheet

from xlcollab.sheets.collab.layout import INTRO, SOLVER_LIMIT, TABS, WORD_EMB
from xlcollab.sheets.common import intro_sheet

TEACHES = {
    "dotprod": "collaborative filtering as a spreadsheet: every rating ≈ the dot product of a user's factors and a "
               "movie's factors; fit the factors to the known ratings and read predictions for the blanks",
    "bias": "the same plus a bias per user and per movie (some users rate high, some movies are loved by all), "
            "squashed by a sigmoid into the ratings' range",
    "movielens_emb": "the dot-product model with one row per rating: each row looks its user's and movie's factors "
                     "up (INDEX/MATCH), as an embedding layer does",
    "movielens_1hot": "a look-up is a matrix product: one-hot rows times the embedding matrices give the same "
                      "factors, the same predictions, the same RMSE",
    WORD_EMB: "the same idea for words: a vocabulary's embedding matrix, one-hot × matrix beside the look-up",
    "nnet": "a neural net instead of the dot product: both embeddings side by side, a ReLU hidden layer, one output "
            "squashed into the ratings' range",
}


def build_intro(ws: Worksheet, source: str) -> None:
    """Fill `ws` (the first tab) with the lesson's map and how to drive it."""
    intro_sheet(ws, INTRO, "Collaborative filtering and embeddings, in cells", [
        "fast.ai's collab_filter.xlsx rebuilt by code (xlcollab), with the ratings of the most active users for the "
        f"most-rated movies ({source}). Every tab but word_emb is a whole model whose error is one RMSE cell, and "
        "every number in it is a live formula: change a rating or a factor and the predictions follow.",
    ], [(tab, TEACHES[tab]) for tab in TABS if tab != INTRO], [
        "Solve (a button at the top left of each model tab, in collab_filter.xlsm): fits the blue cells to the "
        "yellow ratings with PyTorch in place of Excel's Solver, and writes back the parameters, the RMSE-by-epoch "
        "trace (the chart follows it) and the 'last run' block. It runs the settings in the yellow cells beside that "
        "block (blank: the default shown in grey); xlcollab solve reads the same cells. Fit MovieLens (on dotprod) "
        "fits every rating of the embedded MovieLens set and writes a results tab.",
        "Excel's own Solver still works on every tab of up to 200 variables: its model is stored in the workbook "
        f"(Data > Solver shows it). Tabs with more than {SOLVER_LIMIT} say so; xlcollab solve runs them.",
        "Without Excel: xlcollab solve collab_filter.xlsx (every tab) or --sheet dotprod --optimizer adam --lr 0.05 "
        "--epochs 1000. Your own ratings: xlcollab build --ratings FILE --users 20 --movies 20 --factors 8.",
        "The buttons need Excel with the xlwings add-in: run xlcollab addin once. The .xlsx files have no buttons; "
        "LibreOffice opens both and recalculates every formula.",
        "After a Solve, LibreOffice's RMSE computed from each tab's own formulas equals PyTorch's to 1e-9 (the "
        "tests check it).",
    ])
