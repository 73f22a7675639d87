"""The main job: a trained C4-steerable target on rotated digits and a strong lottery ticket for it.

1. train a small C4-steerable CNN (the target) on scikit-learn's bundled digits, rotated by multiples of 90°;
2. ``method="construct"`` (default): build a random overparametrised C4 network from a seed and prune it
   by batched Subset-Sum so that it approximates the target (:func:`equislt.construct.construct`);
   ``method="search"``: learn supermask scores in a random wider copy (edge-popup);
3. report target vs ticket accuracy, prediction agreement, max output error, equivariance error under exact
   90° rotations, counts and times; save the target, the ticket and ``result.json``. A constructed ticket runs
   in its compact form (target-sized layers computing the pruned random network's function exactly, to float
   rounding); a searched ticket is the pruned random network itself.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from ._device import resolve_device

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    method: str = "construct"
    seed: int = 0
    target_channels: tuple = (8, 16)
    target_epochs: int = 8
    batch_size: int = 32
    target_lr: float = 3e-3  # robust: the target's accuracy does not depend on the thread count (README)
    tol: float = 1e-4  # construct: per-coefficient Subset-Sum tolerance
    ticket_channels: tuple = (24, 48)  # search: the random wider network
    search_epochs: int = 6
    sparsity: float = 0.5
    search_lr: float = 0.01
    out: Optional[str] = "runs/demo"
    progress: bool = True
    device: str = "auto"  # a CUDA GPU, then MPS, else the CPU (equislt._device.resolve_device)
    data: Optional[str] = None  # your images instead of the bundled digits: IDX files, class folders or a .npz
    train_limit: Optional[int] = None  # the data options of equislt.search.DATA_OPTIONS that apply to the demo
    test_limit: Optional[int] = None
    test_fraction: float = 0.25


def _rotation_error(model, images: torch.Tensor) -> dict:
    """Max relative change of the logits under the exact 90° rotations of the input, per mode."""
    from .testing import equivariance_error

    actions = [(f"rot{90 * k}", (lambda x, k=k: torch.rot90(x, k, dims=(2, 3))), (lambda y: y)) for k in (1, 2, 3)]
    report = equivariance_error(model, images, actions)
    return {"train": report.max("train"), "eval": report.max("eval")}


@torch.no_grad()
def _predict(model, images: torch.Tensor, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """Logits on the CPU, computed on ``device`` (the model returns to the CPU)."""
    was = model.training
    model.eval().to(device)
    try:
        return torch.cat([model(chunk.to(device)).cpu() for chunk in images.split(256)])
    finally:
        model.train(was).cpu()


def _first(dataset, limit: Optional[int]):
    """The first ``limit`` samples of a ``TensorDataset`` (all with ``None``)."""
    if limit is None:
        return dataset
    return torch.utils.data.TensorDataset(*(t[:limit] for t in dataset.tensors))


def _images(config: DemoConfig):
    """``(train, test, source)``: the bundled rotated digits or the images at ``config.data``, with the data
    options of the config (``TensorDataset`` s)."""
    from .data import image_dataset, rotated_digits

    if config.data:
        options = dict(rotations="c4", seed=config.seed, test_fraction=config.test_fraction)
        train_set, source = image_dataset(config.data, "train", limit=config.train_limit, **options)
        test_set, _ = image_dataset(config.data, "test", limit=config.test_limit, **options)
        return train_set, test_set, source + ", rotated by multiples of 90°"
    sets = [_first(rotated_digits(split, rotations="c4", seed=config.seed, test_fraction=config.test_fraction), limit)
            for split, limit in (("train", config.train_limit), ("test", config.test_limit))]
    return sets[0], sets[1], "rotated digits (C4)"


def _train_target(config: DemoConfig, train_loader, images, size: int, in_channels: int, device):
    """``(target, logits on images, seconds)``: the C4-steerable target trained on ``train_loader``."""
    from .models import steerable_cnn, train_classifier

    start = time.perf_counter()
    target = steerable_cnn("c4", channels=config.target_channels, input_size=size, in_channels=in_channels)
    train_classifier(target.to(device), train_loader, epochs=config.target_epochs, lr=config.target_lr,
                     progress=config.progress, device=device)
    return target, _predict(target, images, device), time.perf_counter() - start


def _find_ticket(config: DemoConfig, target, train_loader, images, size: int, in_channels: int, device):
    """``(ticket or None, network, certificate or None, kept, total)``: the constructed ticket (its compact
    network) or the searched supermask network (saved as a ticket later, with its accuracy)."""
    if config.method == "construct":
        from .construct import construct

        ticket = construct(target, images, tol=config.tol, seed=config.seed, input_nonnegative=True,
                           device=device, progress=config.progress)
        certificate = ticket.certificate
        return ticket, ticket.compiled, certificate, certificate.kept_coefficients, certificate.random_coefficients
    from . import nn as slt_nn
    from .masks import count_masks
    from .models import steerable_cnn
    from .search import train_scores

    network = steerable_cnn("c4", channels=config.ticket_channels, input_size=size, in_channels=in_channels)
    slt_nn.supermask(network, sparsity=config.sparsity, seed=config.seed)
    train_scores(network.to(device), train_loader, epochs=config.search_epochs, lr=config.search_lr,
                 optimizer="adam", progress=config.progress)
    network.cpu()
    counts = count_masks(slt_nn.masks_of(network))
    return None, network, None, counts.kept, counts.total


def _log_ticket(log, certificate, ticket_acc: float, agreement: float, max_error: float,
                error: dict, kept: int, total: int, seconds: float) -> None:
    """The ticket's lines of the demo's report."""
    how = "pruned by Subset-Sum" if certificate is not None else "supermask search"
    log(f"ticket  random C4 network, {how}: held-out accuracy {ticket_acc:.4f}, agreement with the target "
        f"{agreement:.4f}, max |logit error| {max_error:.2e} ({seconds:.0f} s, no weight trained)")
    log(f"ticket  kept {kept}/{total} random coefficients (sparsity {1 - kept / total:.3f})"
        + (f"; the target has {certificate.target_coefficients}; any network that can be pruned to every "
           f"such target needs >= {certificate.lower_bound:.0f} (Pensia/Ferbach lower bound)"
           if certificate is not None else ""))
    if certificate is not None:
        bound = certificate.bound
        log(f"ticket  certified sup error over ||x|| <= {certificate.input_radius:.2f}: "
            + (f"{bound:.3g}" if bound is not None else f"unavailable ({certificate.bound_note})"))
    log(f"ticket  equivariance error under 90° rotations: train mode {error['train']:.1e}, "
        f"eval mode {error['eval']:.1e}")


def _save(config: DemoConfig, out: Path, target, ticket, network, result: dict, images, log) -> None:
    """The target, the ticket (a searched one made a ticket here) and ``result.json`` in ``out``."""
    from .models import save_model

    out.mkdir(parents=True, exist_ok=True)
    save_model(target, out / "target.pt")
    if ticket is None:
        from .search import search_ticket

        ticket = search_ticket(network, config.seed, "signed_constant",
                               metadata={"test_accuracy": result["ticket_accuracy"]}, probe=(images[:2],))
    ticket.save(out / "ticket.pt")
    (out / "result.json").write_text(json.dumps(result, indent=2))
    log(f"saved target.pt, the ticket (seed {config.seed} + masks) and result.json to {out}/")


def run_demo(config: DemoConfig = DemoConfig(), log=print) -> dict:
    if config.method not in ("construct", "search"):
        raise ValueError(f"demo: method must be 'construct' or 'search', got {config.method!r}")
    device = resolve_device(config.device, "demo: device")
    torch.manual_seed(config.seed)
    train_set, test_set, source = _images(config)
    size, in_channels = train_set.tensors[0].shape[-1], train_set.tensors[0].shape[1]
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                               generator=generator)
    images, labels = test_set.tensors
    log(f"{source}: {len(train_set)} train / {len(test_set)} held-out images, "
        f"{tuple(images.shape[1:])}")

    target, target_logits, target_seconds = _train_target(config, train_loader, images, size, in_channels, device)
    target_acc = float((target_logits.argmax(1) == labels).float().mean())
    seconds = {"target": target_seconds}
    log(f"target  C4-CNN {tuple(config.target_channels)}: held-out accuracy {target_acc:.4f} "
        f"({sum(p.numel() for p in target.parameters())} trained parameters, {seconds['target']:.0f} s)")

    start = time.perf_counter()
    result = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}}
    ticket, network, certificate, kept, total = _find_ticket(config, target, train_loader, images, size,
                                                             in_channels, device)
    if certificate is not None:
        result["certificate"] = certificate.as_dict()
    seconds["ticket"] = time.perf_counter() - start
    ticket_logits = _predict(network, images, device)
    ticket_acc = float((ticket_logits.argmax(1) == labels).float().mean())
    agreement = float((ticket_logits.argmax(1) == target_logits.argmax(1)).float().mean())
    max_error = float((ticket_logits - target_logits).abs().max())
    error = _rotation_error(network, images[:64])
    _log_ticket(log, certificate, ticket_acc, agreement, max_error, error, kept, total, seconds["ticket"])
    result.update({
        "method": config.method,
        "target_accuracy": target_acc,
        "ticket_accuracy": ticket_acc,
        "prediction_agreement": agreement,
        "max_output_error": max_error,
        "chance": 0.1,
        "coefficients_total": total,
        "coefficients_kept": kept,
        "sparsity": 1 - kept / total,
        "equivariance_error": error,
        "seconds": seconds,
    })
    if config.out:
        _save(config, Path(config.out), target, ticket, network, result, images, log)
    return result
