r"""The compact form of a constructed ticket: each pruned block folded into target-sized layers.

A pruned block computes ``c (Σ_b Σ_k [α̂⁺_{abk} B_k σ(x_b) + α̂⁻_{abk} B_k σ(−x_b)] + β̂)`` with
``α̂⁺_{abk} = Σ_{t: u_t>0} u_t v_{atk}`` and ``α̂⁻_{abk} = Σ_{t: u_t<0} |u_t| v_{atk}`` over the kept copies ``t``
of field ``b`` and the kept mix coefficients, so it equals ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with two layers of
the target's own type and basis (``W⁻`` is dropped when no negative copy is kept, i.e. the layer input is
non-negative). This is how a ticket runs: at the target's size, computed from the seed and the masks one input
field at a time, without building the random network; it equals the literal pruned network to float rounding.

A block whose lift keeps more than the identity coefficients (a neuron subnetwork, ``method="malach_neurons"``:
whole hidden fields with their dense random lift) has no such form; it runs as the literal pruned block.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ..nn import load_masks
from ._build import LayerBlocks, random_block, replace_layers
from ._draw import bias_draw, field_draw
from ._layout import LayerPlan
from ._solve import put_field_values, same_type_groups
from .families import family_of

__all__ = ["compact_block", "compact_network"]

Masks = Dict[str, Dict[str, torch.Tensor]]


def _folded_coefficients(blocks: LayerBlocks, plan: LayerPlan, seed: int, masks: Masks):
    """``(W⁺, W⁻)`` in the layout of the target's weight tensor (float64), and whether a negative copy is kept."""
    lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
    lift_mask = masks[f"{plan.path}.lift"][lift.name].reshape(-1)
    mix_mask = masks[f"{plan.path}.mix"][mix.name].reshape(-1)
    reference = torch.zeros(blocks.mix_shape, dtype=torch.float64)
    folded = {"pos": reference.clone(), "neg": reference.clone()}
    negative = False
    for group in same_type_groups(range(blocks.n_fields), mix):
        sums = {"pos": [], "neg": []}
        for b in group:
            column, positions = lift.identity(b)
            u = field_draw(lift, b, seed, f"{plan.path}.lift")[:, column].double() * lift_mask[positions]
            v = field_draw(mix, b, seed, f"{plan.path}.mix").double() * mix_mask[mix.field_positions(b)]
            negative = negative or bool((u < 0).any())
            sums["pos"].append((u.clamp(min=0)[:, None] * v).sum(dim=0))
            sums["neg"].append(((-u).clamp(min=0)[:, None] * v).sum(dim=0))
        for half in ("pos", "neg"):
            put_field_values(group, mix, blocks.mix_blocks, folded[half], torch.stack(sums[half]))
    return folded["pos"], folded["neg"], negative


def _layer_with(family, layer: nn.Module, coefficients: torch.Tensor) -> nn.Module:
    out = family.like(layer, family.inputs(layer))
    name = family.weight_name(out)
    with torch.no_grad():
        getattr(out, name).copy_(coefficients.view_as(getattr(out, name)))
    return out.eval()


def _pooled_bias(family, layer: nn.Module, plan: LayerPlan, seed: int, masks: Masks) -> Optional[nn.Module]:
    """The block's pooled bias with the unkept pool entries zeroed (``vector()`` is then ``β̂``)."""
    if not plan.bias_pool:
        return None
    bias = family.pooled_bias(layer, plan.bias_pool)
    with torch.no_grad():
        values = bias_draw(bias.bias.shape, seed, plan.path)
        bias.bias.copy_(values * masks[f"{plan.path}.bias"]["bias"].to(values.dtype))
    bias.bias.requires_grad_(False)
    return bias


def _identity_lift(blocks: LayerBlocks, plan: LayerPlan, masks: Masks) -> bool:
    """The block's lift keeps only identity coefficients (one per hidden copy)."""
    lift, _ = blocks.tensors(plan.layout(blocks.n_fields))
    kept = masks[f"{plan.path}.lift"][lift.name].reshape(-1).clone()
    for b in range(blocks.n_fields):
        kept[lift.identity(b)[1]] = False
    return not bool(kept.any())


def compact_block(layer: nn.Module, plan: LayerPlan, seed: int, masks: Masks) -> nn.Module:
    """The compact form of the pruned block that replaces ``layer`` (see the module docstring)."""
    family = family_of(layer)
    blocks = LayerBlocks.of(layer, family)
    if not _identity_lift(blocks, plan, masks):
        own = {path[len(plan.path) + 1:]: named for path, named in masks.items() if path.startswith(plan.path + ".")}
        return load_masks(random_block(layer, plan, seed), own).eval()
    pos, neg, negative = _folded_coefficients(blocks, plan, seed, masks)
    neg_layer = _layer_with(family, layer, neg) if negative else None
    return family.compiled(_layer_with(family, layer, pos), neg_layer,
                           _pooled_bias(family, layer, plan, seed, masks), float(plan.gain))


def compact_network(target: nn.Module, plans: List[LayerPlan], seed: int, masks: Masks) -> nn.Module:
    """The target's module tree with every replaced layer in its compact form and every folded batch norm an
    identity (the target's weights are not used), in eval mode, every parameter frozen."""
    return replace_layers(target, plans, lambda layer, plan: compact_block(layer, plan, seed, masks))
