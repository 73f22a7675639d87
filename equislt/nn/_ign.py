r"""``IGNLinear``: S_n-equivariant linear maps between order-k and order-l tensors, for any k and l.

.. math:: Y_o = \sum_{c} \sum_{π} θ[o, c, π]\, D_π(X_c) + \sum_{ρ} β[o, ρ]\, D_ρ(1)

over the ``Bell(k+l)`` partitions π of the ``l + k`` index positions (:mod:`equislt.basis._ign`): blocks
with input and output positions take a diagonal of ``X`` and put it on a diagonal of ``Y``, input-only
blocks are summed (``normalisation="sum"``) or averaged (``"mean"``, Maron et al.'s default: divide by ``n``
per summed index, so ``n^{-1}`` or ``n^{-2}`` for the 2→2 pooling operators), output-only blocks are
broadcast. The bias has one coefficient per partition ρ of the ``l`` output positions (constant, diagonal,
...: ``Bell(l)``).

Computed with einsum diagonal extraction / sums (grouped so that partitions sharing the same reduction of
``X`` share one channel-mixing product), broadcasting and ``as_strided_scatter`` onto output diagonals:
memory ``O(batch · channels · n^max(k,l))``, never an ``n^(k+l)`` basis tensor.
"""
from __future__ import annotations

import math
import string
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..basis import (NORMALISATIONS, IGNBlock, ign_basis_tensor, ign_partitions, partition_blocks, partitions_tensor,
                     set_partitions)
from ._masked import MaskedLayer

__all__ = ["IGNLinear", "MaskedIGNLinear", "node_mask_power"]

_LETTERS = string.ascii_lowercase.replace("b", "").replace("c", "").replace("o", "")


def _rgs(labels) -> Tuple[int, ...]:
    """Relabel a sequence of block labels by first appearance."""
    seen: Dict[int, int] = {}
    return tuple(seen.setdefault(x, len(seen)) for x in labels)


def node_mask_power(node_mask: torch.Tensor, order: int) -> torch.Tensor:
    """Order-``order`` mask ``[B, n, .., n]`` of a node mask ``[B, n]``: true where all indices are real nodes."""
    out = node_mask
    for _ in range(order - 1):
        out = out.unsqueeze(-1) & node_mask.view(node_mask.shape[0], *([1] * (out.dim() - 1)), -1)
    return out if order > 0 else node_mask.new_ones(node_mask.shape[0])


class IGNLinear(nn.Module):
    r"""S_n-equivariant linear layer from order-``k_in`` to order-``k_out`` tensors (Maron et al. 2019).

    Parameters
    ----------
    k_in, k_out : tensor orders (0: graph-level vector, 1: node features, 2: edge/adjacency features, ...).
    in_channels, out_channels : channels per index tuple.
    bias : add the ``Bell(k_out)`` invariant bias patterns.
    normalisation : ``"mean"`` (default; summed indices are averaged over the graph's ``n`` nodes: Maron's
        ``1/n``, ``1/n²``) or ``"sum"`` (no normalisation).

    Coefficients: ``weight [out_channels, in_channels, Bell(k_in + k_out)]`` (basis axis in the order of
    :func:`~equislt.basis.ign_partitions`) and ``bias [out_channels, Bell(k_out)]``
    (:func:`~equislt.basis.set_partitions` of the output positions). Init: ``N(0, 2 / (in_channels · n_basis))``
    (He-style over the basis), zero bias.

    Shapes: input ``[B, in_channels, n, .., n]`` (``k_in`` node axes), output ``[B, out_channels, n, .., n]``
    (``k_out`` node axes). Batches of graphs of different sizes: pad to a common ``n`` and pass
    ``node_mask [B, n]`` (bool, true for real nodes). Padded input entries are ignored, the means use each
    graph's own number of nodes, and padded output entries are zero.
    """

    def __init__(self, k_in: int, k_out: int, in_channels: int, out_channels: int, bias: bool = True,
                 normalisation: str = "mean"):
        super().__init__()
        for name, value in (("k_in", k_in), ("k_out", k_out), ("in_channels", in_channels),
                            ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name.startswith("k") else 1):
                raise ValueError(f"IGNLinear: {name} must be an int >= {0 if name.startswith('k') else 1}, "
                                 f"got {value!r}")
        if k_in + k_out > len(_LETTERS):
            raise ValueError(f"IGNLinear: k_in + k_out = {k_in + k_out} is too large (at most {len(_LETTERS)})")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"IGNLinear: normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.k_in, self.k_out = k_in, k_out
        self.in_channels, self.out_channels = in_channels, out_channels
        self.normalisation = normalisation
        self.partitions = ign_partitions(k_in, k_out)
        self.bias_partitions = set_partitions(k_out)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, len(self.partitions)))
        self.bias = nn.Parameter(torch.empty(out_channels, len(self.bias_partitions))) if bias else None
        self._plan = _make_plan(self.partitions, k_in, k_out)
        self.reset_parameters()

    # -- coefficients ---------------------------------------------------------------------------------
    @property
    def n_basis(self) -> int:
        return len(self.partitions)

    def coefficient(self, name: str) -> Optional[torch.Tensor]:
        """Coefficient tensor ``name`` as the layer uses it (masked layers override this)."""
        return getattr(self, name)

    def coefficient_blocks(self) -> List[IGNBlock]:
        """One weight block ``[out, in, Bell(k+l)]`` and one bias block ``[out, 1, Bell(l)]``; ``basis`` holds
        the partition labels (see :class:`~equislt.basis.IGNBlock`), ``dense(n)`` the dense basis."""
        o, i, p = self.weight.shape
        repr_in, repr_out = f"S_n order {self.k_in}", f"S_n order {self.k_out}"
        blocks = [IGNBlock("weight", torch.arange(o * i * p).view(o, i, p), partitions_tensor(self.partitions),
                           tuple(range(o)), tuple(range(i)), repr_out, repr_in,
                           k=self.k_in, l=self.k_out, normalisation=self.normalisation)]
        if self.bias is not None:
            q = self.bias.shape[1]
            blocks.append(IGNBlock("bias", torch.arange(o * q).view(o, 1, q), partitions_tensor(self.bias_partitions),
                                   tuple(range(o)), (), repr_out, "constant",
                                   k=0, l=self.k_out, normalisation=self.normalisation))
        return blocks

    def coefficient_init_std(self) -> Dict[str, torch.Tensor]:
        fan = self.in_channels * self.n_basis
        std = {"weight": torch.full_like(self.weight, math.sqrt(2.0 / fan))}
        if self.bias is not None:
            std["bias"] = torch.full_like(self.bias, 1.0 / math.sqrt(fan))
        return std

    def reset_parameters(self) -> None:
        """``weight ~ N(0, 2 / (in_channels · n_basis))``, zero bias."""
        with torch.no_grad():
            self.weight.normal_().mul_(self.coefficient_init_std()["weight"])
            if self.bias is not None:
                self.bias.zero_()

    # -- forward --------------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor, node_mask: Optional[torch.Tensor]) -> int:
        if x.dim() != 2 + self.k_in or x.shape[1] != self.in_channels:
            raise ValueError(f"IGNLinear({self.k_in}->{self.k_out}): expected input [B, {self.in_channels}"
                             f"{', n' * self.k_in}], got {tuple(x.shape)}")
        sizes = set(x.shape[2:])
        if len(sizes) > 1:
            raise ValueError(f"IGNLinear({self.k_in}->{self.k_out}): all node axes must have the same size n, "
                             f"got {tuple(x.shape[2:])}")
        if node_mask is not None:
            n = node_mask.shape[-1]
            if node_mask.dim() != 2 or node_mask.shape[0] != x.shape[0] or (sizes and n != sizes.pop()):
                raise ValueError(f"IGNLinear({self.k_in}->{self.k_out}): node_mask must be [B, n] = "
                                 f"[{x.shape[0]}, {x.shape[-1] if self.k_in else 'n'}], got {tuple(node_mask.shape)}")
            return n
        if not sizes:
            raise ValueError(f"IGNLinear(0->{self.k_out}): an order-0 input has no node axis; pass node_mask [B, n] "
                             "to give the number of nodes")
        return sizes.pop()

    def forward(self, x: torch.Tensor, node_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        n = self._check_input(x, node_mask)
        weight = self.coefficient("weight")
        batch = x.shape[0]
        if node_mask is not None:
            node_mask = node_mask.to(torch.bool)
            if self.k_in:
                x = x * node_mask_power(node_mask, self.k_in).unsqueeze(1).to(x.dtype)
            counts = node_mask.sum(1).clamp(min=1).to(x.dtype)
        else:
            counts = None
        # internal layout: channels first, then batch ([C, B, n, ..]): channel mixing is one 2-D matmul per group
        xt = x.transpose(0, 1)
        compact: Dict[Tuple[int, ...], torch.Tensor] = {}
        for group in self._plan:
            reduced = torch.einsum(group.equation, xt)  # diagonals and sums: [C_in, B, n^m], m <= k_in
            rest = reduced.shape[1:]
            w = weight[:, :, group.indices].permute(2, 0, 1).reshape(-1, self.in_channels)
            mixed = (w @ reduced.reshape(self.in_channels, -1)).view(len(group.items), self.out_channels, *rest)
            for j, item in enumerate(group.items):
                z = mixed[j]
                if item.summed and self.normalisation == "mean":
                    z = z / (counts.view(1, -1, *([1] * (z.dim() - 2))) ** item.summed if counts is not None
                             else float(n) ** item.summed)
                z = z.permute(0, 1, *[2 + d for d in item.permutation]) if item.permutation else z
                z = z.reshape(*z.shape[:2], *item.view_shape(z.shape[2:]))
                compact[item.pattern] = z if item.pattern not in compact else compact[item.pattern] + z
        if self.bias is not None:
            bias = self.coefficient("bias")
            for q, pattern in enumerate(self.bias_partitions):
                width = max(pattern) + 1 if pattern else 0
                z = bias[:, q].view(-1, 1, *([1] * width))
                compact[pattern] = z if pattern not in compact else compact[pattern] + z
        out = None
        full = (self.out_channels, batch) + (n,) * self.k_out
        strides = _contiguous_strides(full)
        for pattern, z in compact.items():
            width = max(pattern) + 1 if pattern else 0
            z = z.expand(self.out_channels, batch, *([n] * width))
            if width < self.k_out:  # place on the generalised diagonal of the output
                diag_strides = [strides[0], strides[1]] + [
                    sum(strides[2 + p] for p, label in enumerate(pattern) if label == b) for b in range(width)]
                z = torch.as_strided_scatter(z.new_zeros(full), z, z.shape, diag_strides)
            out = z if out is None else out + z
        if out is None:
            out = x.new_zeros(full)
        out = out.transpose(0, 1)
        if node_mask is not None and self.k_out:
            out = out * node_mask_power(node_mask, self.k_out).unsqueeze(1).to(out.dtype)
        return out.contiguous()

    # -- dense reference ------------------------------------------------------------------------------
    def dense_weight(self, n: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Dense ``[out, n^l, in, n^k]`` matrix and ``[out, n^l]`` bias for graphs of ``n`` nodes (small n:
        materialises the ``n^(k+l)`` basis; used as the reference in tests and benchmarks)."""
        weight = self.coefficient("weight")
        basis = ign_basis_tensor(self.k_in, self.k_out, n, self.normalisation, dtype=weight.dtype)
        matrix = torch.einsum("ocp,pyx->oycx", weight, basis)
        bias = None
        if self.bias is not None:
            bias_basis = ign_basis_tensor(0, self.k_out, n, "sum", dtype=weight.dtype)[..., 0]
            bias = self.coefficient("bias") @ bias_basis
        return matrix, bias

    def extra_repr(self) -> str:
        return (f"order {self.k_in}->{self.k_out}, {self.in_channels}->{self.out_channels} channels, "
                f"n_basis={self.n_basis} (Bell({self.k_in + self.k_out})), normalisation={self.normalisation!r}, "
                f"bias={self.bias is not None}")


def _contiguous_strides(shape) -> List[int]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= size
    return strides[::-1]


class _Item:
    """One partition: where its reduced, channel-mixed tensor goes in the compact output of its pattern."""

    def __init__(self, pattern, summed, permutation, slots):
        self.pattern = pattern          # partition of the output positions (RGS)
        self.summed = summed            # number of input-only blocks (summed / averaged indices)
        self.permutation = permutation  # order of the reduced axes, sorted by output block
        self.slots = slots              # per output block: True if it comes from the input, False if broadcast

    def view_shape(self, sizes) -> List[int]:
        it = iter(sizes)
        return [next(it) if s else 1 for s in self.slots]


class _Group:
    def __init__(self, equation):
        self.equation = equation
        self.indices: List[int] = []
        self.items: List[_Item] = []


def _make_plan(partitions, k: int, l: int) -> List[_Group]:
    """Group partitions by their reduction of X (einsum equation), so each group needs one mixing product."""
    groups: "OrderedDict[str, _Group]" = OrderedDict()
    for index, pi in enumerate(partitions):
        blocks = partition_blocks(pi, l)
        in_labels = _rgs(pi[l:])  # blocks seen from the input positions, numbered by first appearance
        in_blocks = [pi[l + p] for p in range(k)]
        first = []  # input blocks in order of first appearance
        for b in in_blocks:
            if b not in first:
                first.append(b)
        kept = [b for b in first if blocks[b][0]]  # input blocks tied to output positions
        letters = {b: _LETTERS[in_labels[in_blocks.index(b)]] for b in first}
        equation = "cb" + "".join(letters[b] for b in in_blocks) + "->cb" + "".join(letters[b] for b in kept)
        pattern = _rgs(pi[:l])
        out_blocks = []  # output blocks in order of first appearance among output positions
        for b in pi[:l]:
            if b not in out_blocks:
                out_blocks.append(b)
        from_input = [b for b in out_blocks if blocks[b][1]]
        permutation = [kept.index(b) for b in from_input]
        summed = sum(1 for outs, ins in blocks if ins and not outs)
        item = _Item(pattern, summed, permutation if permutation != sorted(permutation) else None,
                     [bool(blocks[b][1]) for b in out_blocks])
        group = groups.setdefault(equation, _Group(equation))
        group.indices.append(index)
        group.items.append(item)
    return list(groups.values())


class MaskedIGNLinear(MaskedLayer, IGNLinear):
    """:class:`IGNLinear` reading ``weight`` / ``bias`` through a coefficient mask (stays S_n-equivariant)."""

    base_class = IGNLinear
