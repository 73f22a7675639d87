"""k-order invariant graph network targets (:class:`~equislt.nn.IGNLinear`).

One target layer ``IGNLinear(k, l, C_in, C_out)`` becomes

* lift ``IGNLinear(k, k, C_in, Σ w_b, bias=False)`` (same normalisation): its basis contains the identity
  ``X ↦ X`` (:attr:`~equislt.basis.IGNBlock.identity_index`), so pruning to the identity coefficient leaves
  ``u_j · x_b`` (a pointwise scaling, commutes with ReLU); every hidden channel is an order-k S_n tensor,
  a permutation representation;
* ``nn.ReLU()``;
* mix ``IGNLinear(k, l, Σ w_b, C_out, bias=False)``: the target's own basis (``Bell(k+l)`` partitions);
* bias: :class:`IGNPooledBias`, each of the ``C_out · Bell(l)`` bias coefficients a subset sum of its own pool of
  ``U[-1, 1]`` values, applied as the ``Bell(l)`` invariant patterns (constant, diagonal, ...) under the node
  mask, exactly as :class:`IGNLinear` applies its bias.

All of them are called ``layer(x, node_mask)``; the block passes the extra arguments through.

Certificate. IGN operators depend on the number of nodes ``n``. A padded batch with a node mask applies, to
each graph of ``n' ≤ n`` real nodes, exactly the ``n'``-node operator (padded entries are ignored, means use
``n'``, padded outputs are zero). The operator-norm bounds (Schur test on the dense ``[C_out·n'^l, C_in·n'^k]``
matrix) and bias norms are therefore taken as the maximum over ``n' = 1 .. n``, with ``n`` the padded size of
the traced batch: the certified bound holds for graphs of at most ``n`` nodes. When the dense matrices would
be too large (``DENSE_LIMIT`` entries), the bound is reported unavailable instead of a wrong number.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from ...basis import ign_basis_tensor, set_partitions
from ...nn import IGNLinear, MaskedLayer, node_mask_power
from .._block import CompiledBlock, PooledBias
from ._base import Family

__all__ = ["DENSE_LIMIT", "IGNFamily", "IGNPooledBias", "MaskedIGNPooledBias"]

DENSE_LIMIT = 2 * 10**7  # entries of one dense operator (all coefficient tensors together) per n


class IGNPooledBias(PooledBias):
    r"""The pooled bias of an :class:`~equislt.nn.IGNLinear` block: ``out[o] += Σ_q (Σ_t θ[(o, q), t]) P_q``.

    ``P_q`` are the ``Bell(order)`` invariant patterns of the output positions (constant, diagonal, ...:
    :func:`~equislt.basis.set_partitions`), applied as :class:`IGNLinear` applies its bias: for padded batches
    (``node_mask [B, n]``) the pattern is zero outside the real nodes. ``coefficients`` ``[C·Bell(order), pool]``
    (channel-major, the layout of ``IGNLinear.bias.reshape(-1)``). Called ``bias(y, node_mask=None)``.
    """

    def __init__(self, channels: int, order: int, pool: int):
        n_patterns = len(set_partitions(order))
        super().__init__(torch.eye(channels).repeat_interleave(n_patterns, dim=1), pool)
        self.channels, self.order, self.n_patterns = int(channels), int(order), n_patterns

    def vector(self) -> torch.Tensor:
        """``[C, Bell(order)]``: the bias coefficients (each the sum of its pool)."""
        return self.coefficient("bias").sum(dim=1).view(self.channels, self.n_patterns)

    def field(self, n: int, batch: int, node_mask: Optional[torch.Tensor] = None, dtype=None) -> torch.Tensor:
        """The bias field ``[B or 1, C, n, .., n]`` for graphs padded to ``n`` nodes."""
        coefficients = self.vector()
        dtype = coefficients.dtype if dtype is None else dtype
        patterns = ign_basis_tensor(0, self.order, n, "sum", dtype=dtype)[..., 0].to(coefficients.device)
        out = (coefficients.to(dtype) @ patterns).view(1, self.channels, *([n] * self.order))
        if node_mask is not None and self.order:
            out = out * node_mask_power(node_mask.to(torch.bool), self.order).unsqueeze(1).to(dtype)
        return out

    def forward(self, x, node_mask: Optional[torch.Tensor] = None):
        n = node_mask.shape[-1] if node_mask is not None else (x.shape[-1] if self.order else 1)
        return x + self.field(n, x.shape[0], node_mask, x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, order={self.order}, patterns={self.n_patterns}, pool={self.bias.shape[1]}"


class MaskedIGNPooledBias(MaskedLayer, IGNPooledBias):
    base_class = IGNPooledBias


class IGNFamily(Family):
    """Recipes for :class:`~equislt.nn.IGNLinear` target layers (see the module docstring)."""

    layer_types = (IGNLinear,)
    norm_folding_unsupported = ("a batch norm's shift is added to padded entries too (not masked to the graph's "
                                "nodes) and scales every bias pattern; fold it into the IGN layer before construct")

    def inputs(self, layer):
        return layer.in_channels

    def hidden(self, lift):
        return lift.out_channels

    def out_channels(self, layer):
        return layer.out_channels

    def node_count(self, layer, inputs, extra):
        mask = extra[0] if extra and torch.is_tensor(extra[0]) else None
        if mask is not None and mask.dim() == 2:
            return int(mask.shape[-1])
        return int(inputs.shape[-1]) if layer.k_in else None

    def lift(self, layer, widths):
        if len(widths) != layer.in_channels:
            raise ValueError(f"construct: {len(widths)} widths for {layer.in_channels} input channels")
        with torch.random.fork_rng(devices=[]):  # its init is overwritten by the draws: leave the global RNG alone
            return IGNLinear(layer.k_in, layer.k_in, layer.in_channels, int(sum(widths)), bias=False,
                             normalisation=layer.normalisation)

    def like(self, layer, inputs):
        with torch.random.fork_rng(devices=[]):  # the caller writes every coefficient
            return IGNLinear(layer.k_in, layer.k_out, int(inputs), layer.out_channels, bias=False,
                             normalisation=layer.normalisation)

    def pooled_bias(self, layer, pool):
        return IGNPooledBias(layer.out_channels, layer.k_out, pool)

    def compiled(self, pos, neg, bias, gain):
        if bias is None:
            return super().compiled(pos, neg, bias, gain)
        # the Bell(l) patterns under the node mask: a fixed pattern bias (one pool entry, the subset sum)
        pattern = IGNPooledBias(bias.channels, bias.order, 1)
        with torch.no_grad():
            pattern.bias.copy_(bias.vector().detach().reshape(-1, 1))
        pattern.bias.requires_grad_(False)
        return CompiledBlock(pos, neg, torch.zeros(bias.channels), gain, bias=pattern)

    def bias_expansion(self, layer):
        """``[C_out, C_out·Bell(l)]``: the output channel of each bias coefficient (its spatial pattern is
        applied by :class:`IGNPooledBias`; the certificate uses :meth:`bias_norm`, not this matrix)."""
        n_patterns = len(layer.bias_partitions)
        return torch.eye(layer.out_channels).repeat_interleave(n_patterns, dim=1)

    def bias_coefficients(self, layer):
        if layer.bias is None:
            return torch.zeros(layer.out_channels * len(layer.bias_partitions))
        return layer.bias.detach().reshape(-1).clone()

    def dense(self, layer, coefficients, n: Optional[int] = None):
        """Dense ``[C_out·n^l, C_in·n^k]`` matrix for graphs of ``n`` nodes (default: ``k + l``, where the
        ``Bell(k+l)`` basis elements are linearly independent)."""
        n = layer.k_in + layer.k_out if n is None else int(n)
        basis = ign_basis_tensor(layer.k_in, layer.k_out, n, layer.normalisation, dtype=torch.float64)
        matrix = torch.einsum("ocp,pyx->oycx", coefficients.double().reshape(layer.weight.shape), basis)
        o, y, c, x = matrix.shape
        return matrix.reshape(o * y, c * x)

    def _sizes(self, target) -> List[int]:
        n = getattr(target, "n_nodes", None)
        if not n:
            raise ValueError(f"construct: no node count recorded for IGN layer {target.path}")
        return list(range(1, int(n) + 1))

    def operator_kernels(self, target, coefficients):
        layer = target.module
        sizes = self._sizes(target)
        n = sizes[-1]
        entries = layer.out_channels * layer.in_channels * n ** (layer.k_in + layer.k_out) * len(coefficients)
        if entries > DENSE_LIMIT:
            return None, (f"IGN layer {target.path}: the dense operator for n={n} nodes has {entries} entries "
                          f"(> {DENSE_LIMIT}); no operator-norm bound computed")
        return (torch.cat([self.dense(layer, c, m) for c in coefficients], dim=1) for m in sizes), ""

    def bias_norm(self, target, beta):
        layer = target.module
        if beta.numel() == 0:
            return 0.0
        coefficients = beta.double().reshape(layer.out_channels, len(layer.bias_partitions))
        best = 0.0
        for m in self._sizes(target):
            patterns = ign_basis_tensor(0, layer.k_out, m, "sum", dtype=torch.float64)[..., 0]  # [Bell(l), m^l]
            best = max(best, float((coefficients @ patterns).norm()))
        return best
