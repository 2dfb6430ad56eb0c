"""Models: shapes, the sigmoid range of every model, explicit start values, the from_... factories."""
from __future__ import annotations

import math

import pytest
import torch

from xlcollab.core.models import (MODELS, EmbeddingDot, EmbeddingDotBias, EmbeddingNN, build_model, embedding,
                                  logit_range, sigmoid_range)
from xlcollab.core.settings import check_fit

N_USERS, N_ITEMS, BATCH = 7, 11, 64


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, N_USERS, (BATCH,), generator=g), torch.randint(0, N_ITEMS, (BATCH,), generator=g)


def test_sigmoid_range_values_and_inverse():
    x = torch.tensor([-1e4, -2.0, 0.0, 3.0, 1e4])
    y = sigmoid_range(x, 0.0, 5.5)
    assert torch.allclose(y, torch.sigmoid(x) * 5.5)
    assert y[2] == 2.75 and y[0] == 0.0 and y[-1] == 5.5
    for target in (0.5, 3.5, 5.0):
        assert math.isclose(float(sigmoid_range(torch.tensor(logit_range(target, 0.0, 5.5)), 0.0, 5.5)), target,
                            rel_tol=1e-6)


def test_embedding_dot_shape_and_value():
    m = EmbeddingDot(N_USERS, N_ITEMS, 5)
    u, i = batch()
    out = m(u, i)
    assert out.shape == (BATCH,)
    ref = (m.u_weight.weight[u] * m.i_weight.weight[i]).sum(1)
    assert torch.equal(out, ref)
    # fastai's init: truncated normal with std 0.01, cut at 2 std
    assert m.u_weight.weight.abs().max() <= 0.02


def test_embedding_dot_bias_range():
    m = EmbeddingDotBias(N_USERS, N_ITEMS, 5)
    with torch.no_grad():  # push raw scores far out: the output must still stay inside y_range
        m.u_weight.weight.mul_(1e4)
        m.i_weight.weight.normal_(0, 100)
    out = m(*batch())
    assert out.shape == (BATCH,)
    assert out.min() >= 0.0 and out.max() <= 5.5
    assert out.max() - out.min() > 1  # not a constant


def test_embedding_dot_bias_without_range_is_plain_sum():
    m = EmbeddingDotBias(N_USERS, N_ITEMS, 3, y_range=None, global_bias=3.5)
    u, i = batch(1)
    ref = ((m.u_weight.weight[u] * m.i_weight.weight[i]).sum(1) + m.u_bias.weight[u, 0] + m.i_bias.weight[i, 0] + 3.5)
    assert torch.allclose(m(u, i), ref, atol=1e-7)


def test_embedding_nn_shapes_range_and_sizes():
    m = EmbeddingNN(N_USERS, N_ITEMS, user_size=4, item_size=9, hidden=(6,), y_range=(1.0, 5.0))
    assert m.u_weight.weight.shape == (N_USERS, 4) and m.i_weight.weight.shape == (N_ITEMS, 9)
    assert m.layers[1].in_features == 13 and m.layers[1].out_features == 6 and m.layers[-1].out_features == 1
    with torch.no_grad():
        m.layers[-1].weight.normal_(0, 1e3)
        m.u_weight.weight.normal_(0, 10)
    m.eval()
    out = m(*batch())
    assert out.shape == (BATCH,)
    assert out.min() >= 1.0 and out.max() <= 5.0


def test_embedding_nn_dropout_only_in_training():
    m = EmbeddingNN(N_USERS, N_ITEMS, 8, dropout=(0.5, 0.5))
    u, i = batch()
    m.eval()
    assert torch.equal(m(u, i), m(u, i))
    m.train()
    torch.manual_seed(0)
    a = m(u, i)
    torch.manual_seed(1)
    assert not torch.equal(a, m(u, i))


def test_explicit_start_values_are_used():
    users = torch.arange(12.0).reshape(4, 3) / 10
    items = -torch.arange(15.0).reshape(5, 3) / 10
    m = EmbeddingDot(4, 5, 3, user_factors=users, item_factors=items)
    u, i = torch.tensor([0, 3, 2]), torch.tensor([4, 0, 1])
    assert torch.allclose(m(u, i), (users @ items.T)[u, i])
    b = EmbeddingDotBias(4, 5, 3, user_factors=users, item_factors=items, user_bias=[0.1, 0.2, 0.3, 0.4],
                         item_bias=torch.ones(5), y_range=None, global_bias=2.0)
    expected = (users @ items.T)[u, i] + torch.tensor([0.1, 0.4, 0.3]) + 1 + 2
    assert torch.allclose(b(u, i), expected, atol=1e-6)


def test_from_counts_for_every_model():
    for name, cls in MODELS.items():
        if name == "blend":  # a container of fitted members (tests/test_blend.py)
            continue
        m = cls.from_counts(N_USERS, N_ITEMS, 6)
        assert m.u_weight.weight.shape == (N_USERS, 6), name
        assert m.item_factors.shape == (N_ITEMS, 6), name
        assert m(*batch()).shape == (BATCH,), name


def test_penalty_is_mean_squared_rows_used():
    m = EmbeddingDotBias(N_USERS, N_ITEMS, 4)
    u, i = batch(2)
    ref = (m.u_weight.weight[u] ** 2).sum(1) + (m.i_weight.weight[i] ** 2).sum(1) \
        + m.u_bias.weight[u, 0] ** 2 + m.i_bias.weight[i, 0] ** 2
    assert torch.allclose(m.forward_penalty(u, i)[1], ref.mean(), rtol=1e-6)
    split = 0.3 * ((m.u_weight.weight[u] ** 2).sum(1) + (m.i_weight.weight[i] ** 2).sum(1)).mean() \
        + 0.02 * (m.u_bias.weight[u, 0] ** 2 + m.i_bias.weight[i, 0] ** 2).mean()
    pred, pen = m.forward_penalty(u, i, 0.3, 0.02)
    assert torch.allclose(pen, split, rtol=1e-6)
    assert torch.equal(pred, m(u, i))
    n = EmbeddingNN(N_USERS, N_ITEMS, 3, 5)
    ref = (n.u_weight.weight[u] ** 2).sum(1) + (n.i_weight.weight[i] ** 2).sum(1)
    assert torch.allclose(n.forward_penalty(u, i)[1], ref.mean())


def test_build_model_follows_the_settings():
    """The class the settings name; the output starts at the mean rating (through the sigmoid range's inverse)."""
    s = {**check_fit({"model": "dotbias", "n_factors": 3, "hidden": 4}), "y_range": (0.0, 5.5)}
    m = build_model(s, N_USERS, N_ITEMS, 3.5)
    assert type(m) is EmbeddingDotBias and m.u_weight.weight.shape == (N_USERS, 3)
    assert float(sigmoid_range(m.global_bias.detach(), 0.0, 5.5)) == pytest.approx(3.5, rel=1e-6)
    net = build_model({**s, "model": "nn", "item_factors": 5}, N_USERS, N_ITEMS, 3.5)
    assert type(net) is EmbeddingNN and net.layers[1].out_features == 4 and net.layers[1].in_features == 3 + 5
    assert float(net.layers[-1].bias.detach()) == pytest.approx(logit_range(3.5, 0.0, 5.5), rel=1e-6)
    plain = build_model({**s, "model": "nn", "y_range": None}, N_USERS, N_ITEMS, 3.5)
    assert float(plain.layers[-1].bias.detach()) == 3.5
    assert type(build_model({**s, "model": "dot"}, N_USERS, N_ITEMS, 3.5)) is EmbeddingDot
    assert set(MODELS) == {"dotbias", "dot", "nn", "bmf", "svdpp", "blend"}
    linear = build_model({**s, "model": "bmf", "kept_factors": 5}, N_USERS, N_ITEMS, 3.5)  # a posterior mean
    assert type(linear) is EmbeddingDotBias and linear.y_range is None and linear.u_weight.weight.shape[1] == 5
    assert float(linear.global_bias.detach()) == 3.5


@pytest.mark.parametrize("bad", [torch.zeros(3, 3), torch.zeros(4, 2)])
def test_wrong_start_value_shape_raises(bad):
    with pytest.raises(RuntimeError):
        EmbeddingDot(4, 5, 3, user_factors=bad)


def test_embedding_nn_hidden_layers_equal_the_functional_net():
    """hidden (8, 4): dropout -> linear -> ReLU -> dropout -> linear -> ReLU -> dropout -> linear, one dropout p for
    the hidden layers; in eval mode the output is the plain functional composition of its weights."""
    m = EmbeddingNN(N_USERS, N_ITEMS, 3, 5, hidden=(8, 4), dropout=(0.1, 0.3), y_range=(0.5, 5.0))
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [m.layers[k].p for k in (0, 3, 6)] == [0.1, 0.3, 0.3]
    assert [(m.layers[k].in_features, m.layers[k].out_features) for k in (1, 4, 7)] == [(8, 8), (8, 4), (4, 1)]
    m.eval()
    u, i = batch(3)
    x = torch.cat([m.u_weight.weight[u], m.i_weight.weight[i]], 1)
    for k in (1, 4):
        x = torch.relu(x @ m.layers[k].weight.T + m.layers[k].bias)
    ref = torch.sigmoid(x @ m.layers[7].weight.T + m.layers[7].bias).squeeze(1) * 4.5 + 0.5
    torch.testing.assert_close(m(u, i), ref, rtol=1e-6, atol=1e-7)


def test_default_start_is_unchanged():
    """trunc-normal: fastai's truncated normal (|w| <= 2 std) for every table, torch's own init for the net's layers
    (the same bits as nn.Linear built in the same order from the same seed)."""
    torch.manual_seed(5)
    m = EmbeddingNN(N_USERS, N_ITEMS, 4, hidden=(6,))
    torch.manual_seed(5)
    embedding(N_USERS, 4), embedding(N_ITEMS, 4)
    first, last = torch.nn.Linear(8, 6), torch.nn.Linear(6, 1)
    assert torch.equal(m.layers[1].weight, first.weight) and torch.equal(m.layers[4].weight, last.weight)
    assert m.u_weight.weight.abs().max() <= 0.02 and m.i_weight.weight.abs().max() <= 0.02


def test_kaiming_start_is_he_normal():
    """init="kaiming": factor tables and linear weights ~ N(0, 2 / fan_in) (fan_in: a table's width, a layer's
    inputs), not truncated; bias tables stay at fastai's truncated normal."""
    k = 16
    torch.manual_seed(0)
    m = EmbeddingDotBias(20_000, 300, k, init="kaiming")
    w = m.u_weight.weight.detach().double()
    assert float(w.std()) == pytest.approx(math.sqrt(2 / k), rel=0.01)  # 320,000 draws: ~0.13 % sampling error
    assert abs(float(w.mean())) < 0.002 and float(w.abs().max()) > 4 * math.sqrt(2 / k)  # a normal's tails
    assert m.u_bias.weight.abs().max() <= 0.02 and m.i_bias.weight.abs().max() <= 0.02
    torch.manual_seed(1)
    reference = torch.nn.Embedding(300, k)
    torch.nn.init.kaiming_normal_(reference.weight, nonlinearity="relu")
    torch.manual_seed(1)
    assert torch.equal(embedding(300, k, init="kaiming").weight, reference.weight)  # torch.nn.init's He normal

    net = EmbeddingNN(N_USERS, N_ITEMS, 200, 300, hidden=(400,), init="kaiming")
    hidden, out = net.layers[1].weight.detach().double(), net.layers[4].weight.detach().double()
    assert hidden.shape == (400, 500) and float(hidden.std()) == pytest.approx(math.sqrt(2 / 500), rel=0.01)
    assert float(out.std()) == pytest.approx(math.sqrt(2 / 400), rel=0.15)  # 400 draws
    default = EmbeddingNN(N_USERS, N_ITEMS, 200, 300, hidden=(400,))
    assert float(default.layers[1].weight.detach().std()) == pytest.approx(1 / math.sqrt(3 * 500), rel=0.02)  # torch's own
