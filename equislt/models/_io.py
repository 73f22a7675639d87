"""Model checkpoints that work for escnn models too (escnn modules cannot be pickled), and never run code.

A checkpoint is ``{"format", "architecture": {"factory": registered name, "kwargs"}, "state_dict"}``: plain data,
for models that record their :class:`~equislt.models.Architecture` (``model.equislt_architecture``: equislt's own
models and models built by a registered factory). Loading reads it as plain data and rebuilds the model through
the registered factory. ``equislt.model/1`` files are read too; those of them that hold a pickled module load
only with ``trust=True`` (unpickling a module runs code from the file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .._files import UnsafeFileError, load_plain
from ._architecture import Architecture, model_factory

__all__ = ["save_model", "load_model", "load_weights"]

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
    """Load a checkpoint written by :func:`save_model` (in eval mode). ``trust=True`` also imports a factory the
    file records as ``"package.module:factory"`` and reads checkpoints of earlier releases that hold a pickled
    module: only for files you wrote yourself (both run code)."""
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
    model = Architecture.from_dict(payload["architecture"], where=f"{path}: architecture").build(trust).eval()
    _load_state(model, payload["state_dict"], path)
    return model


def load_weights(factory, kwargs: Optional[dict], path) -> nn.Module:
    """Your trained model from its factory and a saved ``state_dict``: ``factory`` (a registered name,
    ``"package.module:factory"``, or the callable; see :func:`~equislt.models.model_factory`) is called with
    ``kwargs``, the model put in eval mode (escnn's state-dict keys depend on the mode: save
    ``model.eval().state_dict()``) and the weights at ``path`` loaded, every key checked. The model records its
    architecture, so tickets constructed from it reload without ``target=``."""
    model = Architecture(model_factory(factory, "load_weights"), dict(kwargs or {})).build().eval()
    state = load_plain(path, "load_weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"load_weights: {path} must hold a state_dict (names to tensors), got "
                         f"{type(state).__name__}")
    _load_state(model, state, path)
    return model


def _load_state(model: nn.Module, state: dict, path) -> None:
    """``load_state_dict`` with an error naming the file and the keys or shapes that do not fit."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own.keys() & state.keys() if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: the weights do not fit {type(model).__name__} (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, other shape {sorted(wrong)[:5]}); were they saved from this model with "
                         "these arguments, in eval mode?")
    model.load_state_dict(state)
