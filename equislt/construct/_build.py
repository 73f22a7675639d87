"""Build the random overparametrised network from the target's architecture, a plan and a seed.

The random network is a copy of the target's module tree in which every linear layer is replaced by a
:class:`~equislt.construct._modules.LiftMix` block and every folded batch norm by an identity. All its
coefficients are i.i.d. ``U[-1, 1]``, drawn from one stream per (seed, layer path, tensor): the same
architecture, plan and seed regenerate the same network bit for bit.
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import asdict, dataclass
from typing import List, Optional

import torch
from torch import nn

from ..basis import coefficient_names
from ..nn import coefficient_layers, mask_model
from ._families import family_of
from ._modules import PooledBias

__all__ = ["LayerPlan", "build_random_network"]


@dataclass
class LayerPlan:
    """How one target layer is replaced: ``width = 2N`` hidden copies of each input field, a bias pool of
    ``bias_pool`` random values per bias coefficient (0: no bias), the fixed ``gain`` (target scale) and the
    batch norm folded into it (replaced by an identity)."""

    path: str
    width: int
    bias_pool: int
    gain: float
    folded_norm: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


def _copy(target: nn.Module) -> nn.Module:
    # escnn layers in eval mode hold a filter built with autograd on, which deepcopy refuses: copy in train mode
    was_training = target.training
    target.train()
    try:
        return copy.deepcopy(target)
    finally:
        target.train(was_training)


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def stream(seed: int, path: str, name: str) -> torch.Generator:
    """The random stream of one coefficient tensor."""
    return torch.Generator().manual_seed((zlib.crc32(f"{path}/{name}".encode()) << 20) ^ int(seed))


def build_block(target_layer: nn.Module, plan: LayerPlan) -> nn.Module:
    family = family_of(target_layer)
    lift = family.lift(target_layer, plan.width)
    relu = family.relu(lift)
    mix = family.mix(target_layer, lift)
    bias = None
    if plan.bias_pool:
        expansion = family.bias_expansion(target_layer)
        bias = PooledBias(expansion, plan.bias_pool) if expansion.shape[1] else None
    return family.liftmix(lift, relu, mix, bias, plan.gain)


def draw_block(block: nn.Module, seed: int, prefix: str) -> None:
    """Fill every coefficient tensor of ``block`` with ``U[-1, 1]`` from its own stream."""
    with torch.no_grad():
        for path, layer in coefficient_layers(block):
            full = f"{prefix}.{path}" if path else prefix
            for name in coefficient_names(layer):
                param = getattr(layer, name)
                values = torch.rand(param.shape, generator=stream(seed, full, name), dtype=torch.float64)
                param.copy_((2 * values - 1).to(param.dtype))
                param.requires_grad_(False)


def build_random_network(target: nn.Module, plans: List[LayerPlan], seed: int) -> nn.Module:
    """The random network for ``target``'s architecture (its weights are not used), masked all-ones."""
    net = _copy(target)
    for plan in plans:
        block = build_block(net.get_submodule(plan.path), plan)
        draw_block(block, seed, plan.path)
        _replace(net, plan.path, mask_model(block))
        if plan.folded_norm:
            _replace(net, plan.folded_norm, _identity_like(net.get_submodule(plan.folded_norm)))
    for param in net.parameters():
        param.requires_grad_(False)
    return net.eval()


def _identity_like(norm: nn.Module) -> nn.Module:
    if hasattr(norm, "in_type"):
        from ._escnn import EscnnIdentity

        return EscnnIdentity(norm.in_type)
    return nn.Identity()
