"""Reading files: plain data only, never code.

Every file equislt reads goes through :func:`load_plain`: ``torch.load(weights_only=True)`` accepts tensors,
numbers, strings, lists, tuples and dicts (and classes a library registered as safe, such as PyG's ``Data``) and
refuses anything else *before* it runs, so a crafted file cannot execute code when it is loaded.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["UnsafeFileError", "load_plain"]


class UnsafeFileError(ValueError):
    """A file holds Python objects other than tensors and plain values (loading it could run code)."""


def load_plain(path, what: str, safe: Sequence[type] = ()) -> Any:
    """The contents of a file written with ``torch.save``, read as plain data (on the CPU); ``what`` names the
    reader in the errors; ``safe`` lists further data-container classes to accept (e.g. PyG's ``Data`` storage)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: {path} does not exist or is not a file")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # torch.save's zip archive, or a legacy pickle
        raise ValueError(f"{what}: {path} is not a readable file written with torch.save")
    try:
        with torch.serialization.safe_globals(list(safe)):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f"it names {found.group(1)}" if found else str(err).strip().splitlines()[0]
        raise UnsafeFileError(f"{what}: {path} holds Python objects other than tensors and plain values, which "
                              f"equislt does not load (loading them could run code from the file; {detail})") from None
    except Exception as err:  # truncated or corrupt
        raise ValueError(f"{what}: {path} is not a readable file written with torch.save ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'})") from None
