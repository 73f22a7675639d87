"""PyG ``torch_geometric.nn.Linear`` targets: the coefficient layers of PyG MLPs and message-passing convs.

A dense channel map applied per node; lift and mix are torch ``nn.Linear`` (the parameter-free message passing
around it is glue that the trace follows). Imported once torch_geometric is in use.
"""
from __future__ import annotations

from torch import nn
from torch_geometric.nn.dense.linear import Linear

from ..._compat import check_materialised
from ._torch import TorchFamily

__all__ = ["PyGLinearFamily"]


class PyGLinearFamily(TorchFamily):
    layer_types = (Linear,)

    def check(self, layer):
        check_materialised(layer, "construct")

    def lift(self, layer, widths):
        if len(widths) != layer.in_channels:
            raise ValueError(f"construct: {len(widths)} widths for {layer.in_channels} input channels")
        return nn.utils.skip_init(nn.Linear, layer.in_channels, int(sum(widths)), bias=False)

    def like(self, layer, inputs):
        return nn.utils.skip_init(nn.Linear, int(inputs), layer.out_channels, bias=False)
