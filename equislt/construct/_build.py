"""Build the random overparametrised network from the target's architecture, a plan and a seed.

The random network is a copy of the target's module tree in which every linear layer is replaced by a
:class:`~equislt.construct._modules.LiftMix` block and every folded batch norm by an identity. All its
coefficients are i.i.d. ``U[-1, 1]``: the same architecture, plan and seed regenerate the same network bit
for bit.

Draws are **prefix-stable per input field**. The hidden fields of a block are "all ``w_0`` copies of input
field 0, then the ``w_1`` copies of field 1, ...". Every coefficient of the lift belongs to one hidden
(output) field and every coefficient of the mix to one hidden (input) field; the ``C_b`` coefficients of
the ``w_b`` copies of input field ``b`` are filled, copy-major, from one stream keyed by (seed, layer path,
``lift``/``mix``, tensor, ``b``) as a ``[w_b, C_b]`` draw. torch's CPU generator gives identical prefixes
for longer draws, so widening field ``b`` only appends values to its own stream and leaves every other
coefficient unchanged. The pooled bias keeps one stream per (seed, path, tensor).
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..basis import blocks, coefficient_names
from ..nn import mask_model, replace_module
from ._families import family_of

__all__ = ["LayerPlan", "build_random_network", "hidden_offsets"]


@dataclass
class LayerPlan:
    """How one target layer is replaced: ``width = 2N`` hidden copies of each input field plus ``extra[b]``
    more copies of the fields ``b`` the tolerance policy widened (only those are stored), a bias pool of
    ``bias_pool`` random values per bias coefficient (0: no bias), the fixed ``gain`` (target scale) and the
    batch norm folded into it (replaced by an identity)."""

    path: str
    width: int
    bias_pool: int
    gain: float
    folded_norm: Optional[str] = None
    extra: Dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        # keys may come back as strings from JSON; keep them sorted for a canonical saved form
        self.extra = {int(b): int(w) for b, w in sorted(self.extra.items(), key=lambda kv: int(kv[0])) if int(w)}

    def width_of(self, b: int) -> int:
        """Hidden copies of input field ``b``."""
        return self.width + self.extra.get(int(b), 0)

    def widths(self, n_fields: int) -> List[int]:
        """Hidden copies of each of the ``n_fields`` input fields."""
        if self.extra and max(self.extra) >= n_fields:
            raise ValueError(f"LayerPlan {self.path}: widened field {max(self.extra)} but the layer has "
                             f"{n_fields} input fields")
        return [self.width_of(b) for b in range(n_fields)]

    def widen(self, fields: Sequence[int], copies: int) -> None:
        """Add ``copies`` hidden copies to each input field in ``fields``."""
        for b in fields:
            self.extra[int(b)] = self.extra.get(int(b), 0) + int(copies)
        self.extra = dict(sorted(self.extra.items()))

    @property
    def width_added(self) -> int:
        """Extra hidden copies over all fields."""
        return sum(self.extra.values())

    def as_dict(self) -> dict:
        return asdict(self)


def hidden_offsets(widths: Sequence[int]) -> List[int]:
    """First hidden field of each input field (``len(widths) + 1`` entries, the last one the total)."""
    out = [0]
    for w in widths:
        out.append(out[-1] + int(w))
    return out


def _copy(target: nn.Module) -> nn.Module:
    # escnn layers in eval mode hold a filter built with autograd on, which deepcopy refuses: copy in train mode
    was_training = target.training
    target.train()
    try:
        return copy.deepcopy(target)
    finally:
        target.train(was_training)


def stream(seed: int, path: str, name: str) -> torch.Generator:
    """The random stream of one coefficient tensor (or, with ``name = "tensor/b"``, of input field ``b``)."""
    return torch.Generator().manual_seed((zlib.crc32(f"{path}/{name}".encode()) << 20) ^ int(seed))


def n_input_fields(family, layer) -> int:
    inputs = family.inputs(layer)
    return len(inputs) if hasattr(inputs, "representations") else int(inputs)


def build_block(target_layer: nn.Module, plan: LayerPlan) -> nn.Module:
    """The random block of one target layer (coefficients not drawn yet: see :func:`draw_block`)."""
    family = family_of(target_layer)
    widths = plan.widths(n_input_fields(family, target_layer))
    lift = family.lift(target_layer, widths)
    relu = family.relu(lift)
    mix = family.mix(target_layer, lift)
    bias = family.pooled_bias(target_layer, plan.bias_pool) if plan.bias_pool else None
    block = family.liftmix(lift, relu, mix, bias, plan.gain)
    block.widths = list(widths)  # hidden copies per input field (plain attribute, not state)
    return block


def block_widths(block: nn.Module) -> List[int]:
    """Hidden copies per input field of a :class:`LiftMix` block."""
    widths = getattr(block, "widths", None)
    if widths is None:
        raise ValueError("construct: this block records no per-field widths (build it with build_block)")
    return list(widths)


def _occurrence(fields, n: int) -> torch.Tensor:
    """``[n]``: position of each field in ``fields`` (``-1`` where absent)."""
    occ = torch.full((n,), -1, dtype=torch.long)
    occ[torch.as_tensor(fields, dtype=torch.long)] = torch.arange(len(fields))
    return occ


def field_positions(layer: nn.Module, name: str, widths: Sequence[int], side: str, layer_blocks=None):
    """Per input field ``b``, the ``[w_b, C_b]`` flat positions in ``layer.<name>`` of the coefficients of its
    hidden copies: hidden fields are the layer's outputs (``side="out"``, the lift) or inputs (``"in"``, the
    mix); row ``t`` is copy ``t``, columns follow :func:`equislt.blocks` order (block, other field, basis)."""
    offsets = hidden_offsets(widths)
    layer_blocks = [b for b in (blocks(layer) if layer_blocks is None else layer_blocks)
                    if b.tensor == name and not b.is_bias]
    occs = [_occurrence(b.out_fields if side == "out" else b.in_fields, offsets[-1]) for b in layer_blocks]
    out = []
    for f, w in enumerate(widths):
        hidden = torch.arange(offsets[f], offsets[f + 1])
        parts = []
        for blk, occ in zip(layer_blocks, occs):
            o = occ[hidden]
            if w == 0 or o[0] < 0:
                continue
            assert bool((o >= 0).all()), "construct: copies of one input field must share a field type"
            # index_select: advanced indexing of a large index tensor costs O(numel) per call
            part = blk.index.index_select(0, o) if side == "out" else blk.index.index_select(1, o).transpose(0, 1)
            parts.append(part.reshape(w, -1))
        out.append(torch.cat(parts, dim=1) if parts else torch.zeros(w, 0, dtype=torch.long))
    return out


def _draw_fields(layer: nn.Module, seed: int, path: str, widths: Sequence[int], side: str) -> None:
    layer_blocks = blocks(layer)  # once: building a large layer's blocks is not free
    for name in dict.fromkeys(b.tensor for b in layer_blocks):
        param = getattr(layer, name)
        flat = param.view(-1)
        filled = 0
        for b, positions in enumerate(field_positions(layer, name, widths, side, layer_blocks)):
            w, c = positions.shape
            values = torch.rand(w * c, generator=stream(seed, path, f"{name}/{b}"), dtype=torch.float64)
            flat.index_copy_(0, positions.reshape(-1), (2 * values - 1).to(param.dtype))
            filled += w * c
        if filled != param.numel():
            raise ValueError(f"construct: {path}.{name}: {param.numel() - filled} coefficients belong to no hidden "
                             "field (a bias on the lift or the mix?)")
        param.requires_grad_(False)


def draw_block(block: nn.Module, seed: int, prefix: str) -> None:
    """Fill every coefficient tensor of ``block`` with ``U[-1, 1]``: the lift and the mix per input field (see
    the module docstring), the pooled bias from one stream per tensor."""
    widths = block_widths(block)
    with torch.no_grad():
        _draw_fields(block.lift, seed, f"{prefix}.lift", widths, "out")
        _draw_fields(block.mix, seed, f"{prefix}.mix", widths, "in")
        if block.bias is not None:
            for name in coefficient_names(block.bias):
                param = getattr(block.bias, name)
                values = torch.rand(param.shape, generator=stream(seed, f"{prefix}.bias", name), dtype=torch.float64)
                param.copy_((2 * values - 1).to(param.dtype))
                param.requires_grad_(False)


def build_random_network(target: nn.Module, plans: List[LayerPlan], seed: int) -> nn.Module:
    """The random network for ``target``'s architecture (its weights are not used), masked all-ones."""
    net = _copy(target)
    for plan in plans:
        block = build_block(net.get_submodule(plan.path), plan)
        draw_block(block, seed, plan.path)
        net = replace_module(net, plan.path, mask_model(block))
        if plan.folded_norm:
            net = replace_module(net, plan.folded_norm, _identity_like(net.get_submodule(plan.folded_norm)))
    for param in net.parameters():
        param.requires_grad_(False)
    return net.eval()


def _identity_like(norm: nn.Module) -> nn.Module:
    if hasattr(norm, "in_type"):
        from ._escnn import EscnnIdentity

        return EscnnIdentity(norm.in_type)
    return nn.Identity()
