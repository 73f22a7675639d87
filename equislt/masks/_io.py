"""Masks on their own: bit-packed, saved and loaded without the network's weights."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

__all__ = ["pack", "unpack"]


def pack(mask: torch.Tensor) -> dict:
    """A bool mask as ``{"shape", "bits"}`` with 1 bit per coefficient (``numpy.packbits``)."""
    flat = mask.detach().to(torch.bool).reshape(-1).cpu().numpy()
    return {"shape": tuple(mask.shape), "bits": torch.from_numpy(np.packbits(flat))}


def unpack(packed: dict) -> torch.Tensor:
    shape = tuple(packed["shape"])
    count = int(np.prod(shape)) if shape else 1
    bits = np.unpackbits(packed["bits"].numpy(), count=count).astype(bool)
    return torch.from_numpy(bits).view(shape)


def pack_all(masks: Dict[str, Dict[str, torch.Tensor]]) -> Dict[str, Dict[str, dict]]:
    return {path: {name: pack(m) for name, m in named.items()} for path, named in masks.items()}


def unpack_all(packed: Dict[str, Dict[str, dict]]) -> Dict[str, Dict[str, torch.Tensor]]:
    return {path: {name: unpack(p) for name, p in named.items()} for path, named in packed.items()}
