"""Rotated versions of scikit-learn's bundled 8x8 digits (no download needed).

Images are upsampled onto an odd ``size x size`` canvas with a zero border, so that 90-degree rotations
about the centre pixel are exact and continuous rotations do not cut off the digit. Pixel values lie in
``[0, 1]`` (raw digits are divided by 16); the background is exactly 0, which matches the zero padding of
convolutions and keeps rotated borders consistent.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "RotatedDigits",
    "rotated_digits",
    "rotated_digits_loaders",
    "rotate_images",
    "SPLITS",
    "ROTATIONS",
]

SPLITS = ("train", "test")
ROTATIONS = ("c4", "continuous", "none")
NUM_CLASSES = 10
_RAW_SIZE = 8


class RotatedDigits(TensorDataset):
    """``TensorDataset`` of ``(image, label)`` pairs with bookkeeping attributes.

    Attributes
    ----------
    images : torch.Tensor
        float32 ``[M, 1, size, size]``, values in ``[0, 1]``.
    labels : torch.Tensor
        int64 ``[M]`` in ``0..9``.
    source_index : torch.Tensor
        int64 ``[M]``: index of the original image in ``sklearn.datasets.load_digits()``.
    angles : torch.Tensor
        float32 ``[M]``: rotation angle in radians (counter-clockwise as displayed with ``imshow``;
        multiples of ``pi/2`` for ``"c4"``, zeros for ``"none"``).
    quarter_turns : torch.Tensor or None
        int64 ``[M]`` number of ``torch.rot90`` quarter turns (``"c4"`` and ``"none"`` only).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        source_index: torch.Tensor,
        angles: torch.Tensor,
        quarter_turns: Optional[torch.Tensor],
        split: str,
        rotations: str,
    ) -> None:
        super().__init__(images, labels)
        self.images = images
        self.labels = labels
        self.source_index = source_index
        self.angles = angles
        self.quarter_turns = quarter_turns
        self.split = split
        self.rotations = rotations

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def __repr__(self) -> str:
        size = self.images.shape[-1]
        return (
            f"RotatedDigits(split={self.split!r}, rotations={self.rotations!r}, n={len(self)}, "
            f"size={size})"
        )


@lru_cache(maxsize=1)
def _load_raw() -> Tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "equislt.data needs scikit-learn for the bundled digits: pip install 'equislt[data]'"
        ) from err
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # [1797, 8, 8] in [0, 1]
    labels = digits.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _inner_size(size: int) -> int:
    """Odd side of the upsampled digit: its diagonal fits in the canvas, so no rotation cuts it."""
    inner = int(math.floor(size / math.sqrt(2.0)))
    if inner % 2 == 0:
        inner -= 1
    return max(inner, 1)


def _to_canvas(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly upsample ``[M, 8, 8]`` images and centre them on a zero ``size x size`` canvas."""
    inner = _inner_size(size)
    up = F.interpolate(images[:, None], size=(inner, inner), mode="bilinear", align_corners=False)
    pad = (size - inner) // 2
    return F.pad(up, (pad, pad, pad, pad)).clamp_(0.0, 1.0)


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate ``[M, C, H, W]`` images about their centre by ``angles`` (radians, ``[M]``).

    Bilinear ``grid_sample`` with zero padding. The sense matches ``torch.rot90(x, 1, dims=(-2, -1))``
    for ``angle = pi/2`` (counter-clockwise as displayed with ``imshow``); for odd square images the
    centre pixel is the rotation centre.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [M, C, H, W], got shape {tuple(images.shape)}")
    angles = torch.as_tensor(angles, dtype=images.dtype, device=images.device).reshape(-1)
    if angles.numel() != images.shape[0]:
        raise ValueError(f"angles must have one entry per image ({images.shape[0]}), got {angles.numel()}")
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    # affine_grid maps output (x=column, y=row) coordinates to input sampling coordinates; these signs make
    # angle = pi/2 reproduce torch.rot90(k=1) (checked in the tests).
    theta = torch.stack(
        [torch.stack([cos, -sin, zero], dim=-1), torch.stack([sin, cos, zero], dim=-1)], dim=-2
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _generator(seed: int, split: str) -> torch.Generator:
    state = np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def _check_args(split: str, size: int, rotations: str, test_fraction: float, seed: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if rotations not in ROTATIONS:
        raise ValueError(f"rotations must be one of {ROTATIONS}, got {rotations!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an int, got {size!r}")
    if size < 9 or size % 2 == 0:
        raise ValueError(
            f"size must be an odd int >= 9 (odd so that 90-degree rotations are exact about the centre "
            f"pixel), got {size}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    n = len(_load_raw()[1])
    if not isinstance(test_fraction, (float, int)) or isinstance(test_fraction, bool):
        raise ValueError(f"test_fraction must be a float in (0, 1), got {test_fraction!r}")
    n_test = math.ceil(float(test_fraction) * n)
    if not 0.0 < test_fraction < 1.0 or n_test < NUM_CLASSES or n - n_test < NUM_CLASSES:
        raise ValueError(
            f"test_fraction must be in (0, 1) and leave at least {NUM_CLASSES} digits in each split "
            f"(of {n}), got {test_fraction!r}"
        )


@lru_cache(maxsize=16)
def _split_indices(test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    labels = _load_raw()[1]
    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels, shuffle=True
    )
    train, test = np.sort(train), np.sort(test)
    train.setflags(write=False)
    test.setflags(write=False)
    return train, test


def apply_rotations(images: torch.Tensor, rotations: str, generator: torch.Generator):
    """Rotate each image ``[M, 1, s, s]`` at random: ``"c4"`` by a multiple of 90° (exact), ``"continuous"`` by an
    angle in ``[0, 2π)`` (bilinear), ``"none"`` not at all. Returns ``(images, angles, quarter_turns or None)``."""
    m = len(images)
    quarter_turns: Optional[torch.Tensor] = None
    if rotations == "none":
        angles = torch.zeros(m)
        quarter_turns = torch.zeros(m, dtype=torch.long)
    elif rotations == "c4":
        quarter_turns = torch.randint(0, 4, (m,), generator=generator)
        rotated = images.clone()
        for k in range(1, 4):
            sel = quarter_turns == k
            rotated[sel] = torch.rot90(images[sel], k, dims=(-2, -1))
        images = rotated
        angles = quarter_turns.to(torch.float32) * (math.pi / 2)
    else:
        angles = torch.rand(m, generator=generator, dtype=torch.float64).mul_(2 * math.pi).to(torch.float32)
        images = rotate_images(images, angles).clamp_(0.0, 1.0)
    return images, angles, quarter_turns


def rotated_digits(
    split: str = "train",
    size: int = 17,
    rotations: str = "c4",
    test_fraction: float = 0.25,
    seed: int = 0,
) -> RotatedDigits:
    """Rotated 8x8 digits from scikit-learn, upsampled to ``size x size``.

    Parameters
    ----------
    split : {"train", "test"}
        Which part of the stratified split of the 1797 digits (split determined by ``seed``).
    size : int
        Odd canvas side (>= 9). The digit is bilinearly upsampled to the largest odd side whose diagonal
        fits into the canvas and centred on a zero border.
    rotations : {"c4", "continuous", "none"}
        ``"c4"``: a random multiple of 90 degrees per image (exact, ``torch.rot90``); ``"continuous"``: a
        uniform random angle in ``[0, 2pi)`` (bilinear, zero padding); ``"none"``: unrotated.
    test_fraction : float
        Fraction of the digits in the test split.
    seed : int
        Seeds the split and (together with ``split``) the rotations; everything is deterministic.

    Returns
    -------
    RotatedDigits
        A ``TensorDataset`` of ``(image float32 [1, size, size] in [0, 1], label int64)``, in increasing
        ``source_index`` order, with attributes ``source_index``, ``angles`` and ``quarter_turns``.
    """
    _check_args(split, size, rotations, test_fraction, seed)
    raw_images, raw_labels = _load_raw()
    train_idx, test_idx = _split_indices(float(test_fraction), int(seed))
    idx = train_idx if split == "train" else test_idx

    images = _to_canvas(torch.from_numpy(raw_images[idx].copy()), size)
    labels = torch.from_numpy(raw_labels[idx].copy())
    images, angles, quarter_turns = apply_rotations(images, rotations, _generator(int(seed), split))
    return RotatedDigits(
        images.contiguous(),
        labels,
        torch.from_numpy(idx.astype(np.int64)),
        angles,
        quarter_turns,
        split,
        rotations,
    )


def rotated_digits_loaders(
    batch_size: int = 64, seed: int = 0, test_batch_size: Optional[int] = None, **kwargs: Any
) -> Tuple[DataLoader, DataLoader]:
    """Train and test ``DataLoader`` s over :func:`rotated_digits`.

    The train loader shuffles with a generator seeded by ``seed``; the test loader does not shuffle.
    ``kwargs`` (``size``, ``rotations``, ``test_fraction``) go to :func:`rotated_digits`.
    ``test_batch_size`` defaults to ``batch_size``.
    """
    if "split" in kwargs:
        raise ValueError("split must not be given to rotated_digits_loaders (it returns both splits)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    test_batch_size = batch_size if test_batch_size is None else test_batch_size
    if isinstance(test_batch_size, bool) or not isinstance(test_batch_size, int) or test_batch_size < 1:
        raise ValueError(f"test_batch_size must be a positive int, got {test_batch_size!r}")
    train = rotated_digits("train", seed=seed, **kwargs)
    test = rotated_digits("test", seed=seed, **kwargs)
    shuffle_gen = torch.Generator().manual_seed(int(seed))
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle_gen)
    test_loader = DataLoader(test, batch_size=test_batch_size, shuffle=False)
    return train_loader, test_loader
