"""Named random streams: every random coefficient equislt draws comes from a generator keyed by
``(seed, layer path, purpose)``, so that a ticket (a seed plus masks) regenerates its network bit for bit.

Each derivation of a stream's seed is part of the ticket format and never changes once released:

* ``"supermask"``: the search's random coefficients and initial scores, ``crc32("seed/path/purpose") + 7919·seed``;
* ``"construct"``: the construction's per-input-field draws, ``(crc32("path/purpose") << 20) XOR seed``.

torch's CPU generator gives identical prefixes for longer draws, which the construction's widening relies on.
"""
from __future__ import annotations

import zlib

import torch

__all__ = ["DERIVATIONS", "random_stream"]

DERIVATIONS = ("supermask", "construct")


def random_stream(seed: int, path: str, purpose: str, derivation: str = "supermask") -> torch.Generator:
    """A CPU generator for the coefficients of ``path`` drawn for ``purpose`` (see the module docstring)."""
    seed = int(seed)
    if derivation == "supermask":
        key = zlib.crc32(f"{seed}/{path}/{purpose}".encode()) + seed * 7919
    elif derivation == "construct":
        key = (zlib.crc32(f"{path}/{purpose}".encode()) << 20) ^ seed
    else:
        raise ValueError(f"random_stream: derivation must be one of {DERIVATIONS}, got {derivation!r}")
    return torch.Generator().manual_seed(key)
