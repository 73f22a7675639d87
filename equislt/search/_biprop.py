"""Biprop (Diffenderfer & Kailkhura 2021, "multi-prize tickets"): kept coefficients become ``±α``.

With biprop a kept coefficient ``θ`` is replaced by ``sign(θ) · s · α`` where ``s`` is its init std (escnn's
init scale varies inside a layer; for torch layers ``s`` is constant per tensor and this is exactly biprop) and
``α = mean(|θ| / s)`` over the kept coefficients of the tensor: one learned-free scale per tensor, set by the
mask. The gradient reaching the scores is edge-popup's straight-through one, ``∂L/∂w ⊙ θ``; it equals
biprop's ``g · |w|`` rule for the binary weight (``g = ∂L/∂(α m)``). A mask on coefficients keeps ``W`` in
``Hom_G``, and so does a rescaling of kept coefficients: biprop tickets are exactly equivariant.

A biprop ticket is still seed + masks: ``α`` is a function of the regenerated coefficients and the mask, so
:func:`bake_biprop` recomputes the binarised coefficients after loading (and before export).
"""
from __future__ import annotations

import torch
from torch import nn

from ..basis import init_std
from ..masks import Supermask, straight_through_topk
from ..nn import MaskedLayer, coefficient_layers

__all__ = ["BipropSupermask", "enable_biprop", "bake_biprop", "binarised"]


def binarised(coefficients: torch.Tensor, std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sign(θ) · s · α · m`` with ``α = mean(|θ| / s)`` over the kept entries (``mask`` 0/1, same shape)."""
    kept = mask.sum().clamp(min=1)
    alpha = ((coefficients.abs() / std) * mask).sum() / kept
    return torch.sign(coefficients) * std * alpha * mask


class BipropSupermask(Supermask):
    """A :class:`~equislt.masks.Supermask` whose kept coefficients are binarised to ``sign(θ) · s · α``."""

    def apply(self, name: str, coefficients: torch.Tensor) -> torch.Tensor:
        mask = straight_through_topk(self.scores(name).abs(), self.keep(name))
        std = getattr(self, f"{name}_std").to(coefficients.dtype)
        value = binarised(coefficients.detach(), std, mask.detach())
        # forward: the binarised value; backward: straight through, as edge-popup (grad ⊙ θ to the scores)
        return coefficients * mask + (value - coefficients * mask).detach()


def _stds(layer: nn.Module):
    return {n: s for n, s in init_std(layer).items() if s is not None}


def enable_biprop(model: nn.Module) -> nn.Module:
    """Turn every :class:`~equislt.masks.Supermask` of ``model`` into a :class:`BipropSupermask` (in place; the
    scores, keep counts and state_dict keys are unchanged)."""
    for _, layer in coefficient_layers(model):
        if isinstance(layer, MaskedLayer) and type(layer.mask) is Supermask:
            stds = _stds(layer)
            layer.mask.__class__ = BipropSupermask
            for name in layer.mask.names:
                std = stds[name].to(layer.mask.scores(name).dtype).expand_as(layer.mask.scores(name)).clone()
                layer.mask.register_buffer(f"{name}_std", std, persistent=False)
    return model


@torch.no_grad()
def bake_biprop(model: nn.Module) -> nn.Module:
    """Write the binarised coefficients into every masked layer whose mask is fixed (after
    :func:`~equislt.nn.load_masks` / :func:`~equislt.nn.freeze`), so the layer, :func:`~equislt.nn.fold` and
    :func:`~equislt.nn.export` compute the biprop ticket."""
    for _, layer in coefficient_layers(model):
        if isinstance(layer, MaskedLayer) and not isinstance(layer.mask, Supermask):
            stds = _stds(layer)
            for name in layer.mask.names:
                param = getattr(layer, name)
                mask = layer.mask.mask(name).to(param.dtype)
                param.copy_(binarised(param, stds[name].to(param.dtype).expand_as(param), mask))
    return model
