"""How a model is called on a batch: image models on images (wrapped in the model's ``in_type`` when the model
is an escnn module), graph models on the batch attributes their ``forward`` names."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .._compat import escnn_loaded, import_escnn, tensor_of
from ._graph import IGN

__all__ = ["GRAPH_ARGUMENTS", "graph_arguments", "graph_logits", "image_arguments", "image_logits"]


def _unwrapped(model: Optional[nn.Module]) -> Optional[nn.Module]:
    return getattr(model, "module", model)  # a DistributedDataParallel's model


def image_arguments(images: torch.Tensor, model: Optional[nn.Module] = None) -> tuple:
    """``(images,)``, or ``(GeometricTensor(images, model.in_type),)`` when ``model`` is an escnn module (a
    ``SequentialModule`` root)."""
    inner = _unwrapped(model)
    if inner is not None and escnn_loaded() and isinstance(inner, import_escnn().nn.EquivariantModule):
        return (import_escnn().nn.GeometricTensor(images, inner.in_type),)
    return (images,)


def image_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits ``[batch, classes]`` of an image classifier; an escnn model's output tensor has its 1x1 spatial
    axes dropped."""
    logits = tensor_of(model(*image_arguments(images, model)))
    if logits.dim() == 4 and logits.shape[2:] == (1, 1):
        logits = logits.flatten(1)
    return logits


# what a graph model's ``forward`` may ask for by name, and the attribute of a PyG batch that gives it
GRAPH_ARGUMENTS = ("x", "edge_index", "batch", "edge_attr", "edge_weight", "pos")


def graph_arguments(batch, model: Optional[nn.Module] = None) -> tuple:
    """The call arguments of a graph model on a PyG batch: ``dense_graph_batch(batch)`` for an :class:`IGN`
    (also inside a ``DistributedDataParallel``'s ``.module``); for any other model, the batch attributes its
    ``forward`` names, in order, from :data:`GRAPH_ARGUMENTS` (``forward(x, edge_index, batch)``, or with
    ``edge_attr`` for GINE-style models); without a model, ``(x, edge_index, batch)``."""
    inner = _unwrapped(model)
    if isinstance(inner, IGN):
        from ..data import dense_graph_batch

        return tuple(dense_graph_batch(batch))
    names = ("x", "edge_index", "batch") if inner is None else _forward_names(inner, batch)
    return tuple(_batch_value(batch, name) for name in names)


def _forward_names(model: nn.Module, batch) -> List[str]:
    import inspect

    names = []
    for name, parameter in inspect.signature(model.forward).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.KEYWORD_ONLY):
            break
        present = name in GRAPH_ARGUMENTS and getattr(batch, name, None) is not None
        if not present and parameter.default is not parameter.empty:
            break
        if not present:
            why = "the batch has none" if name in GRAPH_ARGUMENTS else f"graph models take {GRAPH_ARGUMENTS}"
            raise ValueError(f"{type(model).__name__}.forward asks for {name!r}, but {why}: write "
                             "forward(x, edge_index, batch, ...) with arguments named after the batch's attributes")
        names.append(name)
    return names


def _batch_value(batch, name: str) -> torch.Tensor:
    value = getattr(batch, name)
    return value.float() if name == "x" else value


def graph_logits(model: nn.Module, batch) -> torch.Tensor:
    """Logits of a graph classifier on a PyG batch (:func:`graph_arguments`)."""
    return model(*graph_arguments(batch, model))
