"""Models a search can name (``SearchConfig.model``): equislt's own, or yours.

A model entry names a registered architecture factory (:func:`equislt.register_model`), the kind of data it reads
and the size arguments the data set fills in; the network records its :class:`~equislt.models.Architecture`, so a
ticket regenerates it from the seed. Any other name is a registered factory or an import path
``"package.module:factory"`` (:func:`equislt.models.model_factory`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from torch import nn

from ..models import Architecture, model_factory, registered_models
from ._tasks import Task

__all__ = ["MODELS", "ModelEntry", "build_model", "model_architecture"]


@dataclass(frozen=True)
class ModelEntry:
    """A model a search can name: its registered architecture ``factory``, the ``kind`` of data it reads
    (``"image"`` or ``"graph"``), and the factory arguments filled in from the data set when not given."""

    factory: str
    kind: str
    data_keys: Tuple[str, ...]


_IMAGE_KEYS = ("num_classes", "input_size", "in_channels")
_GRAPH_KEYS = ("in_channels", "out_channels")
MODELS: Dict[str, ModelEntry] = {
    "steerable_cnn": ModelEntry("equislt.steerable_cnn", "image", _IMAGE_KEYS),
    "plain_cnn": ModelEntry("equislt.plain_cnn", "image", _IMAGE_KEYS),
    "gin": ModelEntry("equislt.gin", "graph", _GRAPH_KEYS),
    "gcn": ModelEntry("equislt.gcn", "graph", _GRAPH_KEYS),
    "ign": ModelEntry("equislt.ign", "graph", _GRAPH_KEYS),
}


def model_architecture(name: str, kwargs: Optional[Dict[str, Any]] = None, task: Optional[Task] = None) -> Architecture:
    """The architecture of search model ``name`` (missing size arguments filled in from ``task``).

    ``name``: a model of :data:`MODELS`, a factory registered with :func:`equislt.register_model`, or an import
    path ``"package.module:factory"`` (:func:`equislt.models.model_factory`). A user's factory gets the data set's
    size arguments (``num_classes``, ``in_channels``, ``input_size``, ``out_channels``) that its signature names
    and ``kwargs`` leaves out."""
    kwargs = dict(kwargs or {})
    if name not in MODELS:
        try:
            factory = model_factory(name, "SearchConfig.model")
        except ValueError as err:
            raise ValueError(f"{err} (equislt's models: {sorted(MODELS)})") from None
        if task is not None:
            parameters = inspect.signature(registered_models()[factory]).parameters
            for key, value in task.model_defaults.items():
                if key in parameters and parameters[key].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                                  inspect.Parameter.KEYWORD_ONLY):
                    kwargs.setdefault(key, value)
        return Architecture(factory, kwargs)
    entry = MODELS[name]
    if task is not None:
        if entry.kind != task.kind:
            raise ValueError(f"SearchConfig.model {name!r} takes {entry.kind} data, but the data set gives "
                             f"{task.kind} batches")
        for key in entry.data_keys:
            if key in task.model_defaults:
                kwargs.setdefault(key, task.model_defaults[key])
    return Architecture(entry.factory, kwargs)


def build_model(name: str, kwargs: Optional[Dict[str, Any]] = None, task: Optional[Task] = None) -> nn.Module:
    """Build search model ``name`` (:func:`model_architecture`); the model records its architecture."""
    architecture = model_architecture(name, kwargs, task)
    try:
        return architecture.build()
    except ValueError as err:
        raise ValueError(f"SearchConfig.model_kwargs for {name!r}: {err}") from err
