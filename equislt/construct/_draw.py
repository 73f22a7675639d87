"""The random coefficients of a block: i.i.d. ``U[-1, 1]``, drawn from per-field, prefix-stable streams.

Every coefficient of the lift belongs to one hidden (output) field and every coefficient of the mix to one
hidden (input) field (:class:`~equislt.construct.WideTensor`). The ``C_b`` coefficients of the ``w_b`` copies
of input field ``b`` are filled, copy-major, from one stream keyed by (seed, layer path, ``lift``/``mix``,
tensor, ``b``) as a ``[w_b, C_b]`` draw. torch's CPU generator gives identical prefixes for longer draws, so
widening field ``b`` only appends values to its own stream and leaves every other coefficient unchanged. The
pooled bias keeps one stream per (seed, path, tensor). The same architecture, plan and seed therefore
regenerate the same network bit for bit, and the construction can draw one field at a time without building it.
"""
from __future__ import annotations

import torch
from torch import nn

from ..basis import coefficient_names
from ..nn import random_stream
from ._layout import WideTensor

__all__ = ["bias_draw", "draw_block", "field_draw"]


def _uniform(count, seed: int, path: str, purpose: str) -> torch.Tensor:
    values = torch.rand(count, generator=random_stream(seed, path, purpose, derivation="construct"),
                        dtype=torch.float64)
    return 2 * values - 1


def field_draw(tensor: WideTensor, b: int, seed: int, path: str) -> torch.Tensor:
    """``[w_b, C_b]`` float32: the coefficients of input field ``b``'s copies in ``tensor`` of the block at ``path``
    (``path`` ends in ``.lift`` or ``.mix``)."""
    w, c = int(tensor.layout.widths[b]), tensor.columns[b]
    return _uniform(w * c, seed, path, f"{tensor.name}/{b}").to(torch.float32).view(w, c)


def bias_draw(shape, seed: int, path: str, name: str = "bias") -> torch.Tensor:
    """``[n_bias, pool]`` float32: the pooled bias values of the block at ``path``."""
    return _uniform(tuple(shape), seed, f"{path}.bias", name).to(torch.float32)


def _fill(layer: nn.Module, tensor: WideTensor, seed: int, path: str) -> None:
    param = getattr(layer, tensor.name)
    if param.numel() != tensor.numel:
        raise ValueError(f"construct: {path}.{tensor.name} has {param.numel()} coefficients, its layout {tensor.numel}")
    flat = param.view(-1)
    for b in range(tensor.layout.n_fields):
        flat.index_copy_(0, tensor.field_positions(b).reshape(-1), field_draw(tensor, b, seed, path).reshape(-1))
    param.requires_grad_(False)


def draw_block(block: nn.Module, lift: WideTensor, mix: WideTensor, seed: int, path: str) -> None:
    """Fill every coefficient tensor of the block at ``path`` (its lift and mix laid out as ``lift`` and ``mix``)
    with ``U[-1, 1]`` (see the module docstring)."""
    with torch.no_grad():
        _fill(block.lift, lift, seed, f"{path}.lift")
        _fill(block.mix, mix, seed, f"{path}.mix")
        if block.bias is not None:
            for name in coefficient_names(block.bias):
                param = getattr(block.bias, name)
                param.copy_(bias_draw(param.shape, seed, path, name).to(param.dtype))
                param.requires_grad_(False)
