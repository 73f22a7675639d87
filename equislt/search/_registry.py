"""Models and data sets a search can name (``SearchConfig.model`` / ``SearchConfig.data``).

A data set entry returns a :class:`Task`: train/test sets, how to batch them, and how a batch becomes
``(logits, labels)`` for a model. A model entry names a registered architecture factory
(:func:`equislt.register_model`), the kind of data it reads and the size arguments the data set fills in; the
network records its :class:`~equislt.models.Architecture`, so a ticket regenerates it from the seed.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import nn

from ..models import (Architecture, graph_arguments, graph_logits, image_arguments, image_logits, model_factory,
                      registered_models)

__all__ = ["MODELS", "DATASETS", "ModelEntry", "Task", "build_model", "build_task", "model_architecture"]


@dataclass
class Task:
    train: Any
    test: Any
    num_classes: int
    kind: str  # "image" or "graph": how batches are made and fed to a model
    model_defaults: Dict[str, Any]
    source: str = "data"  # what the data is, for the run's header and result.json

    def loader(self, dataset, **kwargs):
        if self.kind == "graph":
            from torch_geometric.loader import DataLoader
        else:
            from torch.utils.data import DataLoader
        return DataLoader(dataset, **kwargs)

    def subset(self, dataset, indices):
        if isinstance(dataset, list):  # graphs loaded from a user's file
            return [dataset[i] for i in indices]
        if self.kind == "graph":
            return dataset[torch.as_tensor(indices, dtype=torch.long)]
        return torch.utils.data.Subset(dataset, list(indices))

    def logits_and_labels(self, model: nn.Module, batch):
        if self.kind == "graph":
            return graph_logits(model, batch), batch.y.view(-1)
        return image_logits(model, batch[0]), batch[1]

    def fingerprint(self) -> dict:
        """Sizes and a SHA-256 of the first and last samples of both splits: a resumed run checks its data is the
        data it started with."""
        digest = hashlib.sha256()
        for name, dataset in (("train", self.train), ("test", self.test)):
            n = len(dataset)
            for i in sorted(set(range(min(8, n))) | set(range(max(n - 8, 0), n))):
                for key, tensor in _tensors(dataset[i]):
                    digest.update(f"{name}/{i}/{key}/{tuple(tensor.shape)}/{tensor.dtype}".encode())
                    digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        return {"train": len(self.train), "test": len(self.test), "sha256": digest.hexdigest()}

    def probe(self, model: nn.Module, count: int = 2) -> Optional[tuple]:
        """The call arguments of ``model`` on the first ``count`` test samples (a ticket's fingerprint inputs;
        ``None`` without test samples)."""
        batch = next(iter(self.loader(self.test, batch_size=count, shuffle=False)), None)
        if batch is None:
            return None
        return graph_arguments(batch, model) if self.kind == "graph" else image_arguments(batch[0], model)


def _tensors(item):
    """``(key, tensor)`` of a sample: a tuple of tensors, or a PyG ``Data``'s attributes."""
    if torch.is_tensor(item):
        return [("", item)]
    if isinstance(item, (tuple, list)):
        return [(str(i), t) for i, t in enumerate(item) if torch.is_tensor(t)]
    return [(k, v) for k, v in sorted(item.to_dict().items()) if torch.is_tensor(v)]


def _limit(dataset, limit: Optional[int]):
    if limit is None or limit >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, list(range(int(limit))))


def _rotated_digits(size: int = 17, rotations: str = "c4", test_fraction: float = 0.25, seed: int = 0,
                    train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    from ..data import rotated_digits

    train = rotated_digits("train", size=size, rotations=rotations, test_fraction=test_fraction, seed=seed)
    test = rotated_digits("test", size=size, rotations=rotations, test_fraction=test_fraction, seed=seed)
    return Task(_limit(train, train_limit), _limit(test, test_limit), 10, "image",
                {"num_classes": 10, "input_size": size, "in_channels": 1},
                f"rotated_digits (bundled, {size}x{size}, {rotations} rotations)")


def _graph_atlas(task: str = "triangles", min_nodes: int = 1, max_nodes: int = 7, features: str = "degree",
                 test_fraction: float = 0.2, seed: int = 0) -> Task:
    from ..data import GraphAtlas, split_indices

    dataset = GraphAtlas(task=task, min_nodes=min_nodes, max_nodes=max_nodes, features=features)
    train_idx, test_idx = split_indices(len(dataset), (1 - test_fraction, test_fraction), seed=seed)
    return Task(dataset[train_idx], dataset[test_idx], dataset.num_classes, "graph",
                {"out_channels": dataset.num_classes, "num_classes": dataset.num_classes,
                 "in_channels": dataset.num_features}, f"graph_atlas (bundled, {task}, {min_nodes}-{max_nodes} nodes)")


def _idx_directory(path: str, rotations: str = "c4", seed: int = 0, train_limit: Optional[int] = None,
                   test_limit: Optional[int] = None) -> Task:
    """Your own images: a directory of MNIST-style IDX files (:func:`equislt.data.idx_images`)."""
    from ..data import idx_images

    train = idx_images(path, "train", rotations=rotations, seed=seed, limit=train_limit)
    test = idx_images(path, "test", rotations=rotations, seed=seed, limit=test_limit)
    classes = _classes(torch.cat([train.tensors[1], test.tensors[1]]), path)
    return Task(train, test, classes, "image",
                {"num_classes": classes, "input_size": train.tensors[0].shape[-1], "in_channels": 1},
                f"IDX images in {path}")


MAX_CLASSES = 10_000  # a larger label is taken for a mistake (it would size the model's output layer)


def _classes(labels: torch.Tensor, where) -> int:
    """The number of classes ``max label + 1`` of integer labels ``0, 1, ...`` (named errors otherwise)."""
    if labels.numel() == 0:
        raise ValueError(f"{where}: no labels")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{where}: labels must be integers 0, 1, ..., got {labels.dtype}")
    if int(labels.min()) < 0 or int(labels.max()) >= MAX_CLASSES:
        index = int(torch.argmin(labels)) if int(labels.min()) < 0 else int(torch.argmax(labels))
        raise ValueError(f"{where}: label {int(labels[index])} at index {index} is outside 0 .. {MAX_CLASSES - 1}")
    return int(labels.max()) + 1


def _graph_file(path: str, test_fraction: float = 0.2, seed: int = 0) -> Task:
    """Your own graphs: a file written with ``torch.save`` holding a PyG dataset or a list of ``Data``
    (:func:`equislt.data.load_graph_dataset`), split at random into train and test graphs."""
    from ..data import load_graph_dataset, split_indices

    graphs = load_graph_dataset(path)
    widths = {1 if g.x.dim() == 1 else g.x.shape[1] for g in graphs}
    if len(widths) != 1:
        raise ValueError(f"{path}: every graph needs the same number of node features, got {sorted(widths)}")
    if any(g.y.numel() != 1 for g in graphs):
        raise ValueError(f"{path}: graph classification needs one integer label 0, 1, ... per graph")
    classes = _classes(torch.cat([g.y.view(-1) for g in graphs]), path)
    for g in graphs:
        g.x = g.x.view(g.num_nodes, -1).float()
    if len(graphs) < 2:
        raise ValueError(f"{path}: {len(graphs)} graph(s); a train/test split needs at least two")
    train_idx, test_idx = split_indices(len(graphs), (1 - test_fraction, test_fraction), seed=seed)
    return Task([graphs[i] for i in train_idx], [graphs[i] for i in test_idx], classes, "graph",
                {"out_channels": classes, "num_classes": classes, "in_channels": widths.pop()}, f"graphs in {path}")


DATASETS: Dict[str, Callable[..., Task]] = {"rotated_digits": _rotated_digits, "graph_atlas": _graph_atlas}
# ``SearchConfig.data_path`` replaces a bundled data set by the user's own data of the same kind
_DATA_KINDS = {"rotated_digits": "image", "graph_atlas": "graph"}
FROM_PATH: Dict[str, Callable[..., Task]] = {"image": _idx_directory, "graph": _graph_file}


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


def build_task(name: str, kwargs: Dict[str, Any], data_path: Optional[str] = None) -> Task:
    """The :class:`Task` of data set ``name``; with ``data_path``, the user's own data of the same kind instead:
    a directory of MNIST-style IDX files for image data sets, a ``torch.save``-d PyG dataset for graph ones."""
    if name not in DATASETS:
        raise ValueError(f"SearchConfig.data: unknown data set {name!r}; known: {sorted(DATASETS)}")
    if data_path is not None:
        kind = _DATA_KINDS[name]
        try:
            return FROM_PATH[kind](str(data_path), **kwargs)
        except TypeError as err:
            raise ValueError(f"SearchConfig.data_kwargs with data_path ({kind} data from {data_path}): {err}") from err
    try:
        return DATASETS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"SearchConfig.data_kwargs for {name!r}: {err}") from err


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
