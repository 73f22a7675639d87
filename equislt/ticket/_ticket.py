"""The Ticket: the one artifact that both the construction and the search produce.

A ticket is the pruned random ``network`` plus what regenerates it bit-exactly: the ``seed``, the target's
``architecture`` factory (when it records one), a method-specific ``recipe`` (the construction's per-layer
plans; the search's masked layers and weight init), and the bit-packed masks (1 bit per random
coefficient). The construction adds its certificate. The method's module (``equislt.construct._ticket``
or ``equislt.search._ticket``) knows how to regenerate, compile and export its networks.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..masks._io import pack_all
from ..nn import masks_of

__all__ = ["Ticket", "FORMAT"]

FORMAT = "equislt.ticket/2"  # /2: per-input-field, prefix-stable random draws; one format for both methods
_METHODS = {"construct": "equislt.construct._ticket", "search": "equislt.search._ticket"}


def _method(name: str):
    if name not in _METHODS:
        raise ValueError(f"Ticket: unknown method {name!r} (known: {sorted(_METHODS)})")
    return importlib.import_module(_METHODS[name])


@dataclass
class Ticket:
    """A strong lottery ticket (see module docstring). Call it like the network it holds."""

    network: nn.Module
    seed: int
    method: str
    recipe: Dict[str, Any]
    architecture: Optional[dict] = None
    certificate: Any = None  # the construction's Certificate; None for searched tickets
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    @property
    def plans(self):
        """The construction's per-layer plans."""
        return self.recipe["plans"]

    def masks(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return masks_of(self.network)

    def sparsity(self) -> float:
        """Fraction of the random network's coefficients pruned."""
        masks = self.masks()
        total = sum(m.numel() for named in masks.values() for m in named.values())
        kept = sum(int(m.sum()) for named in masks.values() for m in named.values())
        return 1.0 - kept / total

    def save(self, path) -> None:
        module = _method(self.method)
        payload = {
            "format": FORMAT,
            "method": self.method,
            "seed": self.seed,
            "architecture": self.architecture,
            "recipe": module.dump_recipe(self.recipe),
            "masks": pack_all(self.masks()),
            "certificate": self.certificate.as_dict() if self.certificate is not None else None,
            "metadata": self.metadata,
            "state": module.extra_state(self),
        }
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path, target: Optional[nn.Module] = None) -> "Ticket":
        """Regenerate a saved ticket (construction or search). ``target``: a model with the target's
        architecture, needed only when the ticket records no architecture factory."""
        payload = torch.load(Path(path), weights_only=False)
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt == "equislt.ticket/1":
            raise ValueError(f"Ticket.load: {path} was saved by an older equislt (equislt.ticket/1) whose random "
                             "draws differ from this version's: construct the ticket again")
        if fmt != FORMAT:
            raise ValueError(f"Ticket.load: {path} is not an equislt ticket ({FORMAT})")
        module = _method(payload["method"])
        recipe = module.load_recipe(payload["recipe"])
        network = module.regenerate(payload, recipe, target)
        return cls(network=network.eval(), seed=payload["seed"], method=payload["method"], recipe=recipe,
                   architecture=payload.get("architecture"), certificate=module.load_certificate(payload),
                   metadata=payload.get("metadata") or {})

    def compile(self) -> nn.Module:
        """A compact network with the same function (the construction folds each lift·mix block into
        target-sized layers; a searched ticket folds its masks into plain layers)."""
        return _method(self.method).compile_ticket(self)

    def export(self) -> nn.Module:
        """A plain torch model with the zeros folded in and identical outputs."""
        return _method(self.method).export_ticket(self)

    def __repr__(self) -> str:
        return (f"Ticket(method={self.method!r}, seed={self.seed}, sparsity={self.sparsity():.3f}, "
                f"architecture={(self.architecture or {}).get('factory')})")
