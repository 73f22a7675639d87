"""Layer families of the construction: one file per kind of target layer, ``family_of(layer)`` to ask.

``_torch`` (torch ``Linear``/``ConvNd``), ``_ign`` (:class:`~equislt.nn.IGNLinear`), and, once their libraries
are in use, ``_escnn`` (``R2Conv``/``R3Conv``/``escnn.nn.Linear``/``OrbitLinear``) and ``_pyg`` (PyG ``Linear``).
A new kind of layer is one :class:`Family` subclass with ``layer_types`` (see ``docs/architecture.md``).
"""
from ._base import Family
from ._ign import IGNFamily, IGNPooledBias, MaskedIGNPooledBias
from ._registry import family_of, registered_families
from ._torch import TorchFamily

__all__ = ["Family", "IGNFamily", "IGNPooledBias", "MaskedIGNPooledBias", "TorchFamily", "family_of",
           "registered_families"]
