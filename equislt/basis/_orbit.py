"""Orbit bases of permutation representations.

If a finite group G acts on the input indices X and output indices Y by permutations, then
``Hom_G(R^X, R^Y)`` has a 0/1 basis with one element per G-orbit on ``Y × X``: the indicator matrix of the
orbit. The elements have disjoint supports; for a transitive action on ``X = Y`` the diagonal orbit is one
element, the identity. Examples: C_N regular → regular has N elements (circulants), D_N regular → regular 2N,
S_n on order-k → order-l tensors Bell(k+l) when n ≥ k+l.
"""
from __future__ import annotations

import torch

__all__ = ["orbit_basis", "orbit_labels", "permutation_action"]


def orbit_labels(perm_out: torch.Tensor, perm_in: torch.Tensor) -> torch.Tensor:
    """Orbit id of every pair ``(y, x)``, shape ``[d_out, d_in]``, ids ``0..n_orbits-1``.

    ``perm_out[g, y]`` is the image of output index ``y`` under the g-th group element (all elements, not
    generators), likewise ``perm_in``. Orbits are numbered by their smallest flat pair ``y·d_in + x``, so for
    ``X = Y`` the orbit of ``(0, 0)`` (the diagonal, for a transitive action) is element 0.
    """
    if perm_out.dim() != 2 or perm_in.dim() != 2 or perm_out.shape[0] != perm_in.shape[0]:
        raise ValueError("orbit_labels: perm_out and perm_in must be [n_elements, d] over the same group elements")
    d_out, d_in = perm_out.shape[1], perm_in.shape[1]
    images = perm_out[:, :, None] * d_in + perm_in[:, None, :]  # [G, d_out, d_in]
    canonical = images.amin(dim=0)
    _, labels = torch.unique(canonical, return_inverse=True)
    return labels.view(d_out, d_in)


def orbit_basis(perm_out: torch.Tensor, perm_in: torch.Tensor, dtype=torch.get_default_dtype()) -> torch.Tensor:
    """The orbit basis ``[n_orbits, d_out, d_in]`` of ``Hom_G`` between two permutation representations."""
    labels = orbit_labels(perm_out, perm_in)
    n = int(labels.max()) + 1
    return (labels[None] == torch.arange(n)[:, None, None]).to(dtype)


def permutation_action(representation, name: str = "") -> torch.Tensor:
    """``perm[g, i] = j`` with ``ρ(g) e_i = e_j`` for every element g of a finite group's escnn representation.

    Raises a ValueError if the group is not finite or some ``ρ(g)`` is not a permutation matrix.
    """
    label = name or representation.name
    group = representation.group
    if not group.continuous and hasattr(group, "elements"):
        elements = group.elements
    else:
        raise ValueError(
            f"field type {label!r}: the group {group.name} is not finite; orbit bases need permutation "
            "representations of a finite group"
        )
    perms = []
    for g in elements:
        matrix = torch.as_tensor(representation(g), dtype=torch.float64)
        rounded = matrix.round()
        is_perm = (
            torch.allclose(matrix, rounded, atol=1e-6)
            and bool(((rounded == 0) | (rounded == 1)).all())
            and bool((rounded.sum(0) == 1).all())
            and bool((rounded.sum(1) == 1).all())
        )
        if not is_perm:
            raise ValueError(
                f"field type {label!r} is not a permutation representation (ρ({g}) is not a permutation matrix): "
                "orbit bases and the ReLU construction need regular, quotient or trivial fields"
            )
        perms.append(rounded.argmax(dim=0))
    return torch.stack(perms)
