"""Graph layer families of the construction: k-order invariant graph networks (:class:`~equislt.nn.IGNLinear`).

One target layer ``IGNLinear(k, l, C_in, C_out)`` becomes

* lift ``IGNLinear(k, k, C_in, Σ w_b, bias=False)`` (same normalisation): its basis contains the identity
  ``X ↦ X`` (:attr:`~equislt.basis.IGNBlock.identity_index`), so pruning to the identity coefficient leaves
  ``u_j · x_b`` (a pointwise scaling, commutes with ReLU); every hidden channel is an order-k S_n tensor,
  a permutation representation;
* ``nn.ReLU()``;
* mix ``IGNLinear(k, l, Σ w_b, C_out, bias=False)``: the target's own basis (``Bell(k+l)`` partitions);
* bias: :class:`~equislt.construct._modules.IGNPooledBias`, each of the ``C_out · Bell(l)`` bias coefficients
  a subset sum of its own pool of ``U[-1, 1]`` values, applied as the ``Bell(l)`` invariant patterns
  (constant, diagonal, ...) under the node mask, exactly as :class:`IGNLinear` applies its bias.

All of them are called ``layer(x, node_mask)``; :class:`~equislt.construct._modules.LiftMix` passes the extra
arguments through.

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

from ._families import Family

__all__ = ["IGNFamily", "DENSE_LIMIT"]

DENSE_LIMIT = 2 * 10**7  # entries of one dense operator (all coefficient tensors together) per n


class IGNFamily(Family):
    """Recipes for :class:`~equislt.nn.IGNLinear` target layers (see module docstring)."""

    norm_folding_unsupported = ("a batch norm's shift is added to padded entries too (not masked to the graph's "
                                "nodes) and scales every bias pattern; fold it into the IGN layer before construct")

    def lift(self, layer, widths):
        from ..nn._ign import IGNLinear

        if len(widths) != layer.in_channels:
            raise ValueError(f"construct: {len(widths)} widths for {layer.in_channels} input channels")
        with torch.random.fork_rng(devices=[]):  # its init is overwritten (draw_block): leave the global RNG alone
            return IGNLinear(layer.k_in, layer.k_in, layer.in_channels, int(sum(widths)), bias=False,
                             normalisation=layer.normalisation)

    def like(self, layer, inputs):
        from ..nn._ign import IGNLinear

        with torch.random.fork_rng(devices=[]):  # the caller writes every coefficient
            return IGNLinear(layer.k_in, layer.k_out, int(inputs), layer.out_channels, bias=False,
                             normalisation=layer.normalisation)

    def hidden(self, lift):
        return lift.out_channels

    def inputs(self, layer):
        return layer.in_channels

    def bias_expansion(self, layer):
        """``[C_out, C_out·Bell(l)]``: the output channel of each bias coefficient (its spatial pattern is
        applied by :class:`IGNPooledBias`; the certificate uses :meth:`bias_bound`, not this matrix)."""
        n_patterns = len(layer.bias_partitions)
        return torch.eye(layer.out_channels).repeat_interleave(n_patterns, dim=1)

    def bias_coefficients(self, layer):
        if layer.bias is None:
            return torch.zeros(layer.out_channels * len(layer.bias_partitions))
        return layer.bias.detach().reshape(-1).clone()

    def pooled_bias(self, layer, pool):
        from ._modules import IGNPooledBias

        return IGNPooledBias(layer.out_channels, layer.k_out, pool)

    def dense(self, layer, coefficients, n: Optional[int] = None):
        """Dense ``[C_out·n^l, C_in·n^k]`` matrix for graphs of ``n`` nodes (default: ``k + l``, where the
        ``Bell(k+l)`` basis elements are linearly independent)."""
        from ..basis._ign import ign_basis_tensor

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

    def operator_bound(self, target, coefficients):
        layer = target.module
        sizes = self._sizes(target)
        n = sizes[-1]
        entries = layer.out_channels * layer.in_channels * n ** (layer.k_in + layer.k_out) * len(coefficients)
        if entries > DENSE_LIMIT:
            return None, (f"IGN layer {target.path}: the dense operator for n={n} nodes has {entries} entries "
                          f"(> {DENSE_LIMIT}); no operator-norm bound computed")
        from ._certificate import schur_bound

        best = 0.0
        for m in sizes:
            kernel = torch.cat([self.dense(layer, c, m) for c in coefficients], dim=1)
            best = max(best, schur_bound(kernel))
        return best, ""

    def bias_bound(self, target, beta):
        from ..basis._ign import ign_basis_tensor

        layer = target.module
        if beta.numel() == 0:
            return 0.0
        coefficients = beta.double().reshape(layer.out_channels, len(layer.bias_partitions))
        best = 0.0
        for m in self._sizes(target):
            patterns = ign_basis_tensor(0, layer.k_out, m, "sum", dtype=torch.float64)[..., 0]  # [Bell(l), m^l]
            best = max(best, float((coefficients @ patterns).norm()))
        return best

    def liftmix(self, lift, relu, mix, bias, gain):
        from ._modules import LiftMix

        return LiftMix(lift, relu, mix, bias, gain)
