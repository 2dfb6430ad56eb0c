"""Collaborative-filtering models in fastai's economy: a dot product, a biased dot product, an embedding net.

Each model maps (user codes, item codes) -> predicted ratings, takes explicit start values where that
makes sense (the sheets' literal factors) and has `from_...` classmethods that work out the sizes.
`penalty(users, items)` is the L2 term that `fit` adds to the loss: the mean, over the batch's ratings,
of the squared embedding rows those ratings use (Funk-SVD / Surprise style). Each model splits its work
into `rows` (the embedding look-ups), `combine` (rows -> predictions) and `l2` (rows -> penalty), so that
`forward_penalty` looks every row up once per batch (half the embedding backward work of two passes).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

YRange = tuple[float, float] | None


def sigmoid_range(x: Tensor, low: float, high: float) -> Tensor:
    """Squash x into (low, high) with a sigmoid: predictions can never leave the rating scale."""
    return torch.sigmoid(x) * (high - low) + low


def logit_range(y: float, low: float, high: float) -> float:
    """The inverse of sigmoid_range for one number (used to start the global bias at the mean rating)."""
    p = min(max((y - low) / (high - low), 1e-6), 1 - 1e-6)
    return float(torch.logit(torch.tensor(p, dtype=torch.float64)))


class SigmoidRange(nn.Module):
    """sigmoid_range as a layer."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid_range(x, self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


def embedding(n: int, k: int, weight: Any = None, std: float = 0.01) -> nn.Embedding:
    """An n x k embedding: the given start values, or truncated-normal(0, std) like fastai."""
    emb = nn.Embedding(n, k)
    with torch.no_grad():
        if weight is None:
            nn.init.trunc_normal_(emb.weight, std=std, a=-2 * std, b=2 * std)
        else:
            w = torch.as_tensor(weight, dtype=emb.weight.dtype).reshape(n, k)
            emb.weight.copy_(w)
    return emb


def _rows(x: Any) -> int:
    return int(torch.as_tensor(x).shape[0])


def _width(x: Any) -> int:
    t = torch.as_tensor(x)
    return int(t.shape[1]) if t.dim() > 1 else 1


class EmbeddingDot(nn.Module):
    """prediction = user_factors[u] . item_factors[i]: the crosstab sheet's MMULT."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, *, user_factors: Any = None,
                 item_factors: Any = None, std: float = 0.01):
        super().__init__()
        self.u_weight = embedding(n_users, n_factors, user_factors, std)
        self.i_weight = embedding(n_items, n_factors, item_factors, std)

    @classmethod
    def from_counts(cls, n_users: int, n_items: int, n_factors: int = 50, **kwargs: Any) -> EmbeddingDot:
        """Random start values for n_users x n_items."""
        return cls(n_users, n_items, n_factors, **kwargs)

    @classmethod
    def from_factors(cls, user_factors: Any, item_factors: Any) -> EmbeddingDot:
        """Start from given factor blocks (n_users x k, n_items x k), e.g. a sheet's literal values."""
        return cls(_rows(user_factors), _rows(item_factors), _width(user_factors),
                   user_factors=user_factors, item_factors=item_factors)

    def rows(self, users: Tensor, items: Tensor) -> tuple[Tensor, ...]:
        """The embedding rows a batch uses."""
        return self.u_weight(users), self.i_weight(items)

    def combine(self, rows: tuple[Tensor, ...]) -> Tensor:
        """Predictions from looked-up rows."""
        u, i = rows[:2]
        return (u * i).sum(1)

    def l2(self, rows: tuple[Tensor, ...], wd: float = 1.0, wd_bias: float | None = None) -> Tensor:
        """wd * mean over the batch of the squared factor rows used (+ wd_bias * the same for biases, if any)."""
        u, i = rows[:2]
        out = wd * (u.pow(2).sum(1) + i.pow(2).sum(1)).mean()
        if len(rows) > 2:
            out = out + (wd if wd_bias is None else wd_bias) * (rows[2].pow(2) + rows[3].pow(2)).mean()
        return out

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return self.combine(self.rows(users, items))

    def penalty(self, users: Tensor, items: Tensor, wd: float = 1.0, wd_bias: float | None = None) -> Tensor:
        """The L2 term for a batch: mean over its ratings of the squared rows they use, weighted (see l2)."""
        return self.l2(self.rows(users, items), wd, wd_bias)

    def forward_penalty(self, users: Tensor, items: Tensor, wd: float = 1.0,
                        wd_bias: float | None = None) -> tuple[Tensor, Tensor]:
        """(predictions, penalty) from one look-up of each row."""
        rows = self.rows(users, items)
        return self.combine(rows), self.l2(rows, wd, wd_bias)

    @property
    def item_factors(self) -> Tensor:
        return self.i_weight.weight


class EmbeddingDotBias(EmbeddingDot):
    """prediction = sigmoid_range(u . i + user_bias + item_bias + global_bias, *y_range); y_range None: no squashing."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, *, y_range: YRange = (0.0, 5.5),
                 user_factors: Any = None, item_factors: Any = None, user_bias: Any = None, item_bias: Any = None,
                 global_bias: float = 0.0, std: float = 0.01):
        super().__init__(n_users, n_items, n_factors, user_factors=user_factors, item_factors=item_factors, std=std)
        self.u_bias = embedding(n_users, 1, user_bias, std)
        self.i_bias = embedding(n_items, 1, item_bias, std)
        self.global_bias = nn.Parameter(torch.tensor(float(global_bias)))
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))

    @classmethod
    def from_factors(cls, user_factors: Any, item_factors: Any, user_bias: Any = None, item_bias: Any = None,
                     *, y_range: YRange = (0.0, 5.5), global_bias: float = 0.0) -> EmbeddingDotBias:
        """Start from given factor and bias blocks, e.g. the bias sheet's literal values."""
        return cls(_rows(user_factors), _rows(item_factors), _width(user_factors), y_range=y_range,
                   user_factors=user_factors, item_factors=item_factors, user_bias=user_bias,
                   item_bias=item_bias, global_bias=global_bias)

    def rows(self, users: Tensor, items: Tensor) -> tuple[Tensor, ...]:
        return self.u_weight(users), self.i_weight(items), self.u_bias(users).squeeze(1), self.i_bias(items).squeeze(1)

    def combine(self, rows: tuple[Tensor, ...]) -> Tensor:
        u, i, bu, bi = rows
        x = (u * i).sum(1) + bu + bi + self.global_bias
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)

    @property
    def item_bias(self) -> Tensor:
        return self.i_bias.weight.squeeze(1)


class EmbeddingNN(nn.Module):
    """[user emb | item emb] -> dropout -> linear -> ReLU -> dropout -> linear -> sigmoid_range (the lesson's net)."""

    def __init__(self, n_users: int, n_items: int, user_size: int = 50, item_size: int | None = None, *,
                 n_hidden: int = 10, dropout: Sequence[float] = (0.05, 0.5), y_range: YRange = (0.0, 5.5),
                 user_factors: Any = None, item_factors: Any = None, std: float = 0.01):
        super().__init__()
        item_size = user_size if item_size is None else item_size
        self.u_weight = embedding(n_users, user_size, user_factors, std)
        self.i_weight = embedding(n_items, item_size, item_factors, std)
        p_emb, p_hidden = dropout
        self.layers = nn.Sequential(nn.Dropout(p_emb), nn.Linear(user_size + item_size, n_hidden), nn.ReLU(),
                                    nn.Dropout(p_hidden), nn.Linear(n_hidden, 1))
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))

    @classmethod
    def from_counts(cls, n_users: int, n_items: int, n_factors: int = 50, **kwargs: Any) -> EmbeddingNN:
        """Random start values; n_factors is both embedding sizes unless user_size/item_size are given."""
        kwargs.setdefault("user_size", n_factors)
        return cls(n_users, n_items, **kwargs)

    rows, l2, forward, penalty, forward_penalty = (EmbeddingDot.rows, EmbeddingDot.l2, EmbeddingDot.forward,
                                                   EmbeddingDot.penalty, EmbeddingDot.forward_penalty)

    def combine(self, rows: tuple[Tensor, ...]) -> Tensor:
        x = self.layers(torch.cat(rows, 1)).squeeze(1)
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)

    item_factors = EmbeddingDot.item_factors


MODELS: dict[str, type[nn.Module]] = {"dot": EmbeddingDot, "dotbias": EmbeddingDotBias, "nn": EmbeddingNN}
