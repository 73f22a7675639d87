"""Datasets for the demos: rotated versions of scikit-learn's bundled 8x8 digits (offline)."""
from ._digits import ROTATIONS, SPLITS, RotatedDigits, rotate_images, rotated_digits, rotated_digits_loaders

__all__ = [
    "RotatedDigits",
    "rotated_digits",
    "rotated_digits_loaders",
    "rotate_images",
    "ROTATIONS",
    "SPLITS",
]
