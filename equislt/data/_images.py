"""Your own images, offline: a class-per-folder tree of image files or a NumPy ``.npz``, besides IDX files.

Every source becomes what :func:`~equislt.data.prepare_images` makes (``[M, C, s, s]`` in ``[0, 1]``, odd side,
rotated). Without a train/test split of its own, a source is split at random by ``test_fraction`` and ``seed``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._idx import idx_images
from ._prepare import prepare_images

__all__ = ["IMAGE_SUFFIXES", "image_dataset", "image_folder", "npz_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _split(count: int, split: str, test_fraction: float, seed: int, where: str) -> np.ndarray:
    """The indices of ``split`` in a seeded random split of ``count`` samples."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{where}: test_fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(int(seed))).numpy()
    n_test = max(1, int(round(count * test_fraction)))
    if count - n_test < 1:
        raise ValueError(f"{where}: {count} sample(s) cannot be split into train and test")
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def _limit(images: np.ndarray, labels: np.ndarray, limit: Optional[int]):
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


def npz_images(path, split: str = "train", rotations: str = "c4", seed: int = 0, test_fraction: float = 0.2,
               limit: Optional[int] = None) -> TensorDataset:
    """Images from a NumPy ``.npz``: ``x_train``/``y_train``/``x_test``/``y_test``, or ``x``/``y`` split at random.
    ``x``: ``[M, H, W]``, ``[M, C, H, W]`` or channels last ``[M, H, W, C]`` (C ≤ 4). Read with
    ``allow_pickle=False``: object arrays are refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npz of numeric arrays ({err})") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    elif {"x", "y"} <= set(arrays):
        if len(arrays["x"]) != len(arrays["y"]):
            raise ValueError(f"{path}: {len(arrays['x'])} images in 'x' but {len(arrays['y'])} labels in 'y'")
        keep = _split(len(arrays["x"]), split, test_fraction, seed, str(path))
        images, labels = arrays["x"][keep], arrays["y"][keep]
    else:
        raise ValueError(f"{path}: expected arrays 'x' and 'y' (or x_train, y_train, x_test, y_test), found "
                         f"{sorted(arrays)}")
    if images.ndim == 4 and images.shape[-1] <= 4 < images.shape[1]:
        images = np.moveaxis(images, -1, 1)
    images, labels = _limit(images, labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels,
                            limit)
    return prepare_images(images, labels, split, rotations, seed, where=f"{path} ({split})")


def _class_folders(root: Path) -> List[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, classes: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    files = [(f, label) for label, name in enumerate(classes) if (root / name).is_dir()
             for f in sorted((root / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    pictures = []
    for file, _ in files:
        try:
            with Image.open(file) as picture:
                pictures.append(picture.copy())
        except OSError as err:
            raise ValueError(f"{file}: not an image Pillow can read ({err})") from None
    gray = all(p.mode in ("L", "1", "I", "I;16", "F") for p in pictures)
    arrays = [np.asarray(p.convert("F" if gray else "RGB"), dtype=np.float32) for p in pictures]
    shape = arrays[0].shape
    for (file, _), array in zip(files, arrays):
        if array.shape != shape:
            raise ValueError(f"{file}: {array.shape[:2]} pixels, but {files[0][0]} has {shape[:2]}; every image "
                             "must have the same size")
    images = np.stack(arrays)
    if not gray:
        images = np.moveaxis(images, -1, 1)
    return images, np.array([label for _, label in files], dtype=np.int64)


def image_folder(root, split: str = "train", rotations: str = "c4", seed: int = 0, test_fraction: float = 0.2,
                 limit: Optional[int] = None) -> Tuple[TensorDataset, List[str]]:
    """Images in a class-per-folder tree, ``root/<class>/<image>`` (``root/train/<class>/`` and
    ``root/test/<class>/`` when both exist; otherwise split at random), read with Pillow: grayscale stays one
    channel, anything else becomes RGB. Classes are the sorted folder names (label 0 is the first); returns the
    dataset and the class names."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted({p.name for part in ("train", "test") for p in _class_folders(root / part)})
        images, labels = _read_folder(root / split, classes)
    else:
        classes = [p.name for p in _class_folders(root)]
        if not classes:
            raise ValueError(f"{root}: expected one folder of images per class, root/<class>/*.png")
        images, labels = _read_folder(root, classes)
        keep = _split(len(images), split, test_fraction, seed, str(root))
        images, labels = images[keep], labels[keep]
    images, labels = _limit(images, labels, limit)
    return prepare_images(images, labels, split, rotations, seed, where=f"{root} ({split})"), classes


def image_dataset(path, split: str = "train", rotations: str = "c4", seed: int = 0, test_fraction: float = 0.2,
                  limit: Optional[int] = None) -> Tuple[TensorDataset, str]:
    """Whichever image source ``path`` is: a ``.npz`` file, a directory of IDX files, or a class-per-folder tree.
    Returns the dataset and a description of the source."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return npz_images(path, split, rotations, seed, test_fraction, limit), f"images in {path} (.npz)"
    if not path.is_dir():
        raise ValueError(f"{path}: not an image source; give a .npz file, a directory of MNIST-style IDX files, or a "
                         "class-per-folder tree root/<class>/*.png")
    if any(f.name.endswith(("idx3-ubyte", "idx3-ubyte.gz")) for f in path.iterdir()):
        return idx_images(path, split, rotations, seed, limit), f"IDX images in {path}"
    dataset, classes = image_folder(path, split, rotations, seed, test_fraction, limit)
    return dataset, f"image folders in {path} ({len(classes)} classes)"
