"""Masked PyG ``Linear`` (``torch_geometric.nn.dense.linear.Linear``, not a ``torch.nn.Linear`` subclass).

PyG's message-passing layers (``GCNConv``, ``GINConv``'s MLP, ``GraphConv``, ``SAGEConv``) and models
(``GCN``, ``GIN``, ``GraphSAGE``) keep all their channel-mixing coefficients in such Linear submodules, so
:func:`~equislt.nn.supermask` / :func:`~equislt.nn.mask_model` swap these in place and reuse PyG's own layer
code; the graph operator each one multiplies is listed in :mod:`equislt.basis._graph`. Masks on these
coefficients keep the layers permutation-equivariant. Imported lazily (only once torch_geometric is).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn.dense.linear import Linear

from .._compat import check_materialised
from ._masked import MaskedLayer

__all__ = ["MaskedPyGLinear"]


class MaskedPyGLinear(MaskedLayer, Linear):
    """PyG ``Linear`` reading ``weight`` / ``bias`` through a coefficient mask."""

    base_class = Linear

    @classmethod
    def wrap(cls, layer: nn.Module, mask: nn.Module) -> "MaskedPyGLinear":
        check_materialised(layer, "MaskedPyGLinear")
        return super().wrap(layer, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.coefficient("weight"), self.coefficient("bias"))
