"""The ticket of a search: the same kind of artifact as the construction's :class:`~equislt.construct.Ticket`.

Seed + architecture + bit-packed masks regenerate the pruned random network bit-exactly: the architecture
factory is called under ``torch.manual_seed(seed)`` and the masked layers' coefficients are re-drawn from the
seed per layer path (:func:`equislt.nn.supermask`). Batch-norm running statistics are estimated (not trained)
with the final mask; they are saved with the ticket (a few numbers per channel) so that the regenerated network
computes exactly what the search evaluated.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from ..masks import Supermask
from ..masks._io import pack_all, unpack_all
from ..nn import coefficient_layers, export, freeze, load_masks, masks_of, supermask

__all__ = ["SearchTicket", "load_ticket", "random_network", "mask_digest"]

FORMAT = "equislt.search-ticket/1"


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


@dataclass
class SearchTicket:
    """A strong lottery ticket found by supermask search: the pruned random ``network`` and what regenerates it.

    :meth:`save` writes the seed, the architecture factory and its arguments, the weight init, the masked layer
    paths, the bit-packed masks (1 bit per random coefficient), the batch-norm statistics and whether the kept
    coefficients are binarised (``biprop``, recomputed from seed and masks); :meth:`load`
    regenerates the network; :meth:`export` gives a plain model with the zeros folded in.
    """

    network: nn.Module
    seed: int
    architecture: dict
    weight_init: str = "signed_constant"
    masked: List[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    biprop: bool = False

    def __call__(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    def masks(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return masks_of(self.network)

    def save(self, path) -> None:
        payload = {"format": FORMAT, "seed": self.seed, "architecture": self.architecture,
                   "weight_init": self.weight_init, "masked": list(self.masked),
                   "masks": pack_all(masks_of(self.network)), "batchnorm": batchnorm_state(self.network),
                   "biprop": self.biprop, "metadata": self.metadata}
        torch.save(payload, Path(path))

    @classmethod
    def from_network(cls, network: nn.Module, seed: int, weight_init: str, metadata: Optional[dict] = None,
                     biprop: bool = False):
        architecture = getattr(network, "equislt_architecture", None)
        if architecture is None:
            raise ValueError("SearchTicket: the network records no architecture factory (equislt_architecture)")
        masked = [p for p, layer in coefficient_layers(network) if hasattr(layer, "mask")]
        return cls(network, seed, dict(architecture), weight_init, masked, dict(metadata or {}), biprop)

    @classmethod
    def load(cls, path) -> "SearchTicket":
        payload = torch.load(Path(path), weights_only=False)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"SearchTicket.load: {path} is not an equislt search ticket ({FORMAT})")
        network = random_network(payload["architecture"], payload["seed"], payload["masked"],
                                 weight_init=payload["weight_init"])
        load_masks(network, unpack_all(payload["masks"]))
        if payload.get("biprop"):
            from ._biprop import bake_biprop

            bake_biprop(network)
        load_batchnorm_state(network, payload["batchnorm"])
        return cls(network.eval(), payload["seed"], payload["architecture"], payload["weight_init"],
                   payload["masked"], payload.get("metadata", {}), bool(payload.get("biprop")))

    def sparsity(self) -> float:
        masks = masks_of(self.network)
        total = sum(m.numel() for named in masks.values() for m in named.values())
        kept = sum(int(m.sum()) for named in masks.values() for m in named.values())
        return 1.0 - kept / total

    def export(self) -> nn.Module:
        """A plain model with identical outputs (:func:`equislt.nn.export`; biprop coefficients baked in)."""
        network = self.network
        if self.biprop and any(isinstance(getattr(l, "mask", None), Supermask) for _, l in coefficient_layers(network)):
            from ._biprop import bake_biprop

            was = network.training
            network.eval()
            network = bake_biprop(freeze(copy.deepcopy(network)))
            self.network.train(was)
        return export(network).eval()


def load_ticket(path):
    """Load a ticket written by a search (:class:`SearchTicket`) or by the construction (``Ticket``)."""
    payload = torch.load(Path(path), weights_only=False)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == FORMAT:
        return SearchTicket.load(path)
    if isinstance(fmt, str) and fmt.startswith("equislt.ticket/"):
        from ..construct import Ticket

        return Ticket.load(path)
    raise ValueError(f"load_ticket: {path} is not an equislt ticket")
