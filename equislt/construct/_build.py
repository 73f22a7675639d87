"""The random overparametrised network: the target's module tree with every linear layer replaced by a random
lift–mix block (:class:`~equislt.construct.LiftMix`, drawn from the seed) and every folded batch norm by an
identity. The target's weights are not used: the same architecture, plans and seed give the same network."""
from __future__ import annotations

import copy
from typing import List

from torch import nn

from ..nn import mask_model, replace_module
from ._draw import draw_block
from ._layout import LayerPlan
from .families import family_of

__all__ = ["build_random_network", "copy_module", "random_block"]


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy, in train mode (escnn layers in eval mode hold a filter built with autograd on, which deepcopy
    refuses; ``module`` is returned to its mode)."""
    was_training = module.training
    module.train()
    try:
        return copy.deepcopy(module)
    finally:
        module.train(was_training)


def random_block(target_layer: nn.Module, plan: LayerPlan, seed: int) -> nn.Module:
    """The masked (all-ones) random block of one target layer, its coefficients drawn from ``seed``."""
    family = family_of(target_layer)
    layout = plan.layout(family.n_input_fields(target_layer))
    lift = family.lift(target_layer, layout.widths)
    relu = family.relu(lift)
    mix = family.mix(target_layer, lift)
    bias = family.pooled_bias(target_layer, plan.bias_pool) if plan.bias_pool else None
    block = family.liftmix(lift, relu, mix, bias, plan.gain, layout)
    draw_block(block, seed, plan.path)
    return mask_model(block)


def build_random_network(target: nn.Module, plans: List[LayerPlan], seed: int) -> nn.Module:
    """The random network for ``target``'s architecture (see the module docstring), masked all-ones, in eval
    mode, every parameter frozen."""
    net = copy_module(target)
    for plan in plans:
        layer = net.get_submodule(plan.path)
        net = replace_module(net, plan.path, random_block(layer, plan, seed))
        if plan.folded_norm:
            identity = family_of(layer).folded_norm_identity(net.get_submodule(plan.folded_norm))
            net = replace_module(net, plan.folded_norm, identity)
    for param in net.parameters():
        param.requires_grad_(False)
    return net.eval()
