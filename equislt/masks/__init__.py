"""Masks in coefficient space: fixed masks, edge-popup supermasks, top-k budgets, bit packing."""
from ._io import pack, unpack
from ._sources import CoefficientMask, Supermask
from ._topk import global_allocation, n_keep, straight_through_topk, topk_mask

__all__ = [
    "CoefficientMask",
    "Supermask",
    "global_allocation",
    "n_keep",
    "pack",
    "straight_through_topk",
    "topk_mask",
    "unpack",
]
