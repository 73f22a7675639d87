"""Masks in coefficient space: fixed masks, edge-popup supermasks, top-k budgets, bit packing, counts, digests."""
from ._io import MaskCounts, count_masks, mask_digest, pack, pack_all, unpack, unpack_all
from ._sources import CoefficientMask, Supermask
from ._topk import global_allocation, n_keep, straight_through_topk, topk_mask

__all__ = [
    "CoefficientMask",
    "MaskCounts",
    "Supermask",
    "count_masks",
    "global_allocation",
    "mask_digest",
    "n_keep",
    "pack",
    "pack_all",
    "straight_through_topk",
    "topk_mask",
    "unpack",
    "unpack_all",
]
