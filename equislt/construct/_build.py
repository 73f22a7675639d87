"""The random overparametrised network: the target's module tree with every linear layer replaced by a random
lift–mix block (:class:`~equislt.construct.LiftMix`, drawn from the seed) and every folded batch norm by an
identity. The target's weights are not used: the same architecture, plans and seed give the same network.

The construction never builds it (it draws, solves and masks the coefficients through :class:`LayerBlocks`);
it is built on request (``Ticket.network``), e.g. to check the compact form against it on small models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from torch import nn

from ..basis import blocks
from ..nn import clone_module, mask_model, replace_module
from ._draw import draw_block
from ._layout import HiddenLayout, LayerPlan, WideTensor, lift_identities
from .families import Family, family_of

__all__ = ["LayerBlocks", "build_random_network", "random_block", "replace_layers"]


@dataclass
class LayerBlocks:
    """What the random block of one target layer is made from: the weight blocks of a lift with one copy per
    input field, and the target layer's own weight blocks (the mix's, with one copy per input field).
    :meth:`tensors` gives the block's wide lift and mix for a hidden layout, without building them."""

    family: Family
    n_fields: int
    lift_name: str
    lift_blocks: list
    lift_shape: Tuple[int, ...]
    identities: list
    mix_name: str
    mix_blocks: list
    mix_shape: Tuple[int, ...]

    @classmethod
    def of(cls, layer: nn.Module, family: Optional[Family] = None) -> "LayerBlocks":
        family = family_of(layer) if family is None else family
        n_fields = family.n_input_fields(layer)
        small = family.lift(layer, [1] * n_fields)
        lift_name = family.weight_name(small)
        lift_blocks = [b for b in blocks(small) if b.tensor == lift_name and not b.is_bias]
        mix_name = family.weight_name(layer)
        mix_blocks = [b for b in blocks(layer) if b.tensor == mix_name and not b.is_bias]
        return cls(family, n_fields, lift_name, lift_blocks, tuple(getattr(small, lift_name).shape),
                   lift_identities(lift_blocks), mix_name, mix_blocks, tuple(getattr(layer, mix_name).shape))

    def tensors(self, layout: HiddenLayout) -> Tuple[WideTensor, WideTensor]:
        """``(lift, mix)``: the wide weight tensors of the block for ``layout``."""
        lift = WideTensor.scaled(self.lift_name, "out", self.lift_blocks, self.lift_shape, layout, self.identities)
        mix = WideTensor.scaled(self.mix_name, "in", self.mix_blocks, self.mix_shape, layout)
        return lift, mix


def random_block(target_layer: nn.Module, plan: LayerPlan, seed: int) -> nn.Module:
    """The masked (all-ones) random block of one target layer, its coefficients drawn from ``seed``."""
    family = family_of(target_layer)
    layout = plan.layout(family.n_input_fields(target_layer))
    lift = family.lift(target_layer, layout.widths)
    relu = family.relu(lift)
    mix = family.mix(target_layer, lift)
    bias = family.pooled_bias(target_layer, plan.bias_pool) if plan.bias_pool else None
    block = family.liftmix(lift, relu, mix, bias, plan.gain, layout)
    draw_block(block, *LayerBlocks.of(target_layer, family).tensors(layout), seed, plan.path)
    return mask_model(block)


def replace_layers(target: nn.Module, plans: List[LayerPlan],
                   block_for: Callable[[nn.Module, LayerPlan], nn.Module]) -> nn.Module:
    """A copy of ``target`` with each planned layer replaced by ``block_for(layer, plan)`` and each folded batch
    norm by an identity, in eval mode, every parameter frozen (the target itself is not changed)."""
    net = clone_module(target)
    for plan in plans:
        layer = net.get_submodule(plan.path)
        net = replace_module(net, plan.path, block_for(layer, plan))
        if plan.folded_norm:
            identity = family_of(layer).folded_norm_identity(net.get_submodule(plan.folded_norm))
            net = replace_module(net, plan.folded_norm, identity)
    for param in net.parameters():
        param.requires_grad_(False)
    return net.eval()


def build_random_network(target: nn.Module, plans: List[LayerPlan], seed: int) -> nn.Module:
    """The random network for ``target``'s architecture (see the module docstring), masked all-ones."""
    return replace_layers(target, plans, lambda layer, plan: random_block(layer, plan, seed))
