"""Bases and blocks: the coefficient view ``θ[out_fields, in_fields, n_basis]`` of equivariant layers."""
from ._block import Block
from ._orbit import orbit_basis, orbit_labels, permutation_action
from ._registry import blocks, coefficient_names, init_std, is_coefficient_layer

__all__ = [
    "Block",
    "blocks",
    "coefficient_names",
    "init_std",
    "is_coefficient_layer",
    "orbit_basis",
    "orbit_labels",
    "permutation_action",
]
