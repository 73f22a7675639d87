"""``family_of(layer)``: the only place that decides which kind of target layer a module is.

The torch and IGN families are always defined; the escnn and PyG families are defined once their libraries are
in use (both are optional), and a user's own :class:`~equislt.construct.families.Family` subclasses as soon as
they are written.
"""
from __future__ import annotations

from typing import Dict, Optional

from torch import nn

from ..._compat import escnn_loaded, pyg_loaded
from . import _ign, _torch  # noqa: F401  (define the families that need no optional library)
from ._base import FAMILIES, Family

__all__ = ["family_of", "registered_families"]


def _load_optional_families() -> None:
    if escnn_loaded():
        from . import _escnn  # noqa: F401
    if pyg_loaded():
        from . import _pyg  # noqa: F401


def family_of(layer: nn.Module) -> Optional[Family]:
    """The family of a target layer (the most specific registered type in its class hierarchy), or ``None`` if
    the construction cannot handle it."""
    _load_optional_families()
    for base in type(layer).__mro__:
        family = FAMILIES.get(base)
        if family is not None:
            family.check(layer)
            return family
    return None


def registered_families() -> Dict[type, Family]:
    """Layer type → family, for every family defined so far."""
    _load_optional_families()
    return dict(FAMILIES)
