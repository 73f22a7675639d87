r"""The S_n-equivariant basis of linear maps between order-k and order-l tensors (Maron et al. 2019).

S_n acts on ``R^{n^k}`` by permuting every index, ``(g·X)[i_1..i_k] = X[g⁻¹i_1, .., g⁻¹i_k]``. A linear map
``R^{n^k} → R^{n^l}`` is equivariant iff it is a combination of the **equality-pattern** operators, one per
set partition π of the ``l + k`` index positions (output positions ``0..l-1`` first, then input positions
``l..l+k-1``):

.. math:: D_\pi[y_1..y_l, x_1..x_k] = \prod_{\text{blocks } β ∈ π} [\text{all indices in } β \text{ equal}]
          \cdot n^{-p_\pi\,[\text{normalisation} = \text{"mean"}]}

with ``p_π`` the number of blocks holding only input positions (the indices that are summed out). There are
``Bell(k+l)`` of them; they are linearly independent iff ``n ≥ k+l`` and in general span a space of
dimension "number of partitions with at most n blocks", which is the number of S_n-orbits on
``[n]^{l+k}``. ``D_π`` is Maron's "sum/diagonal/broadcast" operator: blocks with input and output positions
extract a diagonal of ``X`` and place it on a diagonal of the output, input-only blocks are summed over
(averaged for ``"mean"``, Maron's default normalisation), output-only blocks are broadcast. Each ``D_π`` is a
sum of the 0/1 **orbit** indicators ``O_σ`` (exact equality patterns) over the coarsenings σ of π; both are
bases of the same space (:func:`ign_basis_tensor` returns either).

Partitions are restricted-growth strings: ``pi[p]`` is the block id of position ``p``, blocks numbered by
first appearance; :func:`set_partitions` lists them in lexicographic order (so the all-distinct pattern is
last, and for k = l the identity map is :func:`ign_identity_index`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import torch

from ._block import Block

__all__ = [
    "IGNBlock",
    "NORMALISATIONS",
    "bell_number",
    "ign_basis_size",
    "ign_basis_tensor",
    "ign_identity_index",
    "ign_partitions",
    "partition_blocks",
    "partitions_tensor",
    "set_partitions",
]

NORMALISATIONS = ("mean", "sum")


@lru_cache(maxsize=None)
def bell_number(m: int) -> int:
    """Number of set partitions of ``m`` elements: 1, 1, 2, 5, 15, 52, 203, 877, 4140, ..."""
    if m < 0:
        raise ValueError(f"bell_number: m must be >= 0, got {m}")
    row = [1]  # Bell triangle
    for _ in range(m):
        new = [row[-1]]
        for value in row:
            new.append(new[-1] + value)
        row = new
    return row[0]


@lru_cache(maxsize=None)
def set_partitions(m: int) -> Tuple[Tuple[int, ...], ...]:
    """All set partitions of ``m`` positions as restricted-growth strings, in lexicographic order."""
    if m < 0:
        raise ValueError(f"set_partitions: m must be >= 0, got {m}")
    out: List[Tuple[int, ...]] = []

    def grow(prefix: List[int], blocks: int) -> None:
        if len(prefix) == m:
            out.append(tuple(prefix))
            return
        for b in range(blocks + 1):
            grow(prefix + [b], max(blocks, b + 1))

    grow([], 0)
    return tuple(out)


def _check_orders(k: int, l: int, who: str = "ign") -> None:
    for name, value in (("k", k), ("l", l)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{who}: tensor order {name} must be an int >= 0, got {value!r}")


def ign_partitions(k: int, l: int) -> Tuple[Tuple[int, ...], ...]:
    """The ``Bell(k+l)`` partitions of the ``l`` output then ``k`` input positions (layout of the basis axis)."""
    _check_orders(k, l, "ign_partitions")
    return set_partitions(k + l)


def partition_blocks(pi: Tuple[int, ...], l: int) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """Blocks of partition ``pi`` as ``(output positions, input positions)`` (input positions counted from 0)."""
    n_blocks = max(pi) + 1 if pi else 0
    blocks = []
    for b in range(n_blocks):
        members = [p for p, label in enumerate(pi) if label == b]
        blocks.append((tuple(p for p in members if p < l), tuple(p - l for p in members if p >= l)))
    return blocks


def ign_basis_size(k: int, l: int, n: Optional[int] = None) -> int:
    """``Bell(k+l)``, or for a given ``n`` the dimension of ``Hom_{S_n}(R^{n^k}, R^{n^l})``: the number of
    partitions with at most ``n`` blocks (= number of S_n-orbits on ``[n]^{l+k}``)."""
    _check_orders(k, l, "ign_basis_size")
    if n is None:
        return bell_number(k + l)
    return sum(1 for pi in set_partitions(k + l) if (max(pi) + 1 if pi else 0) <= n)


def ign_identity_index(k: int) -> int:
    """Position of the identity map ``X ↦ X`` (output position i tied to input position i) in the k→k basis."""
    _check_orders(k, k, "ign_identity_index")
    target = tuple(range(k)) * 2
    return ign_partitions(k, k).index(target)


def ign_basis_tensor(k: int, l: int, n: int, normalisation: str = "sum", kind: str = "diagonal",
                     dtype=torch.float64) -> torch.Tensor:
    """Dense basis ``[Bell(k+l), n^l, n^k]`` for a given ``n`` (``n^(k+l)`` entries per element: small n only).

    ``kind="diagonal"``: Maron's operators ``D_π`` (what :class:`~equislt.nn.IGNLinear` computes, with
    ``normalisation`` ``"sum"`` or ``"mean"``); ``kind="orbit"``: the 0/1 orbit indicators ``O_π`` (exact
    equality pattern; zero when π has more than n blocks). Used by tests and benchmarks as the reference.
    """
    _check_orders(k, l, "ign_basis_tensor")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"ign_basis_tensor: normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if kind not in ("diagonal", "orbit"):
        raise ValueError(f"ign_basis_tensor: kind must be 'diagonal' or 'orbit', got {kind!r}")
    m = k + l
    grids = torch.meshgrid(*[torch.arange(n)] * m, indexing="ij") if m else ()
    idx = [g.reshape(-1) for g in grids]
    size = n ** m
    equal = {}
    for a in range(m):
        for b in range(a + 1, m):
            equal[a, b] = idx[a] == idx[b]
    out = []
    for pi in ign_partitions(k, l):
        value = torch.ones(size, dtype=torch.bool)
        for a in range(m):
            for b in range(a + 1, m):
                if pi[a] == pi[b]:
                    value &= equal[a, b]
                elif kind == "orbit":
                    value &= ~equal[a, b]
        element = value.to(dtype)
        if normalisation == "mean":
            pure_inputs = sum(1 for outs, ins in partition_blocks(pi, l) if not outs and ins)
            element = element / n ** pure_inputs
        out.append(element.view(n ** l, n ** k))
    return torch.stack(out)


@dataclass(frozen=True, eq=False)
class IGNBlock(Block):
    """A :class:`Block` of an S_n order-k → order-l layer, whose basis depends on the number of nodes n.

    ``basis`` is **not** dense (that would be ``n^(k+l)`` per element for every n): it is the long tensor
    ``[n_basis, l + k]`` of partition labels (restricted-growth strings, output positions first; bias
    blocks: ``[Bell(l), l]``) that *describes* the element ``D_π``. Use :meth:`dense` for the dense
    ``[n_basis, n^l, n^k]`` (bias: ``[n_basis, n^l, 1]``) at a given n. Extra fields: the orders ``k``
    (``0`` for bias blocks, whose input is the constant) and ``l``, and ``normalisation``.
    """

    k: int = 0
    l: int = 0
    normalisation: str = "mean"

    def dense(self, n: int, dtype=torch.float64) -> torch.Tensor:
        """The dense basis of this block for graphs of ``n`` nodes (:func:`ign_basis_tensor`)."""
        return ign_basis_tensor(self.k, self.l, n, self.normalisation, dtype=dtype)

    @property
    def identity_index(self) -> Optional[int]:
        """Basis position of the identity map for k = l weight blocks, else ``None``."""
        return ign_identity_index(self.k) if (self.k == self.l and not self.is_bias) else None


def partitions_tensor(partitions) -> torch.Tensor:
    """Partitions as a long tensor ``[n, m]`` (``[n, 0]`` for m = 0)."""
    m = len(partitions[0]) if partitions else 0
    return torch.tensor(partitions, dtype=torch.long).view(len(partitions), m)
