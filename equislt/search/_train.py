"""Score-only training of a supermask network (edge-popup, Ramanujan et al. 2020)."""
from __future__ import annotations

from typing import Iterable, List

import torch
from torch import nn
from tqdm.auto import tqdm

from ..nn import refresh, score_parameters

__all__ = ["train_scores", "recalibrate_batchnorm"]


def train_scores(model: nn.Module, loader: Iterable, epochs: int = 1, lr: float = 0.1, optimizer: str = "sgd",
                 momentum: float = 0.9, weight_decay: float = 0.0, progress: bool = True) -> List[float]:
    """Train only the supermask scores of ``model`` (cross-entropy, cosine learning-rate schedule).

    The random coefficients and every other parameter stay frozen (checked: the optimizer gets
    :func:`~equislt.nn.score_parameters` only). Batch-norm running statistics are re-estimated at the end
    with the final mask (:func:`recalibrate_batchnorm`): statistics gathered while the mask kept changing
    do not describe the ticket. Returns the mean loss of each epoch.
    """
    scores = score_parameters(model)
    if not scores:
        raise ValueError("train_scores: the model has no supermask layers (call equislt.nn.supermask first)")
    if optimizer == "sgd":
        opt = torch.optim.SGD(scores, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(scores, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"train_scores: optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    steps = max(1, epochs * len(loader))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    losses: List[float] = []
    model.train()
    with tqdm(total=steps, disable=not progress, desc="search scores", leave=False) as bar:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch in loader:
                x, y = batch[0], batch[1]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                schedule.step()
                total += loss.item() * len(y)
                count += len(y)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            losses.append(total / max(count, 1))
    recalibrate_batchnorm(model, loader)
    return losses


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable) -> None:
    """Re-estimate batch-norm running statistics (cumulative average over one pass of ``loader``)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    refresh(model)
    for batch in loader:
        model(batch[0])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
