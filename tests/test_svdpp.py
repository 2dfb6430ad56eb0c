"""core.svdpp: the implicit sum against a dense computation, folding keeps every prediction, a fit uses it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xlcollab.core import svdpp
from xlcollab.core.fit import CollabFit
from xlcollab.core.models import EmbeddingDotBias


def test_rated_matrix_and_implicit_sum_equal_a_dense_loop():
    g = torch.Generator().manual_seed(0)
    users = torch.tensor([0, 0, 0, 1, 2, 2, 0])  # user 0 rates item 1 twice: counted once
    items = torch.tensor([1, 3, 4, 0, 1, 2, 1])
    model = svdpp.ImplicitDotBias(4, 5, 3, svdpp.rated_matrix(users, items, 4, 5), y_range=(0.0, 5.5))
    with torch.no_grad():
        model.y.weight.copy_(torch.randn(5, 3, generator=g))
    y = model.y.weight.detach().numpy()
    want = np.zeros((4, 3))
    for u in range(4):
        rated = sorted(set(items[users == u].tolist()))
        if rated:
            want[u] = y[rated].sum(0) / np.sqrt(len(rated))
    assert np.allclose(model.implicit().detach().numpy(), want, atol=1e-6)  # user 3 rated nothing: zeros


def test_folding_keeps_every_prediction():
    g = torch.Generator().manual_seed(1)
    users, items = torch.randint(0, 20, (200,), generator=g), torch.randint(0, 15, (200,), generator=g)
    model = svdpp.ImplicitDotBias(20, 15, 4, svdpp.rated_matrix(users, items, 20, 15), y_range=(0.0, 5.5),
                                  global_bias=0.3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    folded = model.folded()
    assert type(folded) is EmbeddingDotBias and folded.y_range == (0.0, 5.5)
    uu, ii = torch.arange(20).repeat_interleave(15), torch.arange(15).repeat(20)
    with torch.no_grad():
        assert torch.allclose(folded(uu, ii), model(uu, ii), atol=1e-6)


def test_svdpp_fit_learns_implicit_factors_and_saves_as_dotbias(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    taste = rng.normal(0, 1, (n_users, 2))
    kind = rng.normal(0, 1, (n_items, 2))
    rows = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.4]
    u, i = np.array(rows).T
    frame = pd.DataFrame({"user": u, "item": i, "rating": np.clip(3 + (taste[u] * kind[i]).sum(1), 0.5, 5)})
    est = CollabFit(model="svdpp", n_factors=4, epochs=15, lr=0.02, batch_size=128, wd=0.01).fit(frame)
    plain = CollabFit(model="dotbias", n_factors=4, epochs=15, lr=0.02, batch_size=128, wd=0.01).fit(frame)
    assert type(est.model_) is EmbeddingDotBias and est.valid_rmse_ < 1.0
    assert est.valid_rmse_ != pytest.approx(plain.valid_rmse_, abs=1e-6)  # the implicit factors moved
    back = CollabFit.load(est.save(tmp_path / "svdpp.pt"))
    assert np.array_equal(back.predict(u[:30], i[:30]), est.predict(u[:30], i[:30]))
