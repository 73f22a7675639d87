"""``blocks(module)``: dispatch a layer to the adapter that knows its basis."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from .._compat import escnn_loaded, pyg_loaded
from ._block import Block
from ._dense import dense_blocks, dense_init_std, is_dense_layer

__all__ = ["blocks", "init_std", "is_coefficient_layer", "coefficient_names"]


def _adapter(module: nn.Module):
    if hasattr(module, "coefficient_blocks"):  # equislt's own layers describe themselves
        return module.coefficient_blocks, module.coefficient_init_std
    if pyg_loaded():  # PyG convs (graph operators) and lazy PyG Linear (clear error)
        from ._graph import graph_adapter

        adapter = graph_adapter(module)
        if adapter is not None:
            return adapter
    if escnn_loaded():
        from ._escnn import escnn_blocks, escnn_init_std, is_escnn_layer

        if is_escnn_layer(module):
            return (lambda: escnn_blocks(module)), (lambda: escnn_init_std(module))
    if is_dense_layer(module):
        return (lambda: dense_blocks(module)), (lambda: dense_init_std(module))
    return None


def is_coefficient_layer(module: nn.Module) -> bool:
    """True if :func:`blocks` knows the layer's basis."""
    return _adapter(module) is not None


def blocks(module: nn.Module) -> List[Block]:
    """The coefficient blocks ``θ[out_fields, in_fields, n_basis]`` of one layer (bias blocks last).

    Supported: escnn ``R2Conv``/``R3Conv``/``Linear``, torch ``Linear``/``Conv1d/2d/3d``, PyG ``Linear``, PyG
    ``GCNConv``/``GINConv``/``GraphConv``/``SAGEConv`` (graph-operator blocks, see :mod:`equislt.basis._graph`)
    and equislt's own layers (e.g. :class:`~equislt.nn.OrbitLinear`, :class:`~equislt.nn.IGNLinear`).
    """
    adapter = _adapter(module)
    if adapter is None:
        raise TypeError(
            f"equislt.blocks: {type(module).__name__} has no coefficient basis adapter (supported: escnn R2Conv, "
            "R3Conv, Linear; torch Linear, Conv1d/2d/3d; PyG Linear, GCNConv, GINConv, GraphConv, SAGEConv; equislt "
            "layers)"
        )
    return adapter[0]()


def coefficient_names(module: nn.Module) -> List[str]:
    """Names of the coefficient tensors of a layer, e.g. ``["weights", "bias"]``."""
    names: List[str] = []
    for block in blocks(module):
        if block.tensor not in names:
            names.append(block.tensor)
    return names


def init_std(module: nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """Per-coefficient init standard deviation of each coefficient tensor (the family's He-style init)."""
    adapter = _adapter(module)
    if adapter is None:
        raise TypeError(f"equislt.init_std: {type(module).__name__} has no coefficient basis adapter")
    return adapter[1]()
