"""Minimal training and evaluation loops for classifiers (Adam + cross-entropy)."""
from __future__ import annotations

from typing import Iterable, List, Optional, Union

import torch
from torch import nn
from tqdm import tqdm

from ._calls import graph_logits

__all__ = ["train_classifier", "accuracy", "train_graph_model", "graph_accuracy"]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def train_classifier(
    model: nn.Module,
    loader: Iterable,
    epochs: int = 1,
    lr: float = 1e-3,
    device: Union[str, torch.device] = "cpu",
    progress: bool = True,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    momentum: float = 0.9,
    cosine: bool = False,
    params: Optional[List[nn.Parameter]] = None,
    desc: str = "train",
) -> List[float]:
    """Train ``model`` in place on the cross-entropy loss (Adam, or SGD with momentum).

    ``params`` defaults to the parameters with ``requires_grad`` (frozen weights, e.g. under a supermask,
    stay fixed). ``cosine``: cosine-annealed learning rate over all steps. Batches are
    ``(inputs, labels, *extra)``; extra entries are ignored. The model is moved to ``device`` and left in
    train mode.

    Returns
    -------
    list of float
        Mean training loss of each epoch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    params = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not params:
        raise ValueError("model has no parameters with requires_grad=True to train")
    device = torch.device(device)
    model.to(device)
    model.train()
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    loss_fn = nn.CrossEntropyLoss()
    try:
        total = epochs * len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total or 1, 1)) if cosine else None
    losses: List[float] = []
    with tqdm(total=total, disable=not progress, desc=desc, leave=False) as bar:
        for epoch in range(epochs):
            running, count = 0.0, 0
            for batch in loader:
                x, y = batch[0].to(device), batch[1].to(device)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                if schedule is not None:
                    schedule.step()
                running += loss.item() * len(y)
                count += len(y)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            if count == 0:
                raise ValueError("loader yielded no batches")
            losses.append(running / count)
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable, device: Optional[Union[str, torch.device]] = None) -> float:
    """Fraction of correctly classified samples, evaluated in eval mode (the previous mode is restored).

    ``device`` defaults to the device of the model's parameters. Batches are ``(inputs, labels, *extra)``.
    """
    device = _model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    correct, count = 0, 0
    try:
        for batch in loader:
            x, y = batch[0].to(device), batch[1].to(device)
            correct += (model(x).argmax(dim=-1) == y).sum().item()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no samples")
    return correct / count


def train_graph_model(model: nn.Module, loader: Iterable, epochs: int = 50, lr: float = 3e-3,
                      weight_decay: float = 0.0) -> List[float]:
    """Adam + cross-entropy on PyG batches (``IGN`` gets :func:`~equislt.data.dense_graph_batch`, other models
    ``model(x, edge_index, batch)``). Only ``requires_grad`` parameters train. Returns mean loss per epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train_graph_model: model has no parameters with requires_grad=True")
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(graph_logits(model, batch), batch.y.view(-1))
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.num_graphs
            count += batch.num_graphs
        losses.append(total / max(count, 1))
    return losses


@torch.no_grad()
def graph_accuracy(model: nn.Module, loader: Iterable) -> float:
    """Fraction of graphs classified correctly, in eval mode (the previous mode is restored)."""
    was = model.training
    model.eval()
    correct = total = 0
    try:
        for batch in loader:
            correct += int((graph_logits(model, batch).argmax(-1) == batch.y.view(-1)).sum())
            total += batch.num_graphs
    finally:
        model.train(was)
    return correct / max(total, 1)
