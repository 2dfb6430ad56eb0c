"""Implicit feedback in the SVD++ manner (Koren 2008): which movies a user rated says something about their taste.

    user factors = p_u + |N(u)|^-1/2 * sum over the movies j the user rated of y_j

with y an extra movie embedding learned with the rest (the same descent, loss and L2 penalty as dotbias: the
penalty falls on the user's whole factor row). N(u) is the training ratings only. Once fitted, the implicit sum is
added into the user factors (`folded`), leaving a plain EmbeddingDotBias that predicts the same, so the model
saves, loads, recommends and explains like dotbias.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from xlcollab.core.models import EmbeddingDotBias, logit_range


def rated_matrix(users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
    """Sparse n_users x n_items: |N(u)|^-1/2 where user u rated item i (a pair counted once)."""
    pairs = torch.sparse_coo_tensor(torch.stack([users, items]), torch.ones(len(users), device=users.device),
                                    (n_users, n_items), check_invariants=False).coalesce()
    u = pairs.indices()[0]
    count = torch.bincount(u, minlength=n_users).float()
    return torch.sparse_coo_tensor(pairs.indices(), count[u].rsqrt(), (n_users, n_items),
                                   check_invariants=False).coalesce()


class ImplicitDotBias(EmbeddingDotBias):
    """EmbeddingDotBias whose user factor rows add the normalised sum of the implicit factors of the movies rated."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, rated: Tensor, **kwargs: Any):
        super().__init__(n_users, n_items, n_factors, **kwargs)
        self.y = nn.Embedding(n_items, n_factors)
        nn.init.zeros_(self.y.weight)  # starts as dotbias
        self.rated = rated

    def implicit(self) -> Tensor:
        """|N(u)|^-1/2 sum_j y_j for every user (n_users x n_factors)."""
        return torch.sparse.mm(self.rated, self.y.weight)

    def rows(self, users: Tensor, items: Tensor) -> tuple[Tensor, ...]:
        u, i, bu, bi = super().rows(users, items)
        return u + self.implicit()[users], i, bu, bi

    @torch.no_grad()
    def folded(self) -> EmbeddingDotBias:
        """The plain EmbeddingDotBias with the same predictions: the implicit sum added into the user factors."""
        n_users, k = self.u_weight.weight.shape
        model = EmbeddingDotBias(n_users, self.i_weight.weight.shape[0], k, y_range=self.y_range,
                                 global_bias=float(self.global_bias))
        model.load_state_dict({"u_weight.weight": self.u_weight.weight + self.implicit(),
                               "i_weight.weight": self.i_weight.weight, "u_bias.weight": self.u_bias.weight,
                               "i_bias.weight": self.i_bias.weight, "global_bias": self.global_bias})
        return model.to(self.u_weight.weight.device)


def build(s: dict[str, Any], train: tuple[Tensor, Tensor, Tensor], n_users: int, n_items: int,
          mean: float) -> ImplicitDotBias:
    """CollabFit's svdpp model for checked settings s (dotbias's factors, y_range, start) and the training codes."""
    yr = s["y_range"]
    return ImplicitDotBias(n_users, n_items, s["n_factors"], rated_matrix(train[0], train[1], n_users, n_items),
                           y_range=yr, global_bias=mean if yr is None else logit_range(mean, *yr))
