"""Model checkpoints that work for escnn models too (escnn modules cannot be pickled).

A checkpoint is ``{"format", "architecture": {"factory": registered name, "kwargs"}, "state_dict"}`` for models
that record their :class:`~equislt.models.Architecture` (``model.equislt_architecture``: equislt's own models and
models built by a registered factory), or ``{"format", "module"}`` holding a pickled plain torch module.
``equislt.model/1`` files (the architecture as an import path) are read too.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ._architecture import Architecture

__all__ = ["save_model", "load_model"]

FORMAT = "equislt.model/2"  # /2: architectures by registered name (/1: by import path)
_READABLE = ("equislt.model/1", FORMAT)


def save_model(model: nn.Module, path) -> None:
    architecture = Architecture.of(model)
    was_training = model.training
    model.eval()  # escnn state_dict keys depend on the mode: save in eval mode
    try:
        if architecture is not None:
            payload = {"format": FORMAT, "architecture": architecture.to_dict(), "state_dict": model.state_dict()}
        else:
            payload = {"format": FORMAT, "module": model}
        torch.save(payload, Path(path))
    finally:
        model.train(was_training)


def load_model(path) -> nn.Module:
    """Load a checkpoint written by :func:`save_model` (in eval mode)."""
    payload = torch.load(Path(path), weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") not in _READABLE:
        raise ValueError(f"load_model: {path} is not an equislt model checkpoint ({FORMAT}); save it with "
                         "equislt.models.save_model")
    if "module" in payload:
        return payload["module"].eval()
    model = Architecture.from_dict(payload["architecture"], where=f"{path}: architecture").build().eval()
    model.load_state_dict(payload["state_dict"])
    return model
