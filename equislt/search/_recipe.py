"""``SearchRecipe``: how a searched ticket is made again (the artifact is :class:`equislt.Ticket`).

Seed + architecture + bit-packed masks regenerate the pruned random network bit-exactly: the architecture's
registered factory is called under ``torch.manual_seed(seed)`` and the masked layers' coefficients are re-drawn
from the seed per layer path (:func:`equislt.nn.supermask`). Batch-norm running statistics are estimated (not
trained) with the final mask; they are saved with the ticket (a few numbers per channel) so that the regenerated
network computes exactly what the search evaluated. Biprop coefficients are a function of the regenerated
coefficients and the mask, and are recomputed after loading.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import nn

from ..masks import Supermask
from ..models import Architecture
from ..nn import clone_module, coefficient_layers, export, freeze, load_masks, parameter_masks, supermask
from ..ticket import Recipe, Ticket

__all__ = ["SearchRecipe", "random_network", "search_ticket"]


def random_network(architecture: Architecture, seed: int, masked: Optional[List[str]] = None, sparsity: float = 0.0,
                   scope: str = "layer", weight_init: str = "signed_constant",
                   include: str = "coefficients") -> nn.Module:
    """The random supermask network of a search: ``architecture`` built under ``seed``, then
    :func:`~equislt.nn.supermask` on the layers whose paths are in ``masked`` (all supported layers if None),
    and on every other parameter with ``include="all"``."""
    if not isinstance(architecture, Architecture):
        architecture = Architecture.from_dict(architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = architecture.build()
    paths = None if masked is None else set(masked)
    return supermask(model, sparsity=sparsity, scope=scope, seed=seed, weight_init=weight_init,
                     select=None if paths is None else (lambda p, _: p in paths), include=include)


def batchnorm_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The running statistics of every batch-norm module (the only non-random state a ticket needs)."""
    state = {}
    for path, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None:
                    state[f"{path}.{name}" if path else name] = buffer.detach().clone()
    return state


def load_batchnorm_state(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Copy saved batch-norm statistics into ``model``; every key must name a buffer of the same shape."""
    with torch.no_grad():
        for key, value in state.items():
            path, _, name = key.rpartition(".")
            try:
                buffer = getattr(model.get_submodule(path) if path else model, name)
            except AttributeError:
                raise ValueError(f"batch-norm state {key!r}: the network has no such buffer") from None
            if not torch.is_tensor(value) or buffer.shape != value.shape:
                raise ValueError(f"batch-norm state {key!r}: expected a tensor of shape {list(buffer.shape)}, got "
                                 f"{list(value.shape) if torch.is_tensor(value) else type(value).__name__}")
            buffer.copy_(value)


@dataclass
class SearchRecipe(Recipe):
    """A searched ticket (``Ticket.method == "search"``): which layers are masked (and, with ``include="all"``,
    which modules have masked parameters), how their random coefficients were drawn, and whether kept
    coefficients are binarised (biprop)."""

    kind = "search"

    masked: List[str] = field(default_factory=list)
    weight_init: str = "signed_constant"
    biprop: bool = False
    include: str = "coefficients"

    def to_dict(self) -> dict:
        return {"weight_init": self.weight_init, "masked": list(self.masked), "biprop": bool(self.biprop),
                "include": self.include}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchRecipe":
        return cls(masked=list(data["masked"]), weight_init=data["weight_init"], biprop=bool(data.get("biprop")),
                   include=data.get("include", "coefficients"))

    def check(self, seed, architecture, masks, state, target, where) -> None:
        """The masks must belong to exactly the masked layers (their shapes are checked when the network is
        regenerated), and the state must be batch-norm statistics."""
        if set(masks) != set(self.masked):
            raise ValueError(f"{where}: masks for {sorted(set(masks) - set(self.masked)) or 'no other layer'} and "
                             f"none for {sorted(set(self.masked) - set(masks)) or 'no layer'}: not the masked layers "
                             "the recipe names")
        if set(state) - {"batchnorm"} or not isinstance(state.get("batchnorm", {}), dict):
            raise ValueError(f"{where}: a searched ticket's state holds only batch-norm statistics, got "
                             f"{sorted(state)}")

    def state(self, network: nn.Module) -> dict:
        """Batch-norm statistics are estimated (not trained) with the final mask: the ticket keeps them."""
        return {"batchnorm": batchnorm_state(network)}

    def regenerate(self, seed, architecture, masks, state, target=None) -> nn.Module:
        if architecture is None:
            raise ValueError("Ticket.load: this searched ticket records no architecture")
        network = load_masks(random_network(architecture, seed, self.masked, weight_init=self.weight_init,
                                            include=self.include), masks)
        if self.biprop:
            from ._biprop import bake_biprop

            bake_biprop(network)
        load_batchnorm_state(network, state.get("batchnorm", {}))
        return network

    def export(self, network: nn.Module) -> nn.Module:
        """A plain model with identical outputs (:func:`equislt.nn.export`; biprop coefficients baked in)."""
        if self.biprop and any(isinstance(getattr(layer, "mask", None), Supermask)
                               for _, layer in coefficient_layers(network)):
            from ._biprop import bake_biprop

            was = network.training
            network.eval()
            baked = bake_biprop(freeze(clone_module(network)))
            network.train(was)
            network = baked
        return export(network).eval()


def search_ticket(network: nn.Module, seed: int, weight_init: str, metadata: Optional[dict] = None,
                  biprop: bool = False, probe=None) -> Ticket:
    """The :class:`~equislt.Ticket` of a searched ``network`` (method ``"search"``); ``probe``: a few inputs (call
    arguments of the network) whose outputs the saved ticket keeps as its fingerprint."""
    architecture = Architecture.of(network)
    if architecture is None:
        raise ValueError("search ticket: the network records no architecture (build it from a registered factory: "
                         "equislt.register_model)")
    masked = [p for p, layer in coefficient_layers(network) if hasattr(layer, "mask")]
    with_parameters = list(dict.fromkeys(path for path, _, _ in parameter_masks(network)))
    include = "all" if with_parameters else "coefficients"
    return Ticket.of_network(network, seed, SearchRecipe(masked + with_parameters, weight_init, bool(biprop), include),
                             architecture=architecture, metadata=dict(metadata or {}), probe=probe)
