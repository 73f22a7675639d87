"""Blocks of escnn layers built on ``BlocksBasisExpansion`` (``R2Conv``, ``R3Conv``, ``escnn.nn.Linear``).

Layout of escnn's flat ``weights`` vector (see escnn ``basisexpansion_blocks.py``): pairs of representation
names sorted alphabetically; inside a pair's range ``[start, stop)`` the index is
``start + (out_occurrence * in_count + in_occurrence) * n_basis + k``.
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from typing import Dict, List, Optional

import torch

from .._compat import import_escnn
from ._block import Block

__all__ = ["is_escnn_layer", "escnn_blocks", "escnn_init_std"]


def _field_positions(field_type) -> Dict[str, List[int]]:
    positions: Dict[str, List[int]] = defaultdict(list)
    for p, rep in enumerate(field_type.representations):
        positions[rep.name].append(p)
    return positions


def is_escnn_layer(module) -> bool:
    """True for escnn layers whose coefficients are expanded by a ``BlocksBasisExpansion``."""
    escnn = import_escnn()
    from escnn.nn.modules.basismanager import BlocksBasisExpansion

    return isinstance(module, escnn.nn.EquivariantModule) and isinstance(
        getattr(module, "_basisexpansion", None), BlocksBasisExpansion
    )


def _kernel_shape(module) -> tuple:
    if hasattr(module, "kernel_size"):
        return (module.kernel_size,) * module.d
    return ()


def escnn_blocks(module) -> List[Block]:
    be = module._basisexpansion
    in_pos, out_pos = _field_positions(module.in_type), _field_positions(module.out_type)
    kernel = _kernel_shape(module)
    blocks: List[Block] = []
    for pair in be._representations_pairs:
        in_name, out_name = pair
        start, stop = be._weights_ranges[pair]
        expansion = getattr(be, f"block_expansion_{be._escape_pair(pair)}")
        sampled = expansion.sampled_basis  # [n_basis, out_dim, in_dim, S]
        basis = sampled.reshape(*sampled.shape[:3], *kernel) if kernel else sampled[..., 0]
        n_out, n_in = be._out_count[out_name], be._in_count[in_name]
        index = torch.arange(start, stop).view(n_out, n_in, sampled.shape[0])
        blocks.append(
            Block("weights", index, basis, tuple(out_pos[out_name]), tuple(in_pos[in_name]), out_name, in_name)
        )
    blocks.extend(_bias_blocks(module, out_pos))
    return blocks


def _bias_blocks(module, out_pos) -> List[Block]:
    if getattr(module, "bias", None) is None:
        return []
    expansion = module.bias_expansion  # [out.size, n_trivial]
    # escnn numbers the trivial irreps of the output in field order
    first, offset = [], 0
    for rep in module.out_type.representations:
        first.append(offset)
        offset += sum(1 for irr in rep.irreps if module.out_type.fibergroup.irrep(*irr).is_trivial())
    blocks = []
    for name, positions in sorted(out_pos.items()):
        rep = module.out_type.representations[positions[0]]
        n_trivial = sum(1 for irr in rep.irreps if module.out_type.fibergroup.irrep(*irr).is_trivial())
        if n_trivial == 0:
            continue
        index = torch.stack([torch.arange(first[p], first[p] + n_trivial) for p in positions]).unsqueeze(1)
        p0 = positions[0]
        c0 = int(module.out_type.fields_start[p0])
        cols = expansion[c0 : c0 + rep.size, first[p0] : first[p0] + n_trivial]  # [dim, n_trivial]
        basis = cols.T.reshape(n_trivial, rep.size, 1).clone()
        blocks.append(Block("bias", index, basis, tuple(positions), (), name, "constant"))
    return blocks


# keyed by the basis expansion itself, weakly: an entry lives as long as its basis (masked copies share it), so
# the cache is bounded by the live layers and a freed basis can never answer for a new one
_HE_STD_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def escnn_init_std(module) -> Dict[str, Optional[torch.Tensor]]:
    """Per-coefficient standard deviation of escnn's generalized He init (it varies inside one layer).

    The bias gets ``1/sqrt(fan_in)`` with ``fan_in = in_type.size · kernel volume`` (torch's convention).
    """
    import_escnn()
    from escnn.nn.init import _generalized_he_init_variances

    be = module._basisexpansion
    if be not in _HE_STD_CACHE:
        _HE_STD_CACHE[be] = _generalized_he_init_variances(be)
    std = {"weights": _HE_STD_CACHE[be].clone()}
    if getattr(module, "bias", None) is not None:
        fan_in = module.in_type.size
        for k in _kernel_shape(module):
            fan_in *= k
        std["bias"] = torch.full_like(module.bias, fan_in**-0.5)
    return std
