"""Score-only training of a supermask network (edge-popup, Ramanujan et al. 2020)."""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional

import torch
from torch import nn

from ..nn import refresh, score_parameters

__all__ = ["train_scores", "recalibrate_batchnorm"]


def train_scores(model: nn.Module, loader: Iterable, epochs: int = 1, lr: float = 0.1, optimizer: str = "sgd",
                 momentum: float = 0.9, weight_decay: float = 0.0, progress: bool = True,
                 device=None) -> List[float]:
    """Train only the supermask scores of ``model`` (cross-entropy, cosine learning-rate schedule).

    The random coefficients and every other parameter stay frozen (the optimizer gets
    :func:`~equislt.nn.score_parameters` only). Batch-norm running statistics are re-estimated at the end
    with the final mask (:func:`recalibrate_batchnorm`): statistics gathered while the mask kept changing
    do not describe the ticket. ``device``: where the batches go (default: where the model is). Returns the
    mean loss of each epoch.
    """
    from ..models import train_classifier

    scores = score_parameters(model)
    if not scores:
        raise ValueError("train_scores: the model has no supermask layers (call equislt.nn.supermask first)")
    losses = train_classifier(model, loader, epochs=epochs, lr=lr, progress=progress, weight_decay=weight_decay,
                              optimizer=optimizer, momentum=momentum, cosine=True, params=scores,
                              desc="search scores", device=device if device is not None else scores[0].device)
    recalibrate_batchnorm(model, loader, forward=lambda m, batch: m(batch[0].to(scores[0].device)))
    return losses


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable,
                          forward: Optional[Callable[[nn.Module, object], object]] = None) -> None:
    """Re-estimate batch-norm running statistics (cumulative average over one pass of ``loader``).

    ``forward(model, batch)`` runs the model on a batch (default ``model(batch[0])``)."""
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
        model(batch[0]) if forward is None else forward(model, batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
