"""Graph models: the k-IGN (stack of :class:`~equislt.nn.IGNLinear`) and a pooled PyG MPNN classifier.

Both are made of coefficient layers equislt can mask (IGNLinear, torch/PyG Linear), so
:func:`~equislt.nn.supermask` and :func:`~equislt.nn.mask_model` apply unchanged and keep them
permutation-invariant.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

import torch
from torch import nn

from ..nn import IGNLinear
from ._architecture import register_model

__all__ = ["IGN", "GraphClassifier", "gin_classifier", "gcn_classifier", "graph_accuracy", "graph_arguments",
           "graph_logits", "train_graph_model", "count_parameters"]


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


# what a graph model's ``forward`` may ask for by name, and the attribute of a PyG batch that gives it
GRAPH_ARGUMENTS = ("x", "edge_index", "batch", "edge_attr", "edge_weight", "pos")


def graph_arguments(batch, model: Optional[nn.Module] = None) -> tuple:
    """The call arguments of a graph model on a PyG batch: ``dense_graph_batch(batch)`` for an :class:`IGN`
    (also inside a ``DistributedDataParallel``'s ``.module``); for any other model, the batch attributes its
    ``forward`` names, in order, from :data:`GRAPH_ARGUMENTS` (``forward(x, edge_index, batch)``, or with
    ``edge_attr`` for GINE-style models); without a model, ``(x, edge_index, batch)``."""
    inner = getattr(model, "module", model)
    if isinstance(inner, IGN):
        from ..data import dense_graph_batch

        return tuple(dense_graph_batch(batch))
    names = ("x", "edge_index", "batch") if inner is None else _forward_names(inner, batch)
    return tuple(_batch_value(batch, name) for name in names)


def _forward_names(model: nn.Module, batch) -> List[str]:
    import inspect

    names = []
    for name, parameter in inspect.signature(model.forward).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.KEYWORD_ONLY):
            break
        present = name in GRAPH_ARGUMENTS and getattr(batch, name, None) is not None
        if not present and parameter.default is not parameter.empty:
            break
        if not present:
            why = "the batch has none" if name in GRAPH_ARGUMENTS else f"graph models take {GRAPH_ARGUMENTS}"
            raise ValueError(f"{type(model).__name__}.forward asks for {name!r}, but {why}: write "
                             "forward(x, edge_index, batch, ...) with arguments named after the batch's attributes")
        names.append(name)
    return names


def _batch_value(batch, name: str) -> torch.Tensor:
    value = getattr(batch, name)
    return value.float() if name == "x" else value


def graph_logits(model: nn.Module, batch) -> torch.Tensor:
    """Logits of a graph classifier on a PyG batch (:func:`graph_arguments`)."""
    return model(*graph_arguments(batch, model))


def train_graph_model(model: nn.Module, loader: Iterable, epochs: int = 50, lr: float = 3e-3,
                      weight_decay: float = 0.0) -> List[float]:
    """Adam + cross-entropy on PyG batches (``IGN`` gets :func:`~equislt.data.dense_graph_batch`, other models
    ``model(x, edge_index, batch)``). Only ``requires_grad`` parameters train. Returns mean loss per epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train_graph_model: model has no parameters with requires_grad=True")
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(graph_logits(model, batch), batch.y.view(-1))
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.num_graphs
            count += batch.num_graphs
        losses.append(total / max(count, 1))
    return losses


@torch.no_grad()
def graph_accuracy(model: nn.Module, loader: Iterable) -> float:
    """Fraction of graphs classified correctly, in eval mode (the previous mode is restored)."""
    was = model.training
    model.eval()
    correct = total = 0
    try:
        for batch in loader:
            correct += int((graph_logits(model, batch).argmax(-1) == batch.y.view(-1)).sum())
            total += batch.num_graphs
    finally:
        model.train(was)
    return correct / max(total, 1)
