"""The Ticket: seed + plan + packed masks (+ certificate), which regenerate the pruned random network."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from ..masks._io import pack_all, unpack_all
from ..nn import load_masks, masks_of
from ._build import LayerPlan, build_random_network
from ._certificate import Certificate

__all__ = ["Ticket"]

FORMAT = "equislt.ticket/2"  # /2: per-input-field, prefix-stable random draws and per-field widths


@dataclass
class Ticket:
    """A strong lottery ticket: the pruned random ``network`` and what regenerates it.

    Saved as the seed, the per-layer plan, the bit-packed masks (1 bit per random coefficient), the
    certificate and, when the target was built by a known factory, that factory and its arguments
    (``architecture``); :meth:`load` rebuilds the random network from the seed and applies the masks.
    """

    network: nn.Module
    seed: int
    plans: List[LayerPlan]
    certificate: Certificate
    architecture: Optional[dict] = None
    masks: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict)

    def __call__(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    def save(self, path) -> None:
        payload = {
            "format": FORMAT,
            "seed": self.seed,
            "plans": [p.as_dict() for p in self.plans],
            "masks": pack_all(masks_of(self.network)),
            "certificate": self.certificate.as_dict(),
            "architecture": self.architecture,
        }
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path, target: Optional[nn.Module] = None) -> "Ticket":
        """Regenerate a saved ticket. ``target``: a model with the target's architecture (its weights are not
        used); defaults to the saved ``architecture`` factory."""
        payload = torch.load(Path(path), weights_only=False)
        if isinstance(payload, dict) and payload.get("format") == "equislt.ticket/1":
            raise ValueError(f"Ticket.load: {path} was saved by an older equislt (equislt.ticket/1) whose random "
                             "draws differ from this version's: construct the ticket again")
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"Ticket.load: {path} is not an equislt ticket ({FORMAT})")
        architecture = payload.get("architecture")
        if target is None:
            if architecture is None:
                raise ValueError("Ticket.load: this ticket records no architecture factory; pass target=<a model "
                                 "with the target's architecture>")
            from ..models._io import build_from_architecture

            target = build_from_architecture(architecture)
        plans = [LayerPlan(**p) for p in payload["plans"]]
        network = build_random_network(target, plans, payload["seed"])
        masks = unpack_all(payload["masks"])
        load_masks(network, masks)
        return cls(network=network.eval(), seed=payload["seed"], plans=plans,
                   certificate=Certificate.from_dict(payload["certificate"]), architecture=architecture)

    def compile(self) -> nn.Module:
        """A target-sized network with the same function: each pruned block ``g σ(M1·) M2`` becomes
        ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with ``W^±`` layers of the target's type and basis whose
        coefficients are the chosen subset sums (``W⁻`` is dropped when the input is non-negative)."""
        from ._compile import compile_network

        return compile_network(self.network, self.plans)

    def sparsity(self) -> float:
        masks = masks_of(self.network)
        total = sum(m.numel() for named in masks.values() for m in named.values())
        kept = sum(int(m.sum()) for named in masks.values() for m in named.values())
        return 1.0 - kept / total


def architecture_of(target: nn.Module) -> Optional[dict]:
    """``{"factory": "module:function", "kwargs": {...}}`` if ``target`` records how it was built."""
    spec = getattr(target, "equislt_architecture", None)
    return dict(spec) if spec else None
