"""The Ticket: the one artifact that both the construction and the search produce.

A ticket is the pruned random ``network`` plus what regenerates it bit for bit: the ``seed``, the
:class:`~equislt.models.Architecture` the network was built from (when it records one), the method's
:class:`~equislt.ticket.Recipe` and the bit-packed masks (1 bit per random coefficient); the construction adds
its certificate. A ticket file holds plain data only (tensors, numbers, strings): loading it runs no code from
the file, and only registered factories can rebuild its architecture.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..masks import MaskCounts, count_masks, pack_all, unpack_all
from ..models import Architecture
from ..nn import masks_of
from ._recipe import CertificateLike, Recipe, recipe_class

__all__ = ["FORMAT", "Ticket"]

FORMAT = "equislt.ticket/3"  # /3: architectures by registered name; /2 (import paths) is still read
_OLD_FORMATS = {"equislt.ticket/1": "its random draws differ from this version's: construct the ticket again"}
_READABLE = ("equislt.ticket/2", FORMAT)


@dataclass
class Ticket:
    """A strong lottery ticket (see the module docstring). Call it like the network it holds."""

    network: nn.Module
    seed: int
    recipe: Recipe
    architecture: Optional[Architecture] = None
    certificate: Optional[CertificateLike] = None
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """``"construct"`` or ``"search"``: the :class:`Recipe` kind."""
        return self.recipe.kind

    def __call__(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    def masks(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return masks_of(self.network)

    def counts(self) -> MaskCounts:
        """Random coefficients kept and in all."""
        return count_masks(self.masks())

    def sparsity(self) -> float:
        """Fraction of the random network's coefficients pruned."""
        return self.counts().sparsity

    def save(self, path) -> None:
        payload = {
            "format": FORMAT,
            "method": self.method,
            "seed": int(self.seed),
            "architecture": self.architecture.to_dict() if self.architecture is not None else None,
            "recipe": self.recipe.to_dict(),
            "masks": pack_all(self.masks()),
            "certificate": self.certificate.as_dict() if self.certificate is not None else None,
            "metadata": self.metadata,
            "state": self.recipe.state(self.network),
        }
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path, target: Optional[nn.Module] = None) -> "Ticket":
        """Regenerate a saved ticket (construction or search). ``target``: a model with the target's
        architecture, needed only when the ticket records no architecture."""
        payload = torch.load(Path(path), weights_only=True)  # data only: never runs code from the file
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt in _OLD_FORMATS:
            raise ValueError(f"Ticket.load: {path} was saved by an older equislt ({fmt}): {_OLD_FORMATS[fmt]}")
        if fmt not in _READABLE:
            raise ValueError(f"Ticket.load: {path} is not an equislt ticket ({FORMAT})")
        kind = recipe_class(payload["method"])
        recipe = kind.from_dict(payload["recipe"])
        architecture = (Architecture.from_dict(payload["architecture"], where=f"{path}: architecture")
                        if payload.get("architecture") is not None else None)
        network = recipe.regenerate(payload["seed"], architecture, unpack_all(payload["masks"]),
                                    payload.get("state") or {}, target)
        certificate = payload.get("certificate")
        if certificate is not None and kind.certificate_class is not None:
            certificate = kind.certificate_class.from_dict(certificate)
        return cls(network=network.eval(), seed=payload["seed"], recipe=recipe, architecture=architecture,
                   certificate=certificate, metadata=payload.get("metadata") or {})

    def compile(self) -> nn.Module:
        """A compact network with the same function (the construction folds each lift·mix block into
        target-sized layers; a searched ticket folds its masks into plain layers)."""
        return self.recipe.compile(self.network)

    def export(self) -> nn.Module:
        """A plain torch model with the zeros folded in and identical outputs."""
        return self.recipe.export(self.network)

    def __repr__(self) -> str:
        factory = self.architecture.factory if self.architecture is not None else None
        return (f"Ticket(method={self.method!r}, seed={self.seed}, sparsity={self.sparsity():.3f}, "
                f"architecture={factory})")
