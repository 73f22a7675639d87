"""The main job: a C4-steerable target on rotated digits vs a supermask ticket in a random wider copy.

1. train a small C4-steerable CNN (the target) on scikit-learn's bundled digits, rotated by multiples of 90°;
2. build a wider copy with fresh random coefficients, swap in supermask layers and learn only the scores
   (edge-popup): the ticket is the random network's seed plus the coefficient masks;
3. report target vs ticket accuracy, sparsity, and the ticket's equivariance error under exact 90° rotations.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    seed: int = 0
    target_channels: tuple = (8, 16)
    ticket_channels: tuple = (24, 48)
    target_epochs: int = 6
    search_epochs: int = 6
    sparsity: float = 0.5
    batch_size: int = 32
    target_lr: float = 1e-2
    search_lr: float = 0.01
    search_optimizer: str = "adam"
    out: Optional[str] = "runs/demo"
    progress: bool = True


def _rotation_error(model, images: torch.Tensor) -> dict:
    """Max relative change of the logits under the exact 90° rotations of the input, per mode."""
    from .testing import equivariance_error

    actions = [(f"rot{90 * k}", (lambda x, k=k: torch.rot90(x, k, dims=(2, 3))), (lambda y: y)) for k in (1, 2, 3)]
    report = equivariance_error(model, images, actions)
    return {"train": report.max("train"), "eval": report.max("eval")}


def run_demo(config: DemoConfig = DemoConfig(), log=print) -> dict:
    from . import nn as enn_slt
    from .data import rotated_digits
    from .models import accuracy, steerable_cnn, train_classifier
    from .search import train_scores

    torch.manual_seed(config.seed)
    train_set = rotated_digits("train", rotations="c4", seed=config.seed)
    test_set = rotated_digits("test", rotations="c4", seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                               generator=generator)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=256)
    log(f"rotated digits (C4): {len(train_set)} train / {len(test_set)} test images, "
        f"{tuple(train_set.tensors[0].shape[1:])}")

    start = time.perf_counter()
    target = steerable_cnn("c4", channels=config.target_channels)
    train_classifier(target, train_loader, epochs=config.target_epochs, lr=config.target_lr,
                     progress=config.progress)
    target_acc = accuracy(target, test_loader)
    target_time = time.perf_counter() - start
    n_target = sum(p.numel() for p in target.parameters())
    log(f"target  C4-CNN {config.target_channels}: test accuracy {target_acc:.3f} "
        f"({n_target} trained parameters, {target_time:.0f} s)")

    start = time.perf_counter()
    ticket = steerable_cnn("c4", channels=config.ticket_channels)
    enn_slt.supermask(ticket, sparsity=config.sparsity, seed=config.seed)
    train_scores(ticket, train_loader, epochs=config.search_epochs, lr=config.search_lr,
                 optimizer=config.search_optimizer, progress=config.progress)
    ticket_acc = accuracy(ticket, test_loader)
    search_time = time.perf_counter() - start
    masks = enn_slt.masks_of(ticket)
    total = sum(m.numel() for named in masks.values() for m in named.values())
    kept = sum(int(m.sum()) for named in masks.values() for m in named.values())
    error = _rotation_error(ticket, test_set.tensors[0][:64])
    log(f"ticket  random C4-CNN {config.ticket_channels}, supermask: test accuracy {ticket_acc:.3f}, "
        f"kept {kept}/{total} coefficients (sparsity {1 - kept / total:.2f}), no weight trained ({search_time:.0f} s)")
    log(f"ticket  equivariance error under 90° rotations: train mode {error['train']:.1e}, "
        f"eval mode {error['eval']:.1e}")

    result = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "target_accuracy": target_acc,
        "ticket_accuracy": ticket_acc,
        "chance": 0.1,
        "coefficients_total": total,
        "coefficients_kept": kept,
        "sparsity": 1 - kept / total,
        "equivariance_error": error,
        "seconds": {"target": target_time, "search": search_time},
    }
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        enn_slt.save_masks(ticket, out / "ticket_masks.pt")
        (out / "result.json").write_text(json.dumps(result, indent=2))
        log(f"saved the ticket's masks (seed {config.seed}) and result.json to {out}/")
    return result
