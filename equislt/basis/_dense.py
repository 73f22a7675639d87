"""Blocks of plain torch layers: the trivial group, whose basis is matrix units ⊗ kernel offsets.

``nn.Linear``: one block ``[out, in, 1]``. ``nn.ConvNd``: one block ``[out, in / groups, prod(kernel)]``
whose basis element ``k`` is the indicator of kernel offset ``k`` (translation equivariance).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
from torch import nn

from .._compat import pyg_linear_class
from ._block import Block

__all__ = ["DENSE_TYPES", "is_dense_layer", "dense_blocks", "dense_init_std"]

DENSE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_dense_layer(module) -> bool:
    pyg_linear = pyg_linear_class()
    return isinstance(module, DENSE_TYPES + ((pyg_linear,) if pyg_linear is not None else ()))


def dense_blocks(module) -> List[Block]:
    weight = module.weight
    out_ch, in_ch = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    volume = math.prod(kernel)
    basis = torch.eye(volume, dtype=weight.dtype).reshape(volume, 1, 1, *kernel)
    blocks = [
        Block("weight", torch.arange(weight.numel()).view(out_ch, in_ch, volume), basis,
              tuple(range(out_ch)), tuple(range(in_ch)), "trivial", "trivial")
    ]
    if getattr(module, "bias", None) is not None:
        blocks.append(Block("bias", torch.arange(out_ch).view(out_ch, 1, 1), torch.ones(1, 1, 1, dtype=weight.dtype),
                            tuple(range(out_ch)), (), "trivial", "constant"))
    return blocks


def dense_init_std(module) -> Dict[str, Optional[torch.Tensor]]:
    """Kaiming-normal std ``sqrt(2 / fan_in)`` for weights, ``1/sqrt(fan_in)`` for biases."""
    weight = module.weight
    fan_in = weight[0].numel()
    std = {"weight": torch.full_like(weight, math.sqrt(2.0 / fan_in))}
    if getattr(module, "bias", None) is not None:
        std["bias"] = torch.full_like(module.bias, 1.0 / math.sqrt(fan_in))
    return std
