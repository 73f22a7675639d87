"""``ConstructRecipe``: how a constructed ticket is made again (the artifact is :class:`equislt.Ticket`).

The recipe is one :class:`~equislt.construct.LayerPlan` per replaced layer: with the seed and the target's
architecture it regenerates the random network bit for bit, and the masks prune it. The ticket runs in its
compact form (:mod:`._compile`), which the same data rebuilds without the random network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from torch import nn

from ..models import Architecture
from ..nn import export, load_masks
from ..ticket import Recipe
from ._build import LayerBlocks, build_random_network
from ._certificate import Certificate
from ._compile import compact_network
from ._layout import LayerPlan
from .families import family_of

__all__ = ["ConstructRecipe"]


def _target(architecture: Optional[Architecture], target: Optional[nn.Module]) -> nn.Module:
    if target is not None:
        return target
    if architecture is None:
        raise ValueError("Ticket: this ticket records no architecture; load it with target=<a model with the "
                         "target's architecture>")
    return architecture.build().eval()


@dataclass
class ConstructRecipe(Recipe):
    """The plans of a constructed ticket (``Ticket.method == "construct"``)."""

    kind = "construct"
    certificate_class = Certificate
    uses_target = True

    plans: List[LayerPlan] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"plans": [plan.as_dict() for plan in self.plans]}

    @classmethod
    def from_dict(cls, data: dict) -> "ConstructRecipe":
        return cls([LayerPlan.from_dict(plan) for plan in data["plans"]])

    def regenerate(self, seed, architecture, masks, state, target=None) -> nn.Module:
        """The literal pruned random network (each replaced layer a :class:`~equislt.construct.LiftMix`)."""
        return load_masks(build_random_network(_target(architecture, target), self.plans, seed), masks)

    def compact(self, seed, architecture, masks, state, target=None) -> nn.Module:
        """Each pruned block as ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with layers of the target's type and basis."""
        return compact_network(_target(architecture, target), self.plans, seed, masks)

    def check(self, seed, architecture, masks, state, target, where) -> None:
        """The masks must be exactly the lift, mix and pooled-bias masks of every planned block, shaped as the
        target's layers and the plans make them (computed without building the blocks)."""
        model = _target(architecture, target)
        expected = {}
        for plan in self.plans:
            try:
                layer = model.get_submodule(plan.path)
            except AttributeError:
                raise ValueError(f"{where}: the target has no layer {plan.path!r} (a wrong target= model?)") from None
            family = family_of(layer)
            if family is None:
                raise ValueError(f"{where}: layer {plan.path} of the target ({type(layer).__name__}) is not one the "
                                 "construction replaces (a wrong target= model?)")
            lift, mix = LayerBlocks.of(layer, family).tensors(plan.layout(family.n_input_fields(layer)))
            expected[f"{plan.path}.lift"] = {lift.name: lift.shape}
            expected[f"{plan.path}.mix"] = {mix.name: mix.shape}
            if plan.bias_pool:
                expected[f"{plan.path}.bias"] = {"bias": (family.bias_expansion(layer).shape[1], plan.bias_pool)}
        found = {path: {name: tuple(m.shape) for name, m in named.items()} for path, named in masks.items()}
        if found != expected:
            wrong = sorted(set(found) ^ set(expected)) or sorted(p for p in found if found[p] != expected.get(p))
            raise ValueError(f"{where}: the masks do not fit the planned blocks of this target ({wrong[:5]}): a "
                             "wrong target= model, or damaged masks")

    def export(self, network: nn.Module) -> nn.Module:
        return export(network).eval()
