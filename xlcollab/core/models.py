"""Collaborative-filtering models in fastai's economy: a dot product, a biased dot product, an embedding net.

Each model maps (user codes, item codes) -> predicted ratings, takes explicit start values where that
makes sense and has a `from_counts` classmethod that works out the sizes; `build_model` makes the one a fit's
settings name. The L2 term `fit` adds to the loss is the mean, over the batch's ratings, of the squared
embedding rows those ratings use (Funk-SVD / Surprise style). Each model splits its work into `rows` (the
embedding look-ups), `combine` (rows -> predictions) and `l2` (rows -> penalty), so that `forward_penalty`
looks every row up once per batch (half the embedding backward work of two passes).

Start values (`init`): "trunc-normal" is fastai's, a truncated normal of std 0.01 for every embedding and torch's
defaults for the net's layers. "kaiming" is He et al.'s normal, std sqrt(2 / fan_in) (torch.nn.init.kaiming_normal_,
fan_in, ReLU gain), for the factor tables (fan_in: their width k, torch's convention for an n x k weight) and every
linear weight of the net, as fastai v0.7's tabular net did its linear layers. Normal rather than uniform because
that is what He et al. derived and fastai used; a uniform draw of the same variance behaves alike. The width-1 bias
tables keep the truncated normal: He's std for a width-1 table is sqrt(2), a bias as wide as the rating scale.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from xlcollab.core.blend import Blend
from xlcollab.core.settings import MODEL_NAMES

YRange = tuple[float, float] | None


def sigmoid_range(x: Tensor, low: float, high: float) -> Tensor:
    """Squash x into (low, high) with a sigmoid: predictions can never leave the rating scale."""
    return torch.sigmoid(x) * (high - low) + low


def logit_range(y: float, low: float, high: float) -> float:
    """The inverse of sigmoid_range for one number (used to start the global bias at the mean rating)."""
    p = min(max((y - low) / (high - low), 1e-6), 1 - 1e-6)
    return float(torch.logit(torch.tensor(p, dtype=torch.float64, device="cpu")))  # a real number, even under meta


def embedding(n: int, k: int, weight: Any = None, std: float = 0.01, init: str = "trunc-normal") -> nn.Embedding:
    """An n x k embedding: the given start values, truncated-normal(0, std) like fastai, or He normal (`init`)."""
    emb = nn.Embedding(n, k)
    with torch.no_grad():
        if weight is None and init == "kaiming":
            nn.init.kaiming_normal_(emb.weight, nonlinearity="relu")
        elif weight is None:
            nn.init.trunc_normal_(emb.weight, std=std, a=-2 * std, b=2 * std)
        else:
            w = torch.as_tensor(weight, dtype=emb.weight.dtype).reshape(n, k)
            emb.weight.copy_(w)
    return emb


class EmbeddingDot(nn.Module):
    """prediction = user_factors[u] . item_factors[i]: the crosstab sheet's MMULT."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, *, user_factors: Any = None,
                 item_factors: Any = None, std: float = 0.01, init: str = "trunc-normal"):
        super().__init__()
        self.u_weight = embedding(n_users, n_factors, user_factors, std, init)
        self.i_weight = embedding(n_items, n_factors, item_factors, std, init)

    @classmethod
    def from_counts(cls, n_users: int, n_items: int, n_factors: int = 50, **kwargs: Any) -> EmbeddingDot:
        """Random start values for n_users x n_items."""
        return cls(n_users, n_items, n_factors, **kwargs)

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
                 global_bias: float = 0.0, std: float = 0.01, init: str = "trunc-normal"):
        super().__init__(n_users, n_items, n_factors, user_factors=user_factors, item_factors=item_factors, std=std,
                         init=init)
        self.u_bias = embedding(n_users, 1, user_bias, std)
        self.i_bias = embedding(n_items, 1, item_bias, std)
        self.global_bias = nn.Parameter(torch.tensor(float(global_bias)))
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))

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
    """[user emb | item emb] -> dropout -> (linear -> ReLU -> dropout) per hidden layer -> linear -> sigmoid_range.

    The lesson's net is one hidden layer of 10 (fastai v0.7's EmbeddingNet: dropout 0.05 on the embeddings, 0.5 on
    the hidden layer); several hidden layers are fastai's tabular net (`layers=[...]`), one dropout for them all.
    """

    def __init__(self, n_users: int, n_items: int, user_size: int = 50, item_size: int | None = None, *,
                 hidden: Sequence[int] = (10,), dropout: Sequence[float] = (0.05, 0.5), y_range: YRange = (0.0, 5.5),
                 user_factors: Any = None, item_factors: Any = None, std: float = 0.01, init: str = "trunc-normal"):
        super().__init__()
        item_size = user_size if item_size is None else item_size
        self.u_weight = embedding(n_users, user_size, user_factors, std, init)
        self.i_weight = embedding(n_items, item_size, item_factors, std, init)
        p_emb, p_hidden = dropout
        sizes = [user_size + item_size, *hidden]
        layers: list[nn.Module] = [nn.Dropout(p_emb)]
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(p_hidden)]
        self.layers = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        if init == "kaiming":
            with torch.no_grad():
                for layer in self.layers:
                    if isinstance(layer, nn.Linear):
                        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))

    @classmethod
    def from_counts(cls, n_users: int, n_items: int, n_factors: int = 50, **kwargs: Any) -> EmbeddingNN:
        """Random start values; n_factors is both embedding sizes unless user_size/item_size are given."""
        kwargs.setdefault("user_size", n_factors)
        return cls(n_users, n_items, **kwargs)

    rows, l2, forward = EmbeddingDot.rows, EmbeddingDot.l2, EmbeddingDot.forward
    forward_penalty = EmbeddingDot.forward_penalty

    def combine(self, rows: tuple[Tensor, ...]) -> Tensor:
        x = self.layers(torch.cat(rows, 1)).squeeze(1)
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)

    item_factors = EmbeddingDot.item_factors


# The settings' model names (core.settings.MODEL_NAMES: dotbias, dot, nn, bmf, svdpp, blend), in that order, to the
# classes as saved: bmf's posterior mean is a biased dot product without a sigmoid, `kept_factors` wide (core.bmf.Chain.model);
# svdpp's implicit sum is folded into the user factors after the fit (core.svdpp), leaving a dotbias; a blend holds
# its members, each as its own settings (`members`) build it.
MODELS: dict[str, type[nn.Module]] = dict(zip(MODEL_NAMES, (EmbeddingDotBias, EmbeddingDot, EmbeddingNN,
                                                             EmbeddingDotBias, EmbeddingDotBias, Blend), strict=True))


def build_model(s: dict[str, Any], n_users: int, n_items: int, mean: float) -> nn.Module:
    """The model checked fit settings s name (resolved y_range), random start; output starts at the `mean` rating."""
    cls = MODELS[s["model"]]
    if s["model"] == "blend":
        return Blend([build_model(m, n_users, n_items, mean) for m in s["members"]], torch.zeros(len(s["members"]) + 1))
    if s["model"] == "bmf":
        return cls.from_counts(n_users, n_items, s["kept_factors"], y_range=None, global_bias=mean)
    if s["model"] == "dot":
        return cls.from_counts(n_users, n_items, s["n_factors"], init=s["init"])
    yr = s["y_range"]
    start = mean if yr is None else logit_range(mean, *yr)
    if s["model"] in ("dotbias", "svdpp"):
        return cls.from_counts(n_users, n_items, s["n_factors"], y_range=yr, global_bias=start, init=s["init"])
    model = cls(n_users, n_items, s["user_factors"], s["item_factors"], hidden=s["hidden"], dropout=s["dropout"],
                y_range=yr, init=s["init"])
    with torch.no_grad():
        model.layers[-1].bias.fill_(start)
    return model
