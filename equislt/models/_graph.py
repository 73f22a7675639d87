"""Graph models: the k-IGN (stack of :class:`~equislt.nn.IGNLinear`) and a pooled PyG MPNN classifier.

Both are made of coefficient layers equislt can mask (IGNLinear, torch/PyG Linear), so
:func:`~equislt.nn.supermask` and :func:`~equislt.nn.mask_model` apply unchanged and keep them
permutation-invariant.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..nn import IGNLinear
from ._architecture import register_model

__all__ = ["IGN", "GraphClassifier", "gin_classifier", "gcn_classifier", "count_parameters"]


class IGN(nn.Module):
    r"""k-IGN for graph-level tasks (Maron et al. 2019): invariant ``f(P·X) = f(X)`` for node relabellings P.

    ``IGNLinear(input_order → order)`` + ReLU, ``num_layers - 1`` × [``IGNLinear(order → order)`` + ReLU],
    the invariant readout ``IGNLinear(order → 0)`` + ReLU, and ``nn.Linear(hidden, out)``.

    Input ``x [B, in_channels, n, .., n]`` (``input_order`` node axes, e.g. from
    :func:`~equislt.data.dense_graph_batch`), optional ``node_mask [B, n]`` for padded batches.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 order: int = 2, input_order: int = 2, normalisation: str = "mean"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"IGN: num_layers must be >= 1, got {num_layers}")
        if order < 1:
            raise ValueError(f"IGN: order must be >= 1, got {order}")
        self.order, self.input_order = order, input_order
        orders = [input_order] + [order] * num_layers
        channels = [in_channels] + [hidden_channels] * num_layers
        self.layers = nn.ModuleList(IGNLinear(orders[i], orders[i + 1], channels[i], channels[i + 1],
                                              normalisation=normalisation) for i in range(num_layers))
        self.readout = IGNLinear(order, 0, hidden_channels, hidden_channels, normalisation=normalisation)
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: torch.Tensor, node_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x, node_mask))
        return self.head(torch.relu(self.readout(x, node_mask)))


class GraphClassifier(nn.Module):
    """A PyG node-level GNN (e.g. ``torch_geometric.nn.models.GIN``), sum/mean pooling and a Linear head."""

    def __init__(self, gnn: nn.Module, hidden_channels: int, out_channels: int, pool: str = "add"):
        super().__init__()
        from torch_geometric.nn import global_add_pool, global_mean_pool

        pools = {"add": global_add_pool, "mean": global_mean_pool}
        if pool not in pools:
            raise ValueError(f"GraphClassifier: pool must be 'add' or 'mean', got {pool!r}")
        self.gnn, self.pool_name, self._pool = gnn, pool, pools[pool]
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: Optional[torch.Tensor] = None):
        h = torch.relu(self.gnn(x, edge_index))
        return self.head(self._pool(h, batch))


def gin_classifier(in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 3) -> GraphClassifier:
    """``GraphClassifier(torch_geometric.nn.models.GIN(...), pool="add")``: the 1-WL-maximal MPNN baseline."""
    from torch_geometric.nn.models import GIN

    return GraphClassifier(GIN(in_channels, hidden_channels, num_layers), hidden_channels, out_channels)


def gcn_classifier(in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 3) -> GraphClassifier:
    """``GraphClassifier(torch_geometric.nn.models.GCN(..., bias=False), pool="add")``: every parameter lives in a
    ``Linear`` submodule (``GCNConv.bias`` would be a conv-level parameter the construction refuses)."""
    from torch_geometric.nn.models import GCN

    return GraphClassifier(GCN(in_channels, hidden_channels, num_layers, bias=False), hidden_channels, out_channels)


# the graph classifiers equislt's search and tickets name: built from the data set's sizes, keyword arguments only
@register_model("equislt.gin")
def _gin(in_channels: int, out_channels: int, hidden_channels: int = 32, num_layers: int = 3) -> GraphClassifier:
    return gin_classifier(in_channels, hidden_channels, out_channels, num_layers)


@register_model("equislt.gcn")
def _gcn(in_channels: int, out_channels: int, hidden_channels: int = 32, num_layers: int = 3) -> GraphClassifier:
    return gcn_classifier(in_channels, hidden_channels, out_channels, num_layers)


@register_model("equislt.ign")
def _ign(in_channels: int, out_channels: int, hidden_channels: int = 16, num_layers: int = 2, order: int = 2) -> IGN:
    # graphs with ``in_channels`` node features: dense_graph_batch gives 1 + in_channels channels (adjacency first)
    return IGN(in_channels + 1, hidden_channels, out_channels, num_layers=num_layers, order=order)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (coefficients) of a model, trainable or not (mask scores excluded)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.endswith("_scores"))


