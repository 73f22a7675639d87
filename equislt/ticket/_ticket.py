"""The Ticket: the one artifact that both the construction and the search produce.

A ticket is what regenerates a pruned random network bit for bit: the ``seed``, the
:class:`~equislt.models.Architecture` the network was built from (when it records one), the method's
:class:`~equislt.ticket.Recipe` and the masks (1 bit per random coefficient, bit-packed in the file); the
construction adds its certificate. It runs as ``ticket(x)`` in its compact form (``ticket.compiled``: for a
constructed ticket, target-sized layers computing exactly the pruned network's function; for a searched ticket,
the pruned network itself), and builds the literal pruned random network (``ticket.network``) only on request.
A ticket file holds plain data only (tensors, numbers, strings): loading it runs no code from the file, and only
registered factories can rebuild its architecture.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from .._files import load_plain
from ..masks import MaskCounts, count_masks, pack_all
from ..models import Architecture
from ..nn import masks_of
from ._checks import file_checks, fingerprint, unpack_checked, verify_checks, verify_fingerprint
from ._recipe import CertificateLike, Recipe, recipe_class

__all__ = ["FORMAT", "Ticket"]

FORMAT = "equislt.ticket/3"  # /3: architectures by registered name, checks; /2 (import paths, no checks) is read
_OLD_FORMATS = {"equislt.ticket/1": "its random draws differ from this version's: construct the ticket again"}
_READABLE = ("equislt.ticket/2", FORMAT)


class Ticket:
    """A strong lottery ticket (see the module docstring). Call it like the network it stands for.

    Parameters
    ----------
    seed, recipe, masks : the seed, the method's :class:`Recipe` and the bool masks ``{layer path: {tensor name:
        mask}}`` of the random network's coefficient tensors.
    architecture, certificate, metadata, state : the recorded :class:`~equislt.models.Architecture` (or ``None``),
        the method's certificate, free-form metadata, and extra tensors the network needs (:meth:`Recipe.state`).
    network, compiled : the literal pruned network and the compact network, when already built.
    target : a model with the target's architecture, to rebuild from when no architecture is recorded.
    probe : a few inputs (the call arguments of the network, e.g. ``(x[:2],)``) whose outputs are saved with
        the ticket as its fingerprint, which loading checks (see :mod:`equislt.ticket._checks`).
    """

    def __init__(self, seed: int, recipe: Recipe, masks: Dict[str, Dict[str, torch.Tensor]], *,
                 architecture: Optional[Architecture] = None, certificate: Optional[CertificateLike] = None,
                 metadata: Optional[Dict[str, Any]] = None, state: Optional[Dict[str, Any]] = None,
                 network: Optional[nn.Module] = None, compiled: Optional[nn.Module] = None,
                 target: Optional[nn.Module] = None, probe: Optional[Sequence[Any]] = None):
        self.seed, self.recipe, self._masks = int(seed), recipe, masks
        self.architecture, self.certificate = architecture, certificate
        self.metadata, self.state = dict(metadata or {}), dict(state or {})
        self._network, self._compiled, self._target = network, compiled, target
        self.probe = tuple(probe) if probe is not None else None

    @classmethod
    def of_network(cls, network: nn.Module, seed: int, recipe: Recipe, **kwargs) -> "Ticket":
        """The ticket of a pruned network that runs as it is (a searched ticket): masks and state read off it."""
        return cls(seed, recipe, masks_of(network), state=recipe.state(network), network=network, compiled=network,
                   **kwargs)

    @property
    def method(self) -> str:
        """``"construct"`` or ``"search"``: the :class:`Recipe` kind."""
        return self.recipe.kind

    @property
    def network(self) -> nn.Module:
        """The literal pruned random network (built from the seed and the masks on first use: for a constructed
        ticket it is about ``2N`` times wider than the target)."""
        if self._network is None:
            self._network = self.recipe.regenerate(self.seed, self.architecture, self._masks, self.state,
                                                   self._target_model()).eval()
        return self._network

    @property
    def compiled(self) -> nn.Module:
        """The network the ticket runs: the same function as :attr:`network`, at the target's size."""
        if self._compiled is None:
            self._compiled = self.recipe.compact(self.seed, self.architecture, self._masks, self.state,
                                                 self._target_model()).eval()
        return self._compiled

    def _target_model(self) -> Optional[nn.Module]:
        """A model with the target's architecture, for recipes that rebuild from one (built once)."""
        if self._target is None and self.recipe.uses_target and self.architecture is not None:
            self._target = self.architecture.build().eval()
        return self._target

    def __call__(self, *args, **kwargs):
        return self.compiled(*args, **kwargs)

    def masks(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """The bool masks of the random network's coefficient tensors."""
        return self._masks

    def counts(self) -> MaskCounts:
        """Random coefficients kept and in all."""
        return count_masks(self._masks)

    def sparsity(self) -> float:
        """Fraction of the random network's coefficients pruned."""
        return self.counts().sparsity

    def save(self, path) -> None:
        """Write the ticket as plain data, with the checks :meth:`load` holds it to."""
        architecture = self.architecture.to_dict() if self.architecture is not None else None
        recipe = self.recipe.to_dict()
        payload = {
            "format": FORMAT,
            "method": self.method,
            "seed": int(self.seed),
            "architecture": architecture,
            "recipe": recipe,
            "masks": pack_all(self._masks),
            "certificate": self.certificate.as_dict() if self.certificate is not None else None,
            "metadata": self.metadata,
            "state": self.state,
            "checks": file_checks(self.method, self.seed, architecture, recipe, self._masks, self.state,
                                  fingerprint(self.compiled, self.probe)),
        }
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path, target: Optional[nn.Module] = None, verify: bool = True, trust: bool = False) -> "Ticket":
        """Read a saved ticket (construction or search) and check it against the checks saved with it (the masks,
        the recipe, the state; with ``verify``, also the outputs on the saved probe inputs, which builds the
        compact network now). ``target``: a model with the target's architecture, needed only when the ticket
        records no architecture. The network is rebuilt by its registered factory; ``trust=True`` also imports a
        factory the file records as ``"package.module:factory"`` (that module's code runs: only for files you
        trust). Files of ``equislt.ticket/2`` carry no checks and load with a warning."""
        where = f"Ticket.load: {path}"
        payload = load_plain(path, "Ticket.load")  # data only: never runs code from the file
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt in _OLD_FORMATS:
            raise ValueError(f"Ticket.load: {path} was saved by an older equislt ({fmt}): {_OLD_FORMATS[fmt]}")
        if fmt not in _READABLE:
            raise ValueError(f"Ticket.load: {path} is not an equislt ticket ({FORMAT})")
        missing = [key for key in ("method", "seed", "recipe", "masks") if key not in payload]
        if missing or not isinstance(payload["seed"], int) or not isinstance(payload["recipe"], dict):
            raise ValueError(f"{where}: a ticket needs 'method', an int 'seed', a dict 'recipe' and 'masks' "
                             f"(missing: {missing or 'none'})")
        masks = unpack_checked(payload["masks"], where)
        checks = payload.get("checks")
        if fmt == FORMAT and checks is None:
            raise ValueError(f"{where}: the file has no checks ({FORMAT} saves them): not a ticket equislt wrote")
        if checks is not None:
            verify_checks(checks, payload, masks, where)
        else:
            warnings.warn(f"{where} was saved by equislt 0.1.0 ({fmt}) without checks: loaded unverified",
                          stacklevel=2)
        kind = recipe_class(payload["method"])
        architecture = (Architecture.from_dict(payload["architecture"], where=f"{path}: architecture")
                        if payload.get("architecture") is not None else None)
        if architecture is None and target is None:
            raise ValueError(f"Ticket.load: {path} records no architecture; pass target=<a model with the target's "
                             "architecture>")
        if target is None:
            architecture.resolve(trust)  # an unregistered factory fails now, not at first use
        certificate = payload.get("certificate")
        if certificate is not None and kind.certificate_class is not None:
            certificate = kind.certificate_class.from_dict(certificate)
        probe = checks.get("probe") if checks is not None else None
        ticket = cls(payload["seed"], kind.from_dict(payload["recipe"]), masks, architecture=architecture,
                     certificate=certificate, metadata=payload.get("metadata") or {},
                     state=payload.get("state") or {}, target=target,
                     probe=probe["inputs"] if probe is not None else None)
        ticket.recipe.check(ticket.seed, architecture, masks, ticket.state, ticket._target_model(), where)
        if verify:
            verify_fingerprint(ticket.compiled, probe, where)
        return ticket

    def compile(self) -> nn.Module:
        """The compact network the ticket runs (:attr:`compiled`)."""
        return self.compiled

    def export(self) -> nn.Module:
        """A plain torch model with the zeros folded in and identical outputs."""
        return self.recipe.export(self.compiled)

    def __repr__(self) -> str:
        factory = self.architecture.factory if self.architecture is not None else None
        return (f"Ticket(method={self.method!r}, seed={self.seed}, sparsity={self.sparsity():.3f}, "
                f"architecture={factory})")
