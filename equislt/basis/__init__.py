"""Bases and blocks: the coefficient view ``θ[out_fields, in_fields, n_basis]`` of equivariant layers."""
from ._block import Block
from ._ign import (NORMALISATIONS, IGNBlock, bell_number, ign_basis_size, ign_basis_tensor, ign_identity_index,
                   ign_partitions, partition_blocks, partitions_tensor, set_partitions)
from ._orbit import orbit_basis, orbit_labels, permutation_action
from ._registry import blocks, coefficient_names, init_std, is_coefficient_layer

__all__ = [
    "Block",
    "IGNBlock",
    "NORMALISATIONS",
    "bell_number",
    "blocks",
    "coefficient_names",
    "ign_basis_size",
    "ign_basis_tensor",
    "ign_identity_index",
    "ign_partitions",
    "init_std",
    "is_coefficient_layer",
    "orbit_basis",
    "orbit_labels",
    "partition_blocks",
    "partitions_tensor",
    "permutation_action",
    "set_partitions",
]
