"""The word_emb tab: fast.ai's word-embedding example. A small vocabulary and its embedding matrix; each word of a
sentence as a one-hot row, and one-hot x matrix (MMULT) beside the look-up (INDEX/MATCH): the same numbers."""
from __future__ import annotations

import numpy as np
from openpyxl.utils.cell import get_column_letter as L
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

import xlcollab.sheets.collab.parts as b
from xlcollab.sheets.common import INT, comment, define_block, heading, legend, note, print_one_page

VOCABULARY = ("the", "cat", "sat", "on", "mat", "dog", "ate", "homework")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
WORD_FACTORS = 4


def build_word_emb(ws: Worksheet, rng: np.random.Generator) -> None:
    """Vocabulary and embedding matrix on top; below, one row per word of the sentence."""
    v, k = len(VOCABULARY), WORD_FACTORS
    heading(ws, "A1", "Word embeddings: one-hot × embedding matrix = look-up")
    note(ws, 2, 1, 4 + v + 2 * k, "Each word of the vocabulary owns a row of the embedding matrix (in a model, "
         "training learns these numbers). A word of the sentence becomes a one-hot row (1 under its own column); "
         "one-hot × matrix (MMULT) picks out that word's row, exactly what the look-up INDEX(matrix, position) gives: "
         "the difference is 0. So a network never multiplies by one-hot vectors: it looks the row up. Type another "
         "sentence in the yellow cells; a word not in the vocabulary gets position 0 and a row of zeros.")
    legend(ws, 3, 1, [("input", "yellow: you edit"), ("param", "blue: the embeddings"),
                      ("output", "green: formulas")])
    top = b.TOP + 1
    b.label(ws, b.TOP, 1, f"vocabulary and embedding matrix ({v} × {k})")
    for j, text in enumerate(("word", "position", *(f"emb {f + 1}" for f in range(k)))):
        b.label(ws, top, 1 + j, text)
    for i, word in enumerate(VOCABULARY):
        ws.cell(top + 1 + i, 1, word)
        ws.cell(top + 1 + i, 2, i + 1).number_format = INT
    b.fill(ws, top + 1, 3, rng.uniform(-1, 1, (v, k)).round(3), b.PARAM_FMT)
    vocab_rows = (top + 1, top + v)
    define_block(ws, "vocabulary", top + 1, 1, top + v, 1, style="input")
    define_block(ws, "embeddings", top + 1, 3, top + v, 2 + k, style="param")
    _sentence(ws, vocab_rows, top + v + 3)
    b.widths(ws, {1: 11, 2: 9, **{c: 8 for c in range(3, 3 + k)}})
    print_one_page(ws, f"A1:{L(3 + v + 2 * k + 1)}{top + v + 4 + len(SENTENCE)}")


def _sentence(ws: Worksheet, vocab_rows: tuple[int, int], head: int) -> None:
    """One row per word: the word (yellow), its position, the look-up, its one-hot row, one-hot x matrix, and the
    largest difference between the product and the look-up."""
    v, k = len(VOCABULARY), WORD_FACTORS
    r0, r1 = vocab_rows
    vocab, matrix = b.rng(1, r0, 1, r1), b.rng(3, r0, 2 + k, r1)
    lu, oh = 3, 4 + k                         # the look-up under the matrix's columns, then the one-hot row,
    mm = oh + v                               # the product, the difference
    diff = mm + k
    for text, c0, c1 in (("look-up: the matrix's row", lu, lu + k - 1), ("one-hot row", oh, mm - 1),
                         ("one-hot × embedding matrix", mm, diff - 1)):
        b.caption(ws, head - 1, c0, c1, text)
    b.label(ws, head, 1, "sentence")
    b.label(ws, head, 2, "position")
    b.header_ids(ws, head, oh, list(VOCABULARY), rotate=True)
    ws.row_dimensions[head].height = 8 * max(map(len, VOCABULARY)) + 8
    for f in range(k):
        b.label(ws, head, mm + f, f"emb {f + 1}")
        b.label(ws, head, lu + f, f"emb {f + 1}")
    b.label(ws, head, diff, "largest difference", wrap=True)
    first = head + 1
    for n, word in enumerate(SENTENCE):
        r = first + n
        ws.cell(r, 1, word)
        ws.cell(r, 2, f"=IFERROR(MATCH(A{r},{vocab},0),0)").number_format = INT
        for j in range(v):
            ws.cell(r, oh + j, f"=IF($B{r}={j + 1},1,0)").number_format = INT
        ws.cell(r, mm).value = ArrayFormula(b.rng(mm, r, diff - 1, r, absolute=False),
                                            f"=MMULT({b.rng(oh, r, mm - 1, r, absolute=False)},{matrix})")
        for f in range(k):
            ws.cell(r, mm + f).number_format = b.PARAM_FMT
            ws.cell(r, lu + f, f"=IF($B{r}=0,0,INDEX({matrix},$B{r},{f + 1}))").number_format = b.PARAM_FMT
        product, lookup = b.rng(mm, r, diff - 1, r, absolute=False), b.rng(lu, r, lu + k - 1, r, absolute=False)
        ws.cell(r, diff, f"=SUMPRODUCT(ABS({product}-{lookup}))").number_format = b.PARAM_FMT
    last = first + len(SENTENCE) - 1
    define_block(ws, "sentence", first, 1, last, 1, style="input")
    define_block(ws, "onehot", first, oh, last, mm - 1, style="output")
    define_block(ws, "product", first, mm, last, diff - 1, style="output")
    define_block(ws, "lookup", first, lu, last, lu + k - 1, style="output")
    define_block(ws, "difference", first, diff, last, diff, style="output")
    b.formulas_fill(ws, first, 2, last, 2)
    comment(ws, f"{L(oh)}{first}", "1 under the word's own column, 0 elsewhere: the word as a one-hot row.")
    comment(ws, f"{L(diff)}{first}", "The sum of |product - look-up| over the row: 0, because multiplying by a "
            "one-hot row only picks a row of the matrix.")
    b.widths(ws, {lu + k: 8, **{c: 3.5 for c in range(oh, mm)}, **{c: 8 for c in range(mm, diff)}, diff: 11})
