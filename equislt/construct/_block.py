"""The modules of the random network that the construction prunes, and of its compiled form.

One target layer ``x ↦ W x + β`` becomes :class:`LiftMix`: ``x ↦ c · (M2 σ(M1 x) + Σ_t m_t b_t)`` where

* ``M1`` (*lift*) is a random 1×1 layer ``ρ_in^{F} → ρ_in^{Σ w_b}`` whose basis contains the identity
  (orbit basis / channel mixing), coefficients ``U[-1, 1]``; its outputs are the hidden copies of
  :class:`~equislt.construct.HiddenLayout`;
* ``σ`` is ReLU (equivariant because the fields are permutation representations);
* ``M2`` (*mix*) is a random layer of the target's own type and basis, no bias, coefficients ``U[-1, 1]``;
* the bias is a :class:`PooledBias`: every bias coefficient of the target is a sum of a pool of random
  ``U[-1, 1]`` values, added pointwise (no boundary effects);
* ``c`` is a fixed gain: targets are normalised to ``max |coefficient| ≤ 1/2`` and ReLU is positively
  homogeneous, so the scale is folded back here.

After pruning, each hidden copy keeps one lift coefficient ``u``, so a block equals
:class:`CompiledBlock` ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with target-sized layers.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .._compat import is_geometric, tensor_of
from ..basis import Block
from ..nn import MaskedLayer
from ._layout import HiddenLayout

__all__ = ["CompiledBlock", "LiftMix", "MaskedPooledBias", "PooledBias"]


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


class LiftMix(nn.Module):
    """``x ↦ gain · bias(mix(σ(lift(x))))``: the random two-layer block that replaces one target layer; its
    ``layout`` says which hidden field is which copy of which input field.

    Works on tensors and on escnn ``GeometricTensor`` s (``relu`` is then an escnn ``ReLU``); extra call
    arguments (an IGN layer's ``node_mask``) go to the lift, the mix and the bias.
    """

    def __init__(self, lift: nn.Module, relu: nn.Module, mix: nn.Module, bias: Optional[PooledBias], gain: float,
                 layout: HiddenLayout):
        super().__init__()
        self.lift, self.relu, self.mix, self.bias = lift, relu, mix, bias
        self.layout = layout
        self.register_buffer("gain", torch.tensor(float(gain)))

    def forward(self, x, *args):
        y = self.mix(self.relu(self.lift(x, *args)), *args)
        if self.bias is not None:
            y = self.bias(y, *args)
        if is_geometric(y):
            return type(y)(y.tensor * self.gain, y.type, y.coords)
        return y * self.gain

    def extra_repr(self) -> str:
        return f"gain={float(self.gain):.4g}, copies={list(self.layout.widths)}"


class CompiledBlock(nn.Module):
    """``x ↦ gain · (pos(σ(x)) + neg(σ(−x)) + shift)`` (``neg`` may be ``None``). With ``bias`` (a module
    ``bias(y, *args)``, e.g. an IGN pattern bias) the bias is that module instead of the per-channel ``shift``.
    Extra call arguments (an IGN layer's ``node_mask``) go to ``pos``, ``neg`` and ``bias``."""

    def __init__(self, pos, neg, shift: torch.Tensor, gain: float, bias: Optional[nn.Module] = None):
        super().__init__()
        self.pos, self.neg, self.bias = pos, neg, bias
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("gain", torch.tensor(float(gain)))

    def forward(self, x, *args):
        geometric = is_geometric(x)
        t = tensor_of(x)
        wrap = (lambda v: type(x)(v, x.type, x.coords)) if geometric else (lambda v: v)
        out = tensor_of(self.pos(wrap(torch.relu(t)), *args))
        if self.neg is not None:
            out = out + tensor_of(self.neg(wrap(torch.relu(-t)), *args))
        if self.bias is not None:
            out = self.bias(out, *args) * self.gain
        else:
            out = (out + self.shift.view((1, -1) + (1,) * (out.dim() - 2))) * self.gain
        if geometric:
            return type(x)(out, self.pos.out_type, x.coords)
        return out
