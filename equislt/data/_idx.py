"""Your own images: MNIST-style IDX files (``train-images-idx3-ubyte`` etc., optionally gzipped).

The IDX format (LeCun et al.): two zero bytes, a type code (``0x08`` = unsigned byte), the number of
dimensions, then each dimension as a big-endian int32, then the data. Images are scaled to ``[0, 1]``,
padded to an odd side (so that 90° rotations are exact about the centre pixel) and rotated like the
bundled digits.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np
from torch.utils.data import TensorDataset

from ._digits import ROTATIONS, SPLITS
from ._prepare import prepare_images

__all__ = ["read_idx", "write_idx", "idx_images", "IDX_FILES"]

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` accepted)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (expected two zero bytes and a type code in the header, "
                         f"got {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(data[4:header], dtype=">i4"))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds "
                         f"{len(data) - header} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def write_idx(path, array) -> Path:
    """Write ``array`` (integer values in ``[0, 255]``, any shape) as an unsigned-byte IDX file: how to turn your
    own images and labels into the files :func:`idx_images` reads."""
    array = np.asarray(array)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"write_idx: values must lie in [0, 255] (unsigned bytes), got [{array.min()}, {array.max()}]")
    path = Path(path)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    payload = header + np.rint(array).astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise ValueError(f"{directory}: missing {name}[.gz]; a directory of MNIST-style IDX files needs "
                     f"{', '.join(n for pair in IDX_FILES.values() for n in pair)}")


def idx_images(directory, split: str = "train", rotations: str = "c4", seed: int = 0,
               limit: Optional[int] = None) -> TensorDataset:
    """``(images [M, 1, s, s] in [0, 1], labels [M])`` from a directory of IDX files, rotated like
    :func:`~equislt.data.rotated_digits` (``s`` = the image side, plus one if even)."""
    directory = Path(directory)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if rotations not in ROTATIONS:
        raise ValueError(f"rotations must be one of {ROTATIONS}, got {rotations!r}")
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory of IDX files")
    image_file, label_file = (_find(directory, name) for name in IDX_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: expected images [M, H, W] and labels [M], got {images.shape} and "
                         f"{labels.shape}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return prepare_images(images, labels, split, rotations, seed, where=str(image_file), label_where=str(label_file))
