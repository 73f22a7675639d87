"""Images as equislt's image data sets hold them: ``(images [M, C, s, s] in [0, 1], labels [M])``, pixels scaled by
the largest one, padded to an odd square side (so that 90° rotations are exact about the centre pixel) and rotated
at random like :func:`~equislt.data.rotated_digits` (``rotations``: ``"c4"``, ``"continuous"`` or ``"none"``)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._digits import ROTATIONS, SPLITS, _generator, apply_rotations

__all__ = ["prepare_images"]


def prepare_images(images: np.ndarray, labels: np.ndarray, split: str, rotations: str = "c4", seed: int = 0,
                   where: str = "images", label_where: Optional[str] = None) -> TensorDataset:
    """``images`` ``[M, H, W]`` or ``[M, C, H, W]`` (finite, non-negative) and integer ``labels`` ``[M]`` as a
    rotated, odd-sided ``TensorDataset``; volumes ``[M, C, D, H, W]`` are padded to an odd cube, not rotated. Errors name ``where`` (``label_where`` for the labels) and the index."""
    label_where = label_where or where
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if rotations not in ROTATIONS:
        raise ValueError(f"{where}: rotations must be one of {ROTATIONS}, got {rotations!r}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim not in (4, 5) or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{where}: expected images [M, H, W] or [M, C, H, W] (volumes [M, C, D, H, W]) and labels "
                         f"[M], got {images.shape} and {labels.shape}")
    if images.ndim == 5 and rotations != "none":
        raise ValueError(f"{where}: volumes [M, C, D, H, W] are not rotated: use rotations='none', got {rotations!r}")
    flat = images.reshape(len(images), -1)
    for bad, what in ((~np.isfinite(flat), "NaN or infinite values"), (flat < 0, "negative values")):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            raise ValueError(f"{where}: image {int(rows[0])} has {what} ({rows.size} image(s) in all); pixels must "
                             "be finite and non-negative")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{label_where}: labels must be integers 0, 1, ..., got {labels.dtype} values")
    if labels.size and int(labels.min()) < 0:
        raise ValueError(f"{label_where}: label {int(labels.min())} at index {int(np.argmin(labels))} is negative; labels "
                         "are classes 0, 1, ...")
    scale = max(float(images.max()) if images.size else 1.0, 1.0)
    x = torch.from_numpy(images.astype(np.float32) / scale)
    spatial = x.shape[2:]
    side = max(n + 1 - n % 2 for n in spatial)
    canvas = torch.zeros((len(x), x.shape[1]) + (side,) * len(spatial))
    canvas[(slice(None), slice(None)) + tuple(slice(0, n) for n in spatial)] = x
    rotated, _, _ = apply_rotations(canvas, rotations, _generator(int(seed), split))
    return TensorDataset(rotated.contiguous(), torch.from_numpy(labels.astype(np.int64)))
