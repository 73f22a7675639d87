r"""Blocks of PyG message-passing layers: graph operators ⊗ matrix units.

A linear message-passing layer on node features ``X ∈ R^{n×c}`` is ``Y = Σ_t S_t X W_tᵀ + 1 bᵀ`` with fixed
**graph operators** ``S_t`` (they commute with node permutations: ``S(PAPᵀ) = P S(A) Pᵀ``) and channel-mixing
coefficients ``W_t[a, b]``: the basis of each block is ``S_t ⊗ E_ab``. The coefficients are the weights of
the layer's PyG ``Linear`` submodules, so a block's ``tensor`` is the dotted path of the coefficient tensor
inside the conv (``"lin_rel.weight"``; read it with ``conv.get_parameter(block.tensor)``) and its
``operator`` names ``S_t``:

================  ======================================================================================
operator          ``S`` (``A[i, j]`` = weight of edge ``j → i``, ``D = diag(A 1)``)
================  ======================================================================================
``identity``      ``I`` (root / self weights; also the later Linear layers of a GIN MLP, which act
                  pointwise after its nonlinearity)
``adjacency``     ``A``: sum aggregation (``aggr="add"``)
``mean``          ``D⁻¹ A``: mean aggregation (isolated nodes get 0)
``gcn``           ``D̂^{-1/2} (A + I) D̂^{-1/2}``, ``D̂ = diag((A + I) 1)``: GCN's normalised adjacency
``gin``           ``(1 + ε) I + A``: the first Linear of a GIN MLP (``ε = conv.eps``)
``constant``      bias: ``1 bᵀ``
================  ======================================================================================

Layers: ``GCNConv`` (``lin.weight``: gcn; ``bias``: constant), ``GINConv`` (its MLP's Linear layers: gin, then
identity), ``GraphConv`` (``lin_rel``: adjacency or mean; ``lin_root``: identity), ``SAGEConv`` (``lin_l``:
mean or adjacency; ``lin_r``: identity; ``lin`` when ``project=True``: identity, pointwise before
aggregation). These blocks document the conv; the *maskable* layers (swap-in, :func:`equislt.nn.supermask`)
are the Linear submodules themselves, whose own blocks are the dense ``[out, in, 1]`` ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .._compat import check_materialised, pyg_linear_class, pyg_loaded
from ._block import Block
from ._dense import dense_blocks, dense_init_std

__all__ = ["GRAPH_OPERATORS", "GraphBlock", "graph_adapter", "graph_blocks", "graph_init_std", "graph_operator"]

GRAPH_OPERATORS = ("identity", "adjacency", "mean", "gcn", "gin", "constant")
_AGGR = {"add": "adjacency", "sum": "adjacency", "mean": "mean"}


def graph_operator(name: str, edge_index: torch.Tensor, num_nodes: int, edge_weight: Optional[torch.Tensor] = None,
                   eps: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """Dense ``[n, n]`` graph operator ``name`` (see the module table) of a graph; ``constant``: ``[n, 1]`` ones."""
    if name not in GRAPH_OPERATORS:
        raise ValueError(f"graph_operator: unknown operator {name!r} (known: {GRAPH_OPERATORS})")
    eye = torch.eye(num_nodes, dtype=dtype)
    if name == "identity":
        return eye
    if name == "constant":
        return torch.ones(num_nodes, 1, dtype=dtype)
    adj = torch.zeros(num_nodes, num_nodes, dtype=dtype)
    weight = torch.ones(edge_index.shape[1], dtype=dtype) if edge_weight is None else edge_weight.to(dtype)
    adj.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    if name == "adjacency":
        return adj
    if name == "gin":
        return (1.0 + float(eps)) * eye + adj
    if name == "mean":
        deg = adj.sum(1, keepdim=True)
        return torch.where(deg > 0, adj / deg.clamp(min=1e-12), torch.zeros_like(adj))
    adj = adj + eye  # gcn
    inv_sqrt = adj.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


@dataclass(frozen=True, eq=False)
class GraphBlock(Block):
    """A :class:`Block` of a message-passing layer: the coefficients multiply ``operator ⊗ E_ab``.

    ``tensor`` is a dotted path inside the conv (``"lin_rel.weight"``); ``basis`` is the channel part
    (``[1, 1, 1]`` ones: one matrix unit per coefficient); :meth:`operator_matrix` gives the graph part.
    """

    operator: str = "identity"
    eps: float = 0.0

    def operator_matrix(self, edge_index: torch.Tensor, num_nodes: int,
                        edge_weight: Optional[torch.Tensor] = None, dtype=torch.float32) -> torch.Tensor:
        """The dense ``[n, n]`` operator of this block on a graph (``[n, 1]`` ones for a bias block)."""
        return graph_operator(self.operator, edge_index, num_nodes, edge_weight, self.eps, dtype)

    def __repr__(self) -> str:
        o, i, k = self.shape
        return f"GraphBlock({self.name}, operator={self.operator}, out_fields={o}, in_fields={i}, n_basis={k})"


def _is_linear(module) -> bool:
    pyg_linear = pyg_linear_class()
    return isinstance(module, nn.Linear) or (pyg_linear is not None and isinstance(module, pyg_linear))


def _aggr_operator(conv, attribute: str = "aggr") -> str:
    aggr = getattr(conv, attribute)
    if not isinstance(aggr, str) or aggr not in _AGGR:
        raise ValueError(f"{type(conv).__name__}: aggr={aggr!r} is not a linear graph operator "
                         f"(supported: {sorted(_AGGR)})")
    return _AGGR[aggr]


def _parts(conv) -> List[Tuple[str, nn.Module, str]]:
    """``(path, Linear, operator)`` of a supported conv, in forward order."""
    import torch_geometric.nn as pyg_nn

    name = type(conv).__name__
    if isinstance(conv, pyg_nn.GCNConv):
        if conv.normalize and conv.add_self_loops:
            op = "gcn"
        elif not conv.normalize and not conv.add_self_loops:
            op = "adjacency"
        else:
            raise ValueError(f"GCNConv: normalize={conv.normalize} with add_self_loops={conv.add_self_loops} is not "
                             "a supported graph operator (supported: both True: gcn; both False: adjacency)")
        return [("lin", conv.lin, op)]
    if isinstance(conv, pyg_nn.GINConv):
        linears = [(p, m) for p, m in conv.nn.named_modules() if _is_linear(m)]
        if not linears:
            raise ValueError("GINConv: its nn has no Linear layer to take coefficients from")
        first = linears[0][1]
        if _first_linear_applied(conv.nn) is not first:
            raise ValueError("GINConv: its nn must apply a Linear first (nn.Sequential or PyG MLP): that Linear holds "
                             "the coefficients of (1+ε)I + A")
        return [(f"nn.{linears[0][0]}" if linears[0][0] else "nn", first, "gin")] + [
            (f"nn.{p}", m, "identity") for p, m in linears[1:]]
    if isinstance(conv, pyg_nn.GraphConv):
        return [("lin_rel", conv.lin_rel, _aggr_operator(conv)), ("lin_root", conv.lin_root, "identity")]
    if isinstance(conv, pyg_nn.SAGEConv):
        parts = []
        if getattr(conv, "project", False):
            parts.append(("lin", conv.lin, "identity"))
        parts.append(("lin_l", conv.lin_l, _aggr_operator(conv)))
        if conv.root_weight:
            parts.append(("lin_r", conv.lin_r, "identity"))
        return parts
    raise TypeError(f"graph_blocks: {name} is not a supported message-passing layer "
                    "(GCNConv, GINConv, GraphConv, SAGEConv)")


def _first_linear_applied(module: nn.Module):
    """The Linear a GIN MLP applies first (``nn.Sequential`` or PyG ``MLP``), else ``None``."""
    if _is_linear(module):
        return module
    if type(module).__name__ == "MLP" and hasattr(module, "lins"):
        return module.lins[0] if len(module.lins) else None
    if isinstance(module, nn.Sequential) and len(module):
        return _first_linear_applied(module[0])
    return None


def is_graph_layer(module) -> bool:
    if not pyg_loaded():
        return False
    import torch_geometric.nn as pyg_nn

    return isinstance(module, (pyg_nn.GCNConv, pyg_nn.GINConv, pyg_nn.GraphConv, pyg_nn.SAGEConv))


def graph_blocks(conv) -> List[GraphBlock]:
    """The blocks of a supported conv (weights first, biases last); see the module docstring."""
    weights, biases = [], []
    for path, linear, op in _parts(conv):
        check_materialised(linear, f"{type(conv).__name__}.{path}")
        eps = float(conv.eps.detach()) if op == "gin" else 0.0
        for block in dense_blocks(linear):
            kind = "constant" if block.is_bias else op
            new = GraphBlock(f"{path}.{block.tensor}", block.index, block.basis, block.out_fields, block.in_fields,
                             block.out_repr, block.in_repr, operator=kind, eps=eps)
            (biases if block.is_bias else weights).append(new)
    bias = getattr(conv, "bias", None)
    if isinstance(bias, nn.Parameter):  # GCNConv's own bias
        out = bias.numel()
        biases.append(GraphBlock("bias", torch.arange(out).view(out, 1, 1), torch.ones(1, 1, 1, dtype=bias.dtype),
                                 tuple(range(out)), (), "trivial", "constant", operator="constant"))
    return weights + biases


def graph_init_std(conv) -> Dict[str, Optional[torch.Tensor]]:
    """Per-coefficient init std of each dotted coefficient tensor: the Linear layers' Kaiming std."""
    std: Dict[str, Optional[torch.Tensor]] = {}
    fan = None
    for path, linear, _ in _parts(conv):
        check_materialised(linear, f"{type(conv).__name__}.{path}")
        for name, value in dense_init_std(linear).items():
            std[f"{path}.{name}"] = value
        fan = linear.weight.shape[1]
    bias = getattr(conv, "bias", None)
    if isinstance(bias, nn.Parameter):
        std["bias"] = torch.full_like(bias, 1.0 / math.sqrt(fan))
    return std


def graph_adapter(module):
    """``(blocks, init_std)`` callables for a PyG conv or lazy PyG Linear, else ``None`` (used by the registry)."""
    pyg_linear = pyg_linear_class()
    if pyg_linear is None:
        return None
    if isinstance(module, pyg_linear) and isinstance(module.weight, nn.parameter.UninitializedParameter):
        def fail():
            check_materialised(module, "equislt.blocks")
        return fail, fail
    if is_graph_layer(module):
        return (lambda: graph_blocks(module)), (lambda: graph_init_std(module))
    return None
