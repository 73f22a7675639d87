"""Search checkpoints: scores, buffers, optimizer, schedule and position, with the seed, config and version.

The frozen random coefficients are *not* saved: they are regenerated from the seed (as in a ticket). Writes are
atomic (temporary file + ``os.replace``), so a run killed while saving keeps its previous checkpoint.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Dict

import torch

from .._files import load_plain

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "equislt.search-checkpoint/2"  # /2: plain data only (read without running code)


def save_checkpoint(payload: Dict[str, Any], path) -> None:
    """Write atomically: a failed write (a full disk, say) leaves the previous checkpoint as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err) or \
            "file write failed" in str(err)
        why = "no space left on device" if full else f"{type(err).__name__}: {err}"
        raise OSError(errno.ENOSPC if full else getattr(err, "errno", None) or errno.EIO,
                      f"could not write the search checkpoint {path} ({why}); the previous checkpoint is kept") from None


def load_checkpoint(path) -> Dict[str, Any]:
    try:
        payload = load_plain(path, "search checkpoint")
    except ValueError as err:
        raise ValueError(f"{err}; an equislt.search-checkpoint/1 file (earlier release) cannot be resumed: start "
                         "the run again without resuming (--no-resume) or in another --out directory") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an equislt search checkpoint ({FORMAT}); start the run again without "
                         "resuming (--no-resume) or in another --out directory")
    return payload
