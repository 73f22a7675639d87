"""Search checkpoints: scores, buffers, optimizer, schedule and position, with the seed, config and version.

The frozen random coefficients are *not* saved: they are regenerated from the seed (as in a ticket). Writes are
atomic (temporary file + ``os.replace``), so a run killed while saving keeps its previous checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "equislt.search-checkpoint/1"


def save_checkpoint(payload: Dict[str, Any], path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> Dict[str, Any]:
    payload = torch.load(Path(path), weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an equislt search checkpoint ({FORMAT})")
    return payload
