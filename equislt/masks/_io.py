"""Masks on their own: bit-packed, counted, digested, saved and loaded without the network's weights.

A mask set is ``{layer path: {coefficient tensor name: bool mask}}`` (what :func:`equislt.nn.masks_of` returns).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict

import numpy as np
import torch

__all__ = ["MaskCounts", "count_masks", "mask_digest", "pack", "pack_all", "unpack", "unpack_all"]

MaskSet = Dict[str, Dict[str, torch.Tensor]]


def pack(mask: torch.Tensor) -> dict:
    """A bool mask as ``{"shape", "bits"}`` with 1 bit per coefficient (``numpy.packbits``)."""
    flat = mask.detach().to(torch.bool).reshape(-1).cpu().numpy()
    return {"shape": tuple(mask.shape), "bits": torch.from_numpy(np.packbits(flat))}


def unpack(packed: dict) -> torch.Tensor:
    shape = tuple(packed["shape"])
    count = int(np.prod(shape)) if shape else 1
    bits = np.unpackbits(packed["bits"].numpy(), count=count).astype(bool)
    return torch.from_numpy(bits).view(shape)


def pack_all(masks: MaskSet) -> Dict[str, Dict[str, dict]]:
    """:func:`pack` every mask of a mask set."""
    return {path: {name: pack(m) for name, m in named.items()} for path, named in masks.items()}


def unpack_all(packed: Dict[str, Dict[str, dict]]) -> MaskSet:
    """Inverse of :func:`pack_all`."""
    return {path: {name: unpack(p) for name, p in named.items()} for path, named in packed.items()}


@dataclass(frozen=True)
class MaskCounts:
    """Coefficients kept and in all, over a mask set; ``sparsity`` is the fraction pruned."""

    kept: int
    total: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / max(self.total, 1)


def count_masks(masks: MaskSet) -> MaskCounts:
    """How many coefficients a mask set keeps, out of how many."""
    flat = [m for named in masks.values() for m in named.values()]
    return MaskCounts(kept=sum(int(m.sum()) for m in flat), total=sum(m.numel() for m in flat))


def mask_digest(masks: MaskSet) -> str:
    """SHA-256 of a mask set (layer path, tensor name, shape, bits) in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(masks):
        for name in sorted(masks[path]):
            m = masks[path][name].to(torch.bool).contiguous()
            digest.update(f"{path}/{name}/{tuple(m.shape)}".encode())
            digest.update(m.numpy().tobytes())
    return digest.hexdigest()
