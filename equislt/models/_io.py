"""Model checkpoints that work for escnn models too (escnn modules cannot be pickled), and never run code.

A checkpoint is ``{"format", "architecture": {"factory": registered name, "kwargs"}, "state_dict"}``: plain data,
for models that record their :class:`~equislt.models.Architecture` (``model.equislt_architecture``: equislt's own
models and models built by a registered factory). Loading reads it as plain data and rebuilds the model through
the registered factory. ``equislt.model/1`` files are read too; those of them that hold a pickled module load
only with ``trust=True`` (unpickling a module runs code from the file).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._files import UnsafeFileError, load_plain
from ._architecture import Architecture

__all__ = ["save_model", "load_model"]

FORMAT = "equislt.model/2"  # /2: architectures by registered name (/1: by import path, or a pickled module)
_READABLE = ("equislt.model/1", FORMAT)


def save_model(model: nn.Module, path) -> None:
    """Save ``model``'s architecture and weights (``state_dict``, in eval mode)."""
    architecture = Architecture.of(model)
    if architecture is None:
        raise ValueError(f"save_model: {type(model).__name__} records no architecture; build it with a factory "
                         "registered with equislt.register_model (then it records one), or save its state_dict "
                         "with torch.save and rebuild it yourself")
    was_training = model.training
    model.eval()  # escnn state_dict keys depend on the mode: save in eval mode
    try:
        torch.save({"format": FORMAT, "architecture": architecture.to_dict(), "state_dict": model.state_dict()},
                   Path(path))
    finally:
        model.train(was_training)


def load_model(path, trust: bool = False) -> nn.Module:
    """Load a checkpoint written by :func:`save_model` (in eval mode). ``trust=True`` also reads checkpoints of
    earlier releases that hold a pickled module: only for files you wrote yourself (unpickling runs code)."""
    try:
        payload = load_plain(path, "load_model")
    except UnsafeFileError as err:
        if not trust:
            raise UnsafeFileError(f"{err}. If you wrote it yourself with an earlier equislt (a pickled module), load "
                                  "it with load_model(path, trust=True)") from None
        payload = torch.load(Path(path), weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") not in _READABLE:
        raise ValueError(f"load_model: {path} is not an equislt model checkpoint ({FORMAT}); save it with "
                         "equislt.models.save_model")
    if "module" in payload:
        return payload["module"].eval()
    model = Architecture.from_dict(payload["architecture"], where=f"{path}: architecture").build().eval()
    model.load_state_dict(payload["state_dict"])
    return model
