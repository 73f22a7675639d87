"""Data a search runs on (``SearchConfig.data`` / ``data_path`` / ``data_kwargs``), as a :class:`Task`: train and
test samples, how to batch them, and how a batch becomes ``(logits, labels)`` for a model.

Three kinds of task: ``"image"`` (``model(images)``), ``"graph"`` (graph classification on PyG batches,
``model(x, edge_index, batch)``) and ``"node"`` (node classification on one graph: a sample is a node, every step
runs the whole graph, ``model(x, edge_index)``). Bundled data sets are named in :data:`DATASETS`; your own data is
a path (``data_path``), whose kind is read from what is there (:func:`task_from_path`). Nothing is downloaded.

The data options, the same for every source (each source takes those that apply to it; others are an error):
``train_limit`` / ``test_limit`` (at most this many samples per split), ``rotations`` (images: ``"c4"``,
``"continuous"``, ``"none"``), ``test_fraction`` (the random test split of a source without one), ``seed`` (of
that split and of the rotations), ``trust_pickles`` (a Planetoid directory, whose raw files are pickles).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from ..models import graph_arguments, graph_logits, image_arguments, image_logits

__all__ = ["DATASETS", "DATA_OPTIONS", "MAX_CLASSES", "Task", "build_task", "task_from_path"]

DATA_OPTIONS = ("train_limit", "test_limit", "rotations", "test_fraction", "seed", "trust_pickles")
MAX_CLASSES = 10_000  # a larger label is taken for a mistake (it would size the model's output layer)


@dataclass
class Task:
    """``train``/``test``: indexable samples (image: ``(image, label)``; graph: PyG ``Data``; node:
    ``(node index, label)`` of ``graph``). ``model_defaults``: size arguments a model factory may take.
    ``source``: what the data is (the run's header, ``result.json``)."""

    train: Any
    test: Any
    num_classes: int
    kind: str  # "image", "graph" or "node"
    model_defaults: Dict[str, Any]
    source: str = "data"
    graph: Any = None  # node tasks: the one graph

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

    def to(self, batch, device: torch.device):
        """``batch`` on ``device`` (a node task's graph is moved with :meth:`move_graph`)."""
        if self.kind == "graph":
            return batch.to(device)
        return tuple(t.to(device) for t in batch)

    def move_graph(self, device: torch.device) -> None:
        """Put a node task's graph on ``device`` (every step runs the whole graph)."""
        if self.graph is not None:
            self.graph = self.graph.to(device)

    def logits_and_labels(self, model: nn.Module, batch):
        if self.kind == "graph":
            return graph_logits(model, batch), batch.y.view(-1)
        if self.kind == "node":
            return graph_logits(model, self.graph)[batch[0]], batch[1]
        return image_logits(model, batch[0]), batch[1]

    def fingerprint(self) -> dict:
        """Sizes and a SHA-256 of the first and last samples of both splits (and a node task's graph): a resumed
        run checks its data is the data it started with."""
        digest = hashlib.sha256()
        samples = [("train", self.train), ("test", self.test)]
        for name, dataset in samples:
            n = len(dataset)
            for i in sorted(set(range(min(8, n))) | set(range(max(n - 8, 0), n))):
                _update(digest, f"{name}/{i}", dataset[i])
        if self.graph is not None:
            _update(digest, "graph", self.graph)
        return {"train": len(self.train), "test": len(self.test), "sha256": digest.hexdigest()}

    def probe(self, model: nn.Module, count: int = 2) -> Optional[tuple]:
        """The call arguments of ``model`` on the first ``count`` test samples (the whole graph of a node task):
        a ticket's fingerprint inputs; ``None`` without test samples."""
        if self.kind == "node":
            return graph_arguments(self.graph, model) if len(self.test) else None
        batch = next(iter(self.loader(self.test, batch_size=count, shuffle=False)), None)
        if batch is None:
            return None
        return graph_arguments(batch, model) if self.kind == "graph" else image_arguments(batch[0], model)


def _update(digest, where: str, item) -> None:
    for key, tensor in _tensors(item):
        digest.update(f"{where}/{key}/{tuple(tensor.shape)}/{tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())


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
    if isinstance(dataset, list):
        return dataset[: int(limit)]
    return torch.utils.data.Subset(dataset, list(range(int(limit))))


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


def _image_task(train, test, classes: int, source: str) -> Task:
    sample = train[0][0]  # [C, H, W] or a volume [C, D, H, W]
    return Task(train, test, classes, "image", {"num_classes": classes, "input_size": sample.shape[-1],
                                                "in_channels": sample.shape[0]}, source)


def _graph_task(graphs_train, graphs_test, classes: int, in_channels: int, source: str) -> Task:
    return Task(graphs_train, graphs_test, classes, "graph",
                {"out_channels": classes, "num_classes": classes, "in_channels": in_channels}, source)


# -- bundled data sets ---------------------------------------------------------------------------------------------
def _rotated_digits(size: int = 17, rotations: str = "c4", test_fraction: float = 0.25, seed: int = 0,
                    train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    from ..data import rotated_digits

    train = rotated_digits("train", size=size, rotations=rotations, test_fraction=test_fraction, seed=seed)
    test = rotated_digits("test", size=size, rotations=rotations, test_fraction=test_fraction, seed=seed)
    return Task(_limit(train, train_limit), _limit(test, test_limit), 10, "image",
                {"num_classes": 10, "input_size": size, "in_channels": 1},
                f"rotated_digits (bundled, {size}x{size}, {rotations} rotations)")


def _graph_atlas(task: str = "triangles", min_nodes: int = 1, max_nodes: int = 7, features: str = "degree",
                 test_fraction: float = 0.2, seed: int = 0, train_limit: Optional[int] = None,
                 test_limit: Optional[int] = None) -> Task:
    from ..data import GraphAtlas, split_indices

    dataset = GraphAtlas(task=task, min_nodes=min_nodes, max_nodes=max_nodes, features=features)
    train_idx, test_idx = split_indices(len(dataset), (1 - test_fraction, test_fraction), seed=seed)
    return _graph_task(_limit(dataset[train_idx], train_limit), _limit(dataset[test_idx], test_limit),
                       dataset.num_classes, dataset.num_features,
                       f"graph_atlas (bundled, {task}, {min_nodes}-{max_nodes} nodes)")


def _karate_club(train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    from ..data import karate_club

    return _node_task(karate_club(), "karate_club (bundled with PyG, 34 nodes)", train_limit, test_limit)


DATASETS: Dict[str, Callable[..., Task]] = {"rotated_digits": _rotated_digits, "graph_atlas": _graph_atlas,
                                            "karate_club": _karate_club}


# -- your own data -------------------------------------------------------------------------------------------------
def _images_from(path: str, rotations: str = "c4", seed: int = 0, test_fraction: float = 0.2,
                 train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    from ..data import image_dataset

    train, source = image_dataset(path, "train", rotations, seed, test_fraction, train_limit)
    test, _ = image_dataset(path, "test", rotations, seed, test_fraction, test_limit)
    classes = _classes(torch.cat([train.tensors[1], test.tensors[1]]), path)
    return _image_task(train, test, classes, source)


def _graphs_from(graphs, path: str, test_fraction: float = 0.2, seed: int = 0, train_limit: Optional[int] = None,
                 test_limit: Optional[int] = None) -> Task:
    from ..data import split_indices

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
    return _graph_task(_limit([graphs[i] for i in train_idx], train_limit),
                       _limit([graphs[i] for i in test_idx], test_limit), classes, widths.pop(), f"graphs in {path}")


def _node_task(graph, source: str, train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    from torch.utils.data import TensorDataset

    classes = _classes(graph.y.view(-1), source)
    graph.x = graph.x.view(graph.num_nodes, -1).float()
    labels = graph.y.view(-1)
    split = {}
    for name, limit in (("train", train_limit), ("test", test_limit)):
        nodes = torch.nonzero(getattr(graph, f"{name}_mask")).view(-1)
        nodes = nodes if limit is None else nodes[: int(limit)]
        split[name] = TensorDataset(nodes, labels[nodes])
    return Task(split["train"], split["test"], classes, "node",
                {"num_classes": classes, "out_channels": classes, "in_channels": graph.x.shape[1]}, source, graph)


def _nodes_from(graph, path: str, train_limit: Optional[int] = None, test_limit: Optional[int] = None) -> Task:
    return _node_task(graph, f"node classification graph in {path}", train_limit, test_limit)


def task_from_path(path, **options) -> Task:
    """Your own data at ``path``, its kind read from what is there: images (a ``.npz``, a directory of IDX files,
    a class-per-folder tree), graphs (a ``torch.save``-d list of PyG ``Data``, a TUDataset directory
    ``root/NAME/raw/``), or one graph for node classification (a file holding a ``Data`` with ``train_mask`` and
    ``test_mask``, a Planetoid directory). ``options``: the data options that apply (see the module)."""
    from pathlib import Path

    path = str(path)
    source = Path(path)
    if not source.exists():
        raise ValueError(f"{path}: no such file or directory (data_path)")
    graph_like = source.suffix in (".pt", ".pth") or (source / "raw").is_dir()
    if not graph_like:
        return _with_options(_images_from, path, options)
    from ..data import graph_source

    kind, data = graph_source(path, trust_pickles=bool(options.pop("trust_pickles", False)))
    return _with_options(_nodes_from if kind == "node" else _graphs_from, path, options, data)


def _with_options(function: Callable[..., Task], path: str, options: Dict[str, Any], *data) -> Task:
    """``function(*data, path, **options)``, an option it does not take named first."""
    import inspect

    accepted = [name for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"SearchConfig.data_kwargs for the data in {path}: {unknown} do not apply to it (it takes "
                         f"{accepted}; data options: {', '.join(DATA_OPTIONS)})")
    return function(*data, path, **options)


def build_task(name: str, kwargs: Dict[str, Any], data_path: Optional[str] = None) -> Task:
    """The :class:`Task` of data set ``name``; with ``data_path``, your own data (:func:`task_from_path`) instead:
    its kind comes from the files, and ``name`` is not used."""
    if data_path is not None:
        return task_from_path(data_path, **kwargs)
    if name not in DATASETS:
        raise ValueError(f"SearchConfig.data: unknown data set {name!r}; known: {sorted(DATASETS)} (or your own "
                         "data with data_path)")
    try:
        return DATASETS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"SearchConfig.data_kwargs for {name!r}: {err}") from err
