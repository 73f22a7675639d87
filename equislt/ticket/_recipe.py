"""The ``Recipe`` protocol: what a ticket's method must know to rebuild, run and export its network.

A ticket stores plain data: a seed, an :class:`~equislt.models.Architecture`, bit-packed masks, and its method's
recipe as a dict of plain values. Each method (``"construct"``, ``"search"``) implements one :class:`Recipe`
subclass; declaring ``kind`` registers it, and :meth:`Ticket.load <equislt.Ticket.load>` finds the class of a
saved ticket by that ``kind`` (a new method needs no change to the ticket).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, Optional, Protocol, Type

import torch
from torch import nn

from ..models import Architecture

__all__ = ["CertificateLike", "Recipe", "recipe_class"]

_RECIPES: Dict[str, Type["Recipe"]] = {}
Masks = Dict[str, Dict[str, torch.Tensor]]


class CertificateLike(Protocol):
    """What a ticket keeps of its method's certificate (the construction's ``equislt.construct.Certificate``)."""

    def as_dict(self) -> dict: ...


class Recipe(ABC):
    """How the tickets of one method are made again from data. Subclasses set ``kind`` (registered on
    definition) and, when the method certifies its tickets, ``certificate_class`` (with ``from_dict``).

    Every method gets ``(seed, architecture, masks, state, target)``: the seed, the recorded architecture (or
    ``None``), the bool masks of the random network's coefficient tensors, the extra tensors of :meth:`state`,
    and a model with the target's architecture when the caller passed one."""

    kind: ClassVar[str] = ""
    certificate_class: ClassVar[Optional[type]] = None
    #: the methods get a model with the target's architecture (``target``), built from ``architecture`` if need be
    uses_target: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            known = _RECIPES.get(kind)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ValueError(f"Recipe kind {kind!r} is already registered by {known.__qualname__}")
            _RECIPES[kind] = cls

    @abstractmethod
    def to_dict(self) -> Dict[str, Any]:
        """The recipe as plain values (str, int, float, bool, lists, dicts): what a ticket file stores."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Recipe":
        """Inverse of :meth:`to_dict`."""

    @abstractmethod
    def regenerate(self, seed: int, architecture: Optional[Architecture], masks: Masks, state: Dict[str, Any],
                   target: Optional[nn.Module] = None) -> nn.Module:
        """The literal pruned random network, bit for bit."""

    def compact(self, seed: int, architecture: Optional[Architecture], masks: Masks, state: Dict[str, Any],
                target: Optional[nn.Module] = None) -> nn.Module:
        """The network the ticket runs: the same function as :meth:`regenerate`'s, in its cheapest exact form
        (by default the literal network itself)."""
        return self.regenerate(seed, architecture, masks, state, target)

    def check(self, seed: int, architecture: Optional[Architecture], masks: Masks, state: Dict[str, Any],
              target: Optional[nn.Module], where: str) -> None:
        """Raise a ValueError (starting with ``where``) if ``masks`` or ``state`` are not exactly what this recipe's
        network holds: a missing, extra or misshapen mask."""

    def state(self, network: nn.Module) -> Dict[str, Any]:
        """Tensors the regenerated network needs besides the seed and the masks (none by default)."""
        return {}

    @abstractmethod
    def export(self, network: nn.Module) -> nn.Module:
        """A plain torch model with the same outputs as ``network`` (the network the ticket runs)."""


def recipe_class(kind: str) -> Type[Recipe]:
    """The registered :class:`Recipe` subclass of a method."""
    if kind not in _RECIPES:
        raise ValueError(f"ticket method {kind!r} is unknown (known: {sorted(_RECIPES)})")
    return _RECIPES[kind]
