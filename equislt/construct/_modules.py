"""Building blocks of the random network that the construction prunes.

One target layer ``x ↦ W x + β`` becomes ``LiftMix``:  ``x ↦ c · (M2 σ(M1 x) + Σ_t m_t b_t)`` where

* ``M1`` (*lift*) is a random 1×1 layer ``ρ_in^{n_in} → ρ_in^{2N·n_in}`` whose basis contains the identity
  (orbit basis / channel mixing), coefficients ``U[-1, 1]``;
* ``σ`` is ReLU (equivariant because the fields are permutation representations);
* ``M2`` (*mix*) is a random layer of the target's own type and basis, ``ρ_in^{2N·n_in} → ρ_out^{n_out}``,
  no bias, coefficients ``U[-1, 1]``;
* the bias is a :class:`PooledBias`: every bias coefficient of the target is a sum of a pool of random
  ``U[-1, 1]`` values, added pointwise (no boundary effects);
* ``c`` is a fixed gain: targets are normalised to ``max |coefficient| ≤ 1`` and ReLU is positively
  homogeneous, so the scale is folded back here.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .._compat import is_geometric, tensor_of
from ..basis import Block
from ..nn._masked import MaskedLayer

__all__ = ["PooledBias", "MaskedPooledBias", "IGNPooledBias", "MaskedIGNPooledBias", "LiftMix"]


class PooledBias(nn.Module):
    r"""Adds a bias that is a sum of a pool of coefficients: ``out += E · (Σ_t θ[:, t])``.

    ``expansion`` ``[channels, n_bias]`` maps the ``n_bias`` bias coefficients to output channels (escnn's
    ``bias_expansion`` for steerable layers, the identity for torch layers). ``coefficients`` ``[n_bias, pool]``.
    Works on tensors ``[B, channels, ...]`` and on escnn ``GeometricTensor`` (returned as such).
    """

    def __init__(self, expansion: torch.Tensor, pool: int):
        super().__init__()
        self.register_buffer("expansion", expansion.detach().clone())
        self.bias = nn.Parameter(torch.zeros(expansion.shape[1], pool))

    def coefficient(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def coefficient_blocks(self) -> List[Block]:
        n_bias, pool = self.bias.shape
        index = torch.arange(self.bias.numel()).view(n_bias, pool, 1)
        return [Block("bias", index, torch.ones(1, 1, 1), tuple(range(n_bias)), tuple(range(pool)),
                      "bias", "constant")]

    def coefficient_init_std(self):
        return {"bias": torch.full_like(self.bias, 3**-0.5)}  # U[-1, 1]

    def vector(self) -> torch.Tensor:
        """The bias added to the output channels, ``E · Σ_t θ[:, t]``."""
        return self.expansion @ self.coefficient("bias").sum(dim=1)

    def forward(self, x):
        tensor = tensor_of(x)
        shape = (1, -1) + (1,) * (tensor.dim() - 2)
        out = tensor + self.vector().view(shape)
        if tensor is x:
            return out
        return type(x)(out, x.type, x.coords)

    def extra_repr(self) -> str:
        return f"channels={self.expansion.shape[0]}, n_bias={self.bias.shape[0]}, pool={self.bias.shape[1]}"


class MaskedPooledBias(MaskedLayer, PooledBias):
    base_class = PooledBias


class IGNPooledBias(PooledBias):
    r"""The pooled bias of an :class:`~equislt.nn.IGNLinear` block: ``out[o] += Σ_q (Σ_t θ[(o, q), t]) P_q``.

    ``P_q`` are the ``Bell(order)`` invariant patterns of the output positions (constant, diagonal, ...:
    :func:`~equislt.basis.set_partitions`), applied as :class:`IGNLinear` applies its bias: for padded batches
    (``node_mask [B, n]``) the pattern is zero outside the real nodes. ``coefficients`` ``[C·Bell(order), pool]``
    (channel-major, the layout of ``IGNLinear.bias.reshape(-1)``). Called ``bias(y, node_mask=None)``.
    """

    def __init__(self, channels: int, order: int, pool: int):
        from ..basis._ign import set_partitions

        n_patterns = len(set_partitions(order))
        super().__init__(torch.eye(channels).repeat_interleave(n_patterns, dim=1), pool)
        self.channels, self.order, self.n_patterns = int(channels), int(order), n_patterns

    def vector(self) -> torch.Tensor:
        """``[C, Bell(order)]``: the bias coefficients (each the sum of its pool)."""
        return self.coefficient("bias").sum(dim=1).view(self.channels, self.n_patterns)

    def field(self, n: int, batch: int, node_mask: Optional[torch.Tensor] = None, dtype=None) -> torch.Tensor:
        """The bias field ``[B or 1, C, n, .., n]`` for graphs padded to ``n`` nodes."""
        from ..basis._ign import ign_basis_tensor
        from ..nn._ign import node_mask_power

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


class LiftMix(nn.Module):
    """``x ↦ gain · bias(mix(σ(lift(x))))``: the random two-layer block that replaces one target layer.

    Works on tensors and on escnn ``GeometricTensor`` s (``relu`` is then an escnn ``ReLU``); an escnn-typed
    variant that is an ``EquivariantModule`` is :class:`~equislt.construct._escnn.EscnnLiftMix`.
    """

    def __init__(self, lift: nn.Module, relu: nn.Module, mix: nn.Module, bias: Optional[PooledBias], gain: float):
        super().__init__()
        self.lift, self.relu, self.mix, self.bias = lift, relu, mix, bias
        self.register_buffer("gain", torch.tensor(float(gain)))

    def forward(self, x, *args):
        # extra arguments (e.g. an IGN layer's node_mask) go to the lift, the mix and the bias
        y = self.mix(self.relu(self.lift(x, *args)), *args)
        if self.bias is not None:
            y = self.bias(y, *args)
        if is_geometric(y):
            return type(y)(y.tensor * self.gain, y.type, y.coords)
        return y * self.gain

    def extra_repr(self) -> str:
        return f"gain={float(self.gain):.4g}"
