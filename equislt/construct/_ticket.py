"""How a constructed ticket regenerates, compiles and exports (the artifact is :class:`equislt.ticket.Ticket`)."""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..masks._io import unpack_all
from ..nn import export, load_masks
from ..ticket import Ticket
from ._build import LayerPlan, build_random_network
from ._certificate import Certificate

__all__ = ["Ticket", "architecture_of"]


def dump_recipe(recipe: dict) -> dict:
    return {"plans": [p.as_dict() for p in recipe["plans"]]}


def load_recipe(data: dict) -> dict:
    return {"plans": [LayerPlan(**p) for p in data["plans"]]}


def extra_state(ticket) -> dict:
    return {}


def load_certificate(payload: dict) -> Optional[Certificate]:
    return Certificate.from_dict(payload["certificate"]) if payload.get("certificate") else None


def regenerate(payload: dict, recipe: dict, target: Optional[nn.Module]) -> nn.Module:
    if target is None:
        architecture = payload.get("architecture")
        if architecture is None:
            raise ValueError("Ticket.load: this ticket records no architecture factory; pass target=<a model "
                             "with the target's architecture>")
        from ..models._io import build_from_architecture

        target = build_from_architecture(architecture)
    network = build_random_network(target, recipe["plans"], payload["seed"])
    load_masks(network, unpack_all(payload["masks"]))
    return network


def compile_ticket(ticket) -> nn.Module:
    """Each pruned block ``c (M2 σ(M1 ·) + bias)`` becomes ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with ``W^±``
    layers of the target's type and basis whose coefficients are the chosen subset sums (``W⁻`` is dropped
    when the input is non-negative)."""
    from ._compile import compile_network

    return compile_network(ticket.network, ticket.plans)


def export_ticket(ticket) -> nn.Module:
    return export(ticket.network).eval()


def architecture_of(target: nn.Module) -> Optional[dict]:
    """``{"factory": "module:function", "kwargs": {...}}`` if ``target`` records how it was built."""
    spec = getattr(target, "equislt_architecture", None)
    return dict(spec) if spec else None
