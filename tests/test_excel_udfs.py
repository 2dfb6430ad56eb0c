"""The UDFs called as Excel calls them: 2-D lists (or xlwings' object arrays), None for blanks, text."""
from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xlcollab import excel
from xlcollab.core import interpret
from xlcollab.core.fit import CollabFit

ERR = excel.ERROR_PREFIX


def as_xlwings(value):
    """What xlwings' np.array converter hands a UDF declared with ndim=2, dtype=object."""
    return np.array(value, dtype=object, ndmin=2)


@pytest.fixture(scope="module")
def model_file(_embedded_ratings, tmp_path_factory):
    """A small dotbias fit of the 25 x 25 most active users x most rated movies, saved beside 'book.xlsx'."""
    from xlcollab.core.data import Ratings, crosstab
    table = crosstab(_embedded_ratings, 25)
    f = _embedded_ratings.frame
    frame = f[f["user"].isin(table.index) & f["item"].isin(table.columns)].reset_index(drop=True)
    ratings = Ratings(frame, _embedded_ratings.titles.loc[list(table.columns)], "25 x 25")
    est = CollabFit(model="dotbias", n_factors=4, epochs=30, lr=0.05, batch_size=None, valid_pct=0.1,
                    device="cpu", progress=False).fit(ratings)
    path = excel.model_path_for(tmp_path_factory.mktemp("udf") / "book.xlsx")
    est.save(path)
    return path, est


# -- XC_DOT / XC_RMSE ----------------------------------------------------------------------------------
def test_dot_row_by_column_and_bad_input():
    row, col = [[1.5, -2.0, 3.0]], [[4.0], [0.5], [-1.0]]
    assert excel.XC_DOT(row, col) == pytest.approx(1.5 * 4 - 2 * 0.5 - 3)
    assert excel.XC_DOT(as_xlwings(row), as_xlwings(col)) == excel.XC_DOT(row, col)
    assert excel.XC_DOT(2.0, 3.0) == 6.0  # single cells arrive as scalars
    assert excel.XC_DOT(row, [[1.0, 2.0]]) == ERR + "a has 3 cells but b has 2"
    assert excel.XC_DOT([[1.0, None, 2.0]], col) == ERR + "a (row 1, column 2) must be a number, found blank"
    assert excel.XC_DOT(row, [[4.0], ["x"], [1.0]]) == ERR + "b (row 2, column 1) must be a number, found 'x'"
    assert excel.XC_DOT([[True, 1.0, 1.0]], col) == ERR + "a (row 1, column 1) must be a number, found True"


def test_rmse_skips_blank_and_text_pairs_like_sumxmy2():
    actual = [[4.0, None, 3.0], ["n/a", 5.0, 2.0]]
    predicted = [[3.5, 1.0, 3.0], [9.0, 4.0, None]]
    pairs = [(4.0, 3.5), (3.0, 3.0), (5.0, 4.0)]
    want = math.sqrt(sum((a - p) ** 2 for a, p in pairs) / len(pairs))
    assert excel.XC_RMSE(actual, predicted) == pytest.approx(want, rel=1e-15)
    assert excel.XC_RMSE(as_xlwings(actual), as_xlwings(predicted)) == pytest.approx(want, rel=1e-15)
    assert excel.XC_RMSE([[1.0, 2.0]], [[1.0], [2.0]]) == ERR + "actual is 1x2 but predicted is 2x1"
    assert excel.XC_RMSE([[None, "x"]], [[1.0, 2.0]]) == ERR + "no pair of numbers to compare"


# -- model UDFs ----------------------------------------------------------------------------------------
def test_predict_cell_and_grid(model_file):
    path, est = model_file
    users, movies = est.user_ids_[:3], est.item_ids_[:4]
    one = excel.XC_PREDICT(int(users[0]), int(movies[0]), str(path))
    assert one == pytest.approx(float(est.predict(users[0], movies[0])[0]), rel=1e-6)
    grid = excel.XC_PREDICT([[int(u)] for u in users], [[int(m) for m in movies]], str(path))
    want = [[float(est.predict(u, m)[0]) for m in movies] for u in users]
    np.testing.assert_allclose(grid, want, rtol=1e-6)
    assert excel.XC_PREDICT(as_xlwings(str(users[0])), as_xlwings(float(movies[0])), str(path)) == pytest.approx(one)


def test_predict_bad_input(model_file, tmp_path):
    path, est = model_file
    u, m = int(est.user_ids_[0]), int(est.item_ids_[0])
    assert excel.XC_PREDICT(999999, m, str(path)).startswith(ERR + "unknown user 999999")
    assert excel.XC_PREDICT(u, 7777777, str(path)).startswith(ERR + "unknown movie 7777777")
    assert excel.XC_PREDICT(None, m, str(path)) == ERR + "user is blank"
    assert excel.XC_PREDICT([[u, u]], [[m], [m], [m]], str(path)) == [[pytest.approx(excel.XC_PREDICT(u, m, str(path)))] * 2] * 3
    assert excel.XC_PREDICT([[u, u]], [[m, m, m]], str(path)).startswith(ERR + "user is 1x2 and movie is 1x3")
    missing = tmp_path / "nothing.xlcollab.pt"
    assert excel.XC_PREDICT(u, m, str(missing)).startswith(ERR + f"no saved model at {missing}")
    assert excel.XC_PREDICT(u, m).startswith(ERR + "no model given and no calling workbook")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    assert excel.XC_PREDICT(u, m, str(junk)).startswith(ERR) and "not an xlcollab model file" in excel.XC_PREDICT(u, m, str(junk))


def test_model_beside_the_calling_workbook_is_cached_and_reloaded(model_file, tmp_path):
    path, est = model_file
    caller = SimpleNamespace(sheet=SimpleNamespace(book=SimpleNamespace(fullname=str(path.parent / "book.xlsx"))))
    u, m = int(est.user_ids_[1]), int(est.item_ids_[2])
    assert excel.XC_PREDICT(u, m, caller=caller) == excel.XC_PREDICT(u, m, str(path))
    first = excel.load_model(path)
    assert excel.load_model(path) is first  # loaded once
    other = tmp_path / "book.xlcollab.pt"
    refit = CollabFit(model="dot", n_factors=2, epochs=1, batch_size=None, valid_pct=0.0, device="cpu",
                      clip=False, progress=False).fit(est_frame(est))
    refit.save(other)
    before = excel.XC_PREDICT(u, m, str(other))
    refit.set_params(epochs=40, lr=0.05).fit(est_frame(est)).save(other)
    os.utime(other, ns=(os.stat(other).st_atime_ns, os.stat(other).st_mtime_ns + 10**9))
    after = excel.XC_PREDICT(u, m, str(other))
    assert after != before and after == pytest.approx(float(refit.predict(u, m)[0]), rel=1e-6)


def est_frame(est):
    """Ratings for the fixture's users x its first three movies, 1 to 5 stars."""
    import pandas as pd
    return pd.DataFrame([(u, i, 1.0 + (k + j) % 5) for k, u in enumerate(est.user_ids_) for j, i in enumerate(est.item_ids_[:3])],
                        columns=["user", "item", "rating"])


def test_recommend_and_similar(model_file):
    path, est = model_file
    user = int(est.user_ids_[0])
    got = excel.XC_RECOMMEND(user, 5, str(path))
    want = interpret.recommend(est, user, 5)
    assert got[0] == ["title", "predicted rating"]
    assert [r[0] for r in got[1:]] == list(want["title"])
    np.testing.assert_allclose([r[1] for r in got[1:]], want["predicted"], rtol=1e-9)
    seen = {est.title(est.item_ids_[c]) for c in est.seen(int(est.user_codes(user)))}
    assert not seen & {r[0] for r in got[1:]}
    movie = int(est.item_ids_[3])
    sim = excel.XC_SIMILAR(movie, 4, str(path))
    f = est.model_.i_weight.weight.detach().numpy().astype(np.float64)  # independent cosine
    code = int(est.item_codes(movie))
    cos = f @ f[code] / (np.linalg.norm(f, axis=1) * np.linalg.norm(f[code]))
    cos[code] = -np.inf
    order = np.argsort(-cos, kind="stable")[:4]
    assert sim[0] == ["title", "similarity"]
    assert [r[0] for r in sim[1:]] == [est.title(est.item_ids_[c]) for c in order]
    np.testing.assert_allclose([r[1] for r in sim[1:]], cos[order], rtol=1e-6)
    assert excel.XC_RECOMMEND(user, "ten", str(path)) == ERR + "n must be a whole number in [1, 10000], found 'ten'"
    assert excel.XC_RECOMMEND(user, 0, str(path)) == ERR + "n must be a whole number in [1, 10000], found 0"
    assert excel.XC_SIMILAR(123456789, 3, str(path)).startswith(ERR + "unknown movie 123456789")
    assert excel.XC_RECOMMEND([[user, user]], 3, str(path)) == ERR + "user must be one cell, got 1x2"
    assert excel.XC_SIMILAR(None, 3, str(path)) == ERR + "movie is blank"


# -- XC_FIT --------------------------------------------------------------------------------------------
def test_fit_recovers_a_rank_one_crosstab():
    u = np.array([1.0, 1.5, 2.0, 0.8, 1.2])
    m = np.array([2.0, 1.0, 2.5, 1.8, 3.0, 2.2])
    full = np.outer(u, m)
    ratings = full.tolist()
    for i, j in [(0, 1), (2, 4), (4, 0)]:
        ratings[i][j] = None
    block = excel.XC_FIT(ratings, 2, 2000)
    assert len(block) == 2 + 5 and all(len(row) == 2 + 6 for row in block)
    assert [row[:2] for row in block[:2]] == [["", ""], ["", ""]]
    movies = np.array([row[2:] for row in block[:2]], dtype=float)   # k x movies
    users = np.array([row[:2] for row in block[2:]], dtype=float)    # users x k
    pred = np.array([row[2:] for row in block[2:]], dtype=float)
    np.testing.assert_allclose(pred, users @ movies, rtol=1e-9)       # the block is self-consistent
    mask = np.array([[v is not None for v in row] for row in ratings])
    assert math.sqrt(np.mean((pred - full)[mask] ** 2)) < 0.02        # observed ratings fitted
    assert excel.XC_FIT(as_xlwings(ratings), 2, 2000) == block        # deterministic, same via the converter


def test_fit_bad_input():
    assert excel.XC_FIT([[1.0, "five"]], 2, 10) == ERR + "ratings (row 1, column 2) must be a number, found 'five'"
    assert excel.XC_FIT([[None, None]], 2, 10) == ERR + "the ratings range holds no ratings"
    assert excel.XC_FIT([[1.0]], 0, 10) == ERR + "factors must be a whole number in [1, 100], found 0"
    assert excel.XC_FIT([[1.0]], 2, 2.5) == ERR + "epochs must be a whole number in [1, 100000], found 2.5"


def test_a_bug_answers_in_its_cell_as_an_internal_error():
    """Issue 12: the Excel functions never raise; a bug is named as ours, not dressed up as the user's mistake."""
    @excel.udfs.cell_error
    def broken(x):
        return x + "1"   # a TypeError: our bug, not the user's
    assert broken(1) == ERR + "internal error: TypeError: unsupported operand type(s) for +: 'int' and 'str'"


# -- what xlwings reads: metadata and the VBA wrappers Import Functions writes -----------------------------
@pytest.fixture(scope="module")
def recorded():
    """xlcollab.excel imported with xlwings' recording decorators (what Windows gets), and the VBA they produce."""
    from xlwings_udfs import import_with_metadata, metadata, vba_wrappers, windows_udfs
    with windows_udfs() as udfs:
        (module,) = import_with_metadata(udfs, ["xlcollab.excel.udfs", "xlcollab.excel"])[-1:]
        meta = metadata(module)
        return module, meta, vba_wrappers(udfs, module)


def test_xlwings_reads_each_udf_as_before(recorded):
    """The decorated UDFs give xlwings the same arguments, converters, docs and VBA as before the Excel layer was split,
    apart from the changes made on purpose (listed here).

    The reference files were written by xlwings 0.37.8's own `xlfunc`/`generate_vba_wrapper` from the UDFs as they
    were before `cell_error` replaced the per-function wrapper (tests/data/, recorded by tests/xlwings_udfs.py).
    """
    import copy
    import json
    module, meta, vba = recorded
    data = Path(__file__).parent / "data"
    want = json.loads((data / "xlwings_udf_metadata.json").read_text())
    # on purpose since: XC_RECOMMEND / XC_SIMILAR spill natively (no xlwings resize), their _LEGACY twins keep the
    # resize for Excel without dynamic arrays; XC_FIT takes a device; the docstrings say so
    for name in ("XC_RECOMMEND", "XC_SIMILAR"):
        legacy = copy.deepcopy(want[name])
        legacy["name"], legacy["ret"]["doc"] = f"{name}_LEGACY", meta[f"{name}_LEGACY"]["ret"]["doc"]
        want[f"{name}_LEGACY"] = legacy
        want[name]["ret"] = {"doc": want[name]["ret"]["doc"][:-1] + " (spills).", "options": {}}
    want["XC_FIT"]["args"].append({"name": "device", "doc": '"auto" (default), "cpu" or "cuda"', "vba": None,
                                   "optional": "auto", "options": {}})
    assert meta == want
    before = (data / "xlwings_udf_wrappers.bas").read_text()
    before = before.replace("Optional factors, Optional epochs)", "Optional factors, Optional epochs, Optional device)")
    before = before.replace("Array(ratings, factors, epochs)", "Array(ratings, factors, epochs, device)")
    for name in ("XC_RECOMMEND", "XC_SIMILAR"):  # the twins: the same wrapper under another name
        block = re.search(rf"^Function {name}\(.*?^End Function\n\n", before, re.M | re.S)[0]
        before += block.replace(name, f"{name}_LEGACY")
    blocks = lambda text: sorted(re.findall(r"^Function .*?^End Function\n", text, re.M | re.S))  # noqa: E731
    assert blocks(vba) == blocks(before)
    assert module.XC_DOT([[1.0, 2.0]], [[3.0, 4.0]]) == 11.0  # the recorded functions still run
    assert module.XC_DOT.__xlfunc__["args"][0]["options"] == {"convert": np.array, "ndim": 2, "dtype": object}


@pytest.mark.excel
@pytest.mark.skipif(not sys.platform.startswith("win"), reason="xlwings' UDF decorators record metadata on Windows only")
def test_udfs_carry_xlwings_metadata():
    xw = pytest.importorskip("xlwings")
    for f in (excel.XC_DOT, excel.XC_RMSE, excel.XC_PREDICT, excel.XC_RECOMMEND, excel.XC_SIMILAR, excel.XC_FIT):
        assert hasattr(f, "__xlfunc__"), f.__name__
    args = {a["name"]: a["options"] for a in excel.XC_DOT.__xlfunc__["args"]}
    assert args["a"]["convert"] is np.array and args["a"]["ndim"] == 2 and args["a"]["dtype"] is object
    assert excel.XC_RECOMMEND_LEGACY.__xlfunc__["ret"]["options"]["expand"] == "table"
    assert xw.__version__


def test_fit_takes_a_device():
    import torch
    ratings = [[4.0, 3.0, None], [5.0, None, 2.0]]
    assert excel.XC_FIT(ratings, 1, 5, "cpu") == excel.XC_FIT(ratings, 1, 5) == excel.XC_FIT(ratings, 1, 5, None)
    assert excel.XC_FIT(ratings, 1, 5, "tpu").startswith(ERR + "device")
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        block = excel.XC_FIT(ratings, 1, 300, "cuda")
        np.testing.assert_allclose(np.array(block[1:], dtype=float)[:, 1:], np.array(excel.XC_FIT(ratings, 1, 300)[1:],
                                   dtype=float)[:, 1:], atol=1e-4)
    else:
        assert excel.XC_FIT(ratings, 1, 5, "cuda") == ERR + ("device 'cuda': no CUDA device is available "
                                                            "(torch.cuda.is_available() is False)")
