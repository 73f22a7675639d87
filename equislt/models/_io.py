"""Model checkpoints that work for escnn models too (escnn modules cannot be pickled).

A checkpoint is ``{"format", "architecture": {"factory": "module:function", "kwargs"}, "state_dict"}`` for
models built by a recorded factory (``model.equislt_architecture``, set by :func:`steerable_cnn` and
:func:`plain_cnn`), or ``{"format", "module"}`` holding a pickled plain torch module.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

__all__ = ["save_model", "load_model"]

FORMAT = "equislt.model/1"


def save_model(model: nn.Module, path) -> None:
    spec = getattr(model, "equislt_architecture", None)
    was_training = model.training
    model.eval()  # escnn state_dict keys depend on the mode: save in eval mode
    try:
        if spec is not None:
            payload = {"format": FORMAT, "architecture": dict(spec), "state_dict": model.state_dict()}
        else:
            payload = {"format": FORMAT, "module": model}
        torch.save(payload, Path(path))
    finally:
        model.train(was_training)


def build_from_architecture(spec: dict) -> nn.Module:
    module_name, _, function = spec["factory"].partition(":")
    return getattr(importlib.import_module(module_name), function)(**spec.get("kwargs", {}))


def load_model(path) -> nn.Module:
    """Load a checkpoint written by :func:`save_model` (in eval mode)."""
    payload = torch.load(Path(path), weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"load_model: {path} is not an equislt model checkpoint ({FORMAT}); save it with "
                         "equislt.models.save_model")
    if "module" in payload:
        return payload["module"].eval()
    model = build_from_architecture(payload["architecture"]).eval()
    model.load_state_dict(payload["state_dict"])
    model.equislt_architecture = payload["architecture"]
    return model
