"""The random coefficients of a block: i.i.d. ``U[-1, 1]``, drawn from per-field, prefix-stable streams.

Every coefficient of the lift belongs to one hidden (output) field and every coefficient of the mix to one
hidden (input) field (:class:`~equislt.construct.HiddenLayout`). The ``C_b`` coefficients of the ``w_b`` copies
of input field ``b`` are filled, copy-major, from one stream keyed by (seed, layer path, ``lift``/``mix``,
tensor, ``b``) as a ``[w_b, C_b]`` draw. torch's CPU generator gives identical prefixes for longer draws, so
widening field ``b`` only appends values to its own stream and leaves every other coefficient unchanged. The
pooled bias keeps one stream per (seed, path, tensor). The same architecture, plan and seed therefore
regenerate the same network bit for bit.
"""
from __future__ import annotations

import torch
from torch import nn

from ..basis import blocks, coefficient_names
from ..nn import random_stream
from ._layout import HiddenLayout

__all__ = ["draw_block"]


def _uniform(count, seed: int, path: str, purpose: str) -> torch.Tensor:
    values = torch.rand(count, generator=random_stream(seed, path, purpose, derivation="construct"),
                        dtype=torch.float64)
    return 2 * values - 1


def _draw_fields(layer: nn.Module, seed: int, path: str, layout: HiddenLayout, side: str) -> None:
    layer_blocks = blocks(layer)  # once: building a large layer's blocks is not free
    for name in dict.fromkeys(b.tensor for b in layer_blocks):
        param = getattr(layer, name)
        flat = param.view(-1)
        filled = 0
        tensor_blocks = [b for b in layer_blocks if b.tensor == name and not b.is_bias]
        for b, positions in enumerate(layout.field_positions(tensor_blocks, side)):
            w, c = positions.shape
            flat.index_copy_(0, positions.reshape(-1), _uniform(w * c, seed, path, f"{name}/{b}").to(param.dtype))
            filled += w * c
        if filled != param.numel():
            raise ValueError(f"construct: {path}.{name}: {param.numel() - filled} coefficients belong to no hidden "
                             "field (a bias on the lift or the mix?)")
        param.requires_grad_(False)


def draw_block(block: nn.Module, seed: int, path: str) -> None:
    """Fill every coefficient tensor of the block at ``path`` with ``U[-1, 1]`` (see the module docstring)."""
    with torch.no_grad():
        _draw_fields(block.lift, seed, f"{path}.lift", block.layout, "out")
        _draw_fields(block.mix, seed, f"{path}.mix", block.layout, "in")
        if block.bias is not None:
            for name in coefficient_names(block.bias):
                param = getattr(block.bias, name)
                param.copy_(_uniform(param.shape, seed, f"{path}.bias", name).to(param.dtype))
                param.requires_grad_(False)
