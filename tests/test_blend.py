"""core.blend: probe weights are least squares, the module is the weighted sum, a blended fit saves and explains."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xlcollab.core import blend, interpret
from xlcollab.core.fit import CollabFit
from xlcollab.core.models import EmbeddingDotBias


def test_probe_weights_are_least_squares():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(300, generator=g) * 4 + 1
    preds = [truth + 0.3 * torch.randn(300, generator=g), 0.8 * truth + 0.5 * torch.randn(300, generator=g)]
    x = np.column_stack([np.ones(300)] + [p.double().numpy() for p in preds])
    want = np.linalg.lstsq(x, truth.double().numpy(), rcond=None)[0]
    assert np.allclose(blend.probe_weights(preds, truth).numpy(), want, atol=1e-9)


def test_blend_is_the_weighted_sum_of_its_members():
    a = EmbeddingDotBias(5, 4, 2, y_range=(0.0, 5.5), global_bias=0.2)
    b = EmbeddingDotBias(5, 4, 3, y_range=None, global_bias=3.0)
    model = blend.Blend([a, b], torch.tensor([0.1, 0.6, 0.5]))
    u, i = torch.arange(5).repeat_interleave(4), torch.arange(4).repeat(5)
    with torch.no_grad():
        assert torch.allclose(model(u, i), 0.1 + 0.6 * a(u, i) + 0.5 * b(u, i))
    assert model.item_factors.shape == (4, 5)
    assert torch.allclose(model.item_bias, 0.6 * a.item_bias + 0.5 * b.item_bias)


def test_blended_fit_saves_loads_and_explains(tmp_path):
    rng = np.random.default_rng(4)
    n_users, n_items = 70, 50
    taste, kind = rng.normal(0, 0.8, (n_users, 2)), rng.normal(0, 0.8, (n_items, 2))
    rows = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.35]
    u, i = np.array(rows).T
    x = 3 + (taste[u] * kind[i]).sum(1) + rng.normal(0, 0.3, len(u))
    frame = pd.DataFrame({"user": u, "item": i, "rating": np.clip(np.round(2 * x) / 2, 0.5, 5)})
    est = CollabFit(model="blend", seed=1).fit(frame)
    s = est.settings_
    assert [m["model"] for m in s["members"]] == [name for name, _ in blend.MEMBERS]
    assert s["members"][2]["n_factors"] == 128 and s["members"][2]["wd"] == 0.05
    assert [r["epoch"] for r in est.trace_] == [0, 1, 2, 3, 4] and est.trace_[0]["probe_rmse"] > 0
    member_valid = [r["valid_rmse"] for r in est.trace_[1:4]]
    assert est.valid_rmse_ <= max(member_valid) + 1e-9  # the blend is no worse than its worse member
    assert est.valid_rmse_ == pytest.approx(est.valid_scores_["rmse"], rel=1e-5)
    back = CollabFit.load(est.save(tmp_path / "blend.pt"))
    ids_u, ids_i = frame["user"].to_numpy()[:40], frame["item"].to_numpy()[:40]
    assert np.allclose(back.predict(ids_u, ids_i), est.predict(ids_u, ids_i), atol=1e-6)
    assert len(interpret.recommend(back, 3, 4)) == 4 and len(interpret.similar(back, 2, 3)) == 3
    best, _ = interpret.bias_ranking(back, 2)
    assert len(best) == 2


def test_a_blend_file_with_broken_members_is_refused_in_one_line(tmp_path):
    from xlcollab.errors import DataError

    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3], "rating": [4.0, 3, 5, 2, 4, 1]})
    est = CollabFit(model="blend", seed=0, valid_pct=0.0).fit(frame)
    path = est.save(tmp_path / "b.pt")
    blob = torch.load(path, weights_only=True)
    blob["settings"]["members"] = [{"model": "bmf"}]  # no factors, no width
    torch.save(blob, path)
    with pytest.raises(DataError, match="damaged xlcollab model file: its settings describe no model"):
        CollabFit.load(path)
