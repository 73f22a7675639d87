"""Test utilities shipped with the package, so users can check their own modules."""
from ._equivariance import (EquivarianceReport, assert_equivariant, default_spatial_size, equivariance_error,
                            escnn_equivariance_error, grid_exact_elements, index_permutation_error,
                            node_permutation_error, permute_indices)

__all__ = [
    "EquivarianceReport",
    "assert_equivariant",
    "default_spatial_size",
    "equivariance_error",
    "escnn_equivariance_error",
    "grid_exact_elements",
    "index_permutation_error",
    "node_permutation_error",
    "permute_indices",
]
