"""Coefficient layers: masked / supermask versions of supported layers, ``OrbitLinear``, conversion."""
from ._convert import (INCLUDES, WEIGHT_INITS, GlobalTopK, clone_module, coefficient_layers, fold, freeze, load_masks,
                       mask_model, mask_sources, masks_of, refresh, replace_module, save_masks, score_parameters,
                       supermask)
from ._coverage import COVERAGE_STATUSES, Coverage, ParameterCoverage, coverage
from ._export import (ChannelAffine, ChannelBranches, DepthwiseFilter, FieldMaxPool, GatedChannels, GeometricAdapter,
                      export)
from ._ign import IGNLinear, MaskedIGNLinear, node_mask_power
from ._masked import MaskedConv1d, MaskedConv2d, MaskedConv3d, MaskedLayer, MaskedLinear
from ._parameter_masks import ParameterMask, parameter_masks
from ._streams import random_stream

_ESCNN_NAMES = ("OrbitLinear", "MaskedR2Conv", "MaskedR3Conv", "MaskedEscnnLinear", "MaskedOrbitLinear")

__all__ = [
    "COVERAGE_STATUSES",
    "ChannelAffine",
    "ChannelBranches",
    "Coverage",
    "DepthwiseFilter",
    "FieldMaxPool",
    "GatedChannels",
    "GeometricAdapter",
    "GlobalTopK",
    "INCLUDES",
    "IGNLinear",
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedConv3d",
    "MaskedIGNLinear",
    "MaskedLayer",
    "MaskedLinear",
    "ParameterMask",
    "ParameterCoverage",
    "WEIGHT_INITS",
    "clone_module",
    "coefficient_layers",
    "coverage",
    "export",
    "fold",
    "freeze",
    "load_masks",
    "mask_model",
    "mask_sources",
    "masks_of",
    "node_mask_power",
    "parameter_masks",
    "random_stream",
    "refresh",
    "replace_module",
    "save_masks",
    "score_parameters",
    "supermask",
    "MaskedPyGLinear",
    *_ESCNN_NAMES,
]


def __getattr__(name):  # escnn layers are imported on first use: escnn is an optional dependency
    if name in _ESCNN_NAMES:
        from . import _masked_escnn, _orbit_linear

        return getattr(_masked_escnn, name, None) or getattr(_orbit_linear, name)
    if name == "MaskedPyGLinear":  # needs torch_geometric
        from ._masked_pyg import MaskedPyGLinear

        return MaskedPyGLinear
    raise AttributeError(f"module 'equislt.nn' has no attribute {name!r}")
