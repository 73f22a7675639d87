"""``ConstructRecipe``: how a constructed ticket is made again (the artifact is :class:`equislt.Ticket`).

The recipe is one :class:`~equislt.construct.LayerPlan` per replaced layer: with the seed and the target's
architecture it regenerates the random network bit for bit, and the masks prune it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from torch import nn

from ..models import Architecture
from ..nn import export, load_masks
from ..ticket import Recipe
from ._build import build_random_network
from ._certificate import Certificate
from ._compile import compile_network
from ._layout import LayerPlan

__all__ = ["ConstructRecipe"]


@dataclass
class ConstructRecipe(Recipe):
    """The plans of a constructed ticket (``Ticket.method == "construct"``)."""

    kind = "construct"
    certificate_class = Certificate

    plans: List[LayerPlan] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"plans": [plan.as_dict() for plan in self.plans]}

    @classmethod
    def from_dict(cls, data: dict) -> "ConstructRecipe":
        return cls([LayerPlan.from_dict(plan) for plan in data["plans"]])

    def regenerate(self, seed, architecture: Optional[Architecture], masks, state, target=None) -> nn.Module:
        if target is None:
            if architecture is None:
                raise ValueError("Ticket.load: this ticket records no architecture; pass target=<a model with the "
                                 "target's architecture>")
            target = architecture.build()
        network = build_random_network(target, self.plans, seed)
        return load_masks(network, masks)

    def compile(self, network: nn.Module) -> nn.Module:
        """Each pruned block ``c (M2 σ(M1 ·) + bias)`` becomes ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with layers of
        the target's type and basis (:mod:`equislt.construct._compile`)."""
        return compile_network(network, self.plans)

    def export(self, network: nn.Module) -> nn.Module:
        return export(network).eval()
