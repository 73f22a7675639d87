r"""``Ticket.compile()`` for constructed tickets: each pruned block folded into target-sized layers.

A pruned block computes ``c (Σ_b Σ_k [α̂⁺_{abk} B_k σ(x_b) + α̂⁻_{abk} B_k σ(−x_b)] + β̂)`` with
``α̂⁺ = Σ_{t: u_t>0} u_t v_{atk}`` and ``α̂⁻ = Σ_{t: u_t<0} |u_t| v_{atk}`` over the kept coefficients, so it
equals ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with two layers of the target's own type and basis (``W⁻`` is dropped
when no negative copy is kept, i.e. the layer input is non-negative).
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from ..basis import blocks
from ..nn import replace_module
from ._build import copy_module
from ._layout import LayerPlan
from .families import family_of

__all__ = ["compile_block", "compile_network"]


def _folded_layer(family, mix, inputs, mix_blocks, v, weight, layout) -> nn.Module:
    """A layer of the mix's type on ``inputs`` whose coefficient ``(a, b, k)`` is ``Σ_t weight[b, t] v[a, copy t
    of b, k]``."""
    layer = family.like(mix, inputs)
    name = family.weight_name(layer)
    coefficients = torch.zeros(getattr(layer, name).numel(), dtype=torch.float64)
    for c_block in blocks(layer):
        if c_block.is_bias:
            continue
        m_block = mix_blocks[(c_block.in_repr, c_block.out_repr)]
        fields = torch.tensor(c_block.in_fields)
        occ = layout.mix_occurrence(m_block, fields)  # [i, W]
        vv = m_block.take(v)[:, occ, :]  # [o, i, W, K]
        c_block.put(coefficients, torch.einsum("oitk,it->oik", vv, weight[fields]))
    with torch.no_grad():
        getattr(layer, name).copy_(coefficients.view_as(getattr(layer, name)))
    return layer.eval()


def compile_block(block) -> nn.Module:
    """The compact form of one pruned block (see the module docstring)."""
    lift, mix, layout = block.lift, block.mix, block.layout
    family = family_of(mix)
    lift_blocks = blocks(lift)
    lift_name = family.weight_name(lift)
    index = layout.identity_indices(lift_blocks)
    coef = lift.coefficient(lift_name).detach().reshape(-1)
    u = torch.where(index >= 0, coef[index.clamp(min=0)].double(), torch.zeros((), dtype=torch.float64))
    mix_name = family.weight_name(mix)
    v = mix.coefficient(mix_name).detach().double()
    mix_blocks = {(b.in_repr, b.out_repr): b for b in blocks(mix) if b.tensor == mix_name}
    inputs = family.inputs(lift)
    layers: List[Optional[nn.Module]] = []
    for weight in (u.clamp(min=0), (-u).clamp(min=0)):  # positive copies read σ(x), negative ones σ(−x)
        keep = bool((weight > 0).any()) or not layers
        layers.append(_folded_layer(family, mix, inputs, mix_blocks, v, weight, layout) if keep else None)
    return family.compiled(layers[0], layers[1], block.bias, float(block.gain))


def compile_network(network: nn.Module, plans: List[LayerPlan]) -> nn.Module:
    """A copy of the pruned random network with every block compiled."""
    compiled = copy_module(network)
    for plan in plans:
        compiled = replace_module(compiled, plan.path, compile_block(compiled.get_submodule(plan.path)))
    return compiled.eval()
