"""The ticket of a search: an :class:`equislt.ticket.Ticket` with method ``"search"``, as the construction's.

Seed + architecture + bit-packed masks regenerate the pruned random network bit-exactly: the architecture
factory is called under ``torch.manual_seed(seed)`` and the masked layers' coefficients are re-drawn from the
seed per layer path (:func:`equislt.nn.supermask`). Batch-norm running statistics are estimated (not trained)
with the final mask; they are saved with the ticket (a few numbers per channel) so that the regenerated network
computes exactly what the search evaluated.
"""
from __future__ import annotations

import copy
import hashlib
from typing import Dict, List, Optional

import torch
from torch import nn

from ..masks import Supermask
from ..masks._io import unpack_all
from ..nn import coefficient_layers, export, freeze, load_masks, supermask
from ..ticket import Ticket

__all__ = ["SearchTicket", "load_ticket", "random_network", "mask_digest", "search_ticket"]



def random_network(architecture: dict, seed: int, masked: Optional[List[str]] = None, sparsity: float = 0.0,
                   scope: str = "layer", weight_init: str = "signed_constant") -> nn.Module:
    """The random supermask network of a search: ``architecture`` built under ``seed``, then
    :func:`~equislt.nn.supermask` on the layers whose paths are in ``masked`` (all supported layers if None)."""
    from ..models._io import build_from_architecture

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_from_architecture(architecture)
    model.equislt_architecture = dict(architecture)
    paths = None if masked is None else set(masked)
    return supermask(model, sparsity=sparsity, scope=scope, seed=seed, weight_init=weight_init,
                     select=None if paths is None else (lambda p, _: p in paths))


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
    with torch.no_grad():
        for key, value in state.items():
            path, _, name = key.rpartition(".")
            getattr(model.get_submodule(path) if path else model, name).copy_(value)


def mask_digest(masks: Dict[str, Dict[str, torch.Tensor]]) -> str:
    """SHA-256 of the masks (layer path, name, shape, bits) in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(masks):
        for name in sorted(masks[path]):
            m = masks[path][name].to(torch.bool).contiguous()
            digest.update(f"{path}/{name}/{tuple(m.shape)}".encode())
            digest.update(m.numpy().tobytes())
    return digest.hexdigest()


def search_ticket(network: nn.Module, seed: int, weight_init: str, metadata: Optional[dict] = None,
                  biprop: bool = False) -> Ticket:
    """The :class:`~equislt.ticket.Ticket` of a searched ``network`` (method ``"search"``)."""
    architecture = getattr(network, "equislt_architecture", None)
    if architecture is None:
        raise ValueError("search ticket: the network records no architecture factory (equislt_architecture)")
    masked = [p for p, layer in coefficient_layers(network) if hasattr(layer, "mask")]
    recipe = {"weight_init": weight_init, "masked": masked, "biprop": bool(biprop)}
    return Ticket(network=network, seed=seed, method="search", recipe=recipe, architecture=dict(architecture),
                  metadata=dict(metadata or {}))


SearchTicket = Ticket  # one artifact for both methods; the name stays for readability in search code
load_ticket = Ticket.load  # loads a searched or a constructed ticket


# -- the "search" method of equislt.ticket.Ticket -------------------------------------------------------------
def dump_recipe(recipe: dict) -> dict:
    return dict(recipe)


def load_recipe(data: dict) -> dict:
    return dict(data)


def extra_state(ticket) -> dict:
    """Batch-norm statistics are estimated (not trained) with the final mask: the ticket keeps them."""
    return {"batchnorm": batchnorm_state(ticket.network)}


def load_certificate(payload: dict):
    return None


def regenerate(payload: dict, recipe: dict, target: Optional[nn.Module] = None) -> nn.Module:
    network = random_network(payload["architecture"], payload["seed"], recipe["masked"],
                             weight_init=recipe["weight_init"])
    load_masks(network, unpack_all(payload["masks"]))
    if recipe.get("biprop"):
        from ._biprop import bake_biprop

        bake_biprop(network)
    load_batchnorm_state(network, payload["state"]["batchnorm"])
    return network


def export_ticket(ticket) -> nn.Module:
    """A plain model with identical outputs (:func:`equislt.nn.export`; biprop coefficients baked in)."""
    network = ticket.network
    if ticket.recipe.get("biprop") and any(isinstance(getattr(l, "mask", None), Supermask)
                                           for _, l in coefficient_layers(network)):
        from ._biprop import bake_biprop

        was = network.training
        network.eval()
        network = bake_biprop(freeze(copy.deepcopy(network)))
        ticket.network.train(was)
    return export(network).eval()


compile_ticket = export_ticket
