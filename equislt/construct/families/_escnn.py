"""escnn targets: ``R2Conv``/``R3Conv``/``escnn.nn.Linear`` (steerable bases) and equislt's ``OrbitLinear``.

The lift is an :class:`~equislt.nn.OrbitLinear` onto copies of the input fields (its orbit basis holds the
identity; ReLU commutes with permutation fields); the mix is the target's own layer class on the hidden type,
whose steerable basis escnn rebuilds from default arguments and which is checked to equal the target's. The
block modules are escnn ``EquivariantModule`` s so that they fit in a ``SequentialModule``. Imported once escnn is.
"""
from __future__ import annotations

import torch
from torch import nn

from ..._compat import import_escnn
from ...basis import blocks
from ...nn import OrbitLinear
from .._block import CompiledBlock, LiftMix
from ._base import Family

escnn = import_escnn()
enn = escnn.nn

__all__ = ["EscnnCompiledBlock", "EscnnFamily", "EscnnIdentity", "EscnnLiftMix", "OrbitFamily"]


class EscnnLiftMix(LiftMix, enn.EquivariantModule):
    """:class:`~equislt.construct.LiftMix` as an escnn ``EquivariantModule`` (``in_type`` of the lift,
    ``out_type`` of the mix)."""

    def __init__(self, lift, relu, mix, bias, gain, layout):
        enn.EquivariantModule.__init__(self)
        LiftMix.__init__(self, lift, relu, mix, bias, gain, layout)
        self.in_type, self.out_type = lift.in_type, mix.out_type

    def evaluate_output_shape(self, input_shape):
        return self.mix.evaluate_output_shape(self.lift.evaluate_output_shape(input_shape))

    def export(self) -> nn.Module:
        parts = [self.lift.export(), nn.ReLU(), self.mix.export()]
        if self.bias is not None:
            parts.append(_Shift(self.bias.vector().detach()))
        parts.append(_Gain(float(self.gain)))
        return nn.Sequential(*parts)


class EscnnCompiledBlock(CompiledBlock, enn.EquivariantModule):
    """:class:`~equislt.construct.CompiledBlock` as an escnn ``EquivariantModule``."""

    def __init__(self, pos, neg, shift, gain):
        enn.EquivariantModule.__init__(self)
        CompiledBlock.__init__(self, pos, neg, shift, gain)
        self.in_type, self.out_type = pos.in_type, pos.out_type

    def evaluate_output_shape(self, input_shape):
        return self.pos.evaluate_output_shape(input_shape)


class EscnnIdentity(enn.IdentityModule):
    """Stands in for a batch norm folded into the preceding layer."""


class _Shift(nn.Module):
    def __init__(self, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.clone())

    def forward(self, x):
        return x + self.shift.view((1, -1) + (1,) * (x.dim() - 2))


class _Gain(nn.Module):
    def __init__(self, gain: float):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain


class EscnnFamily(Family):
    layer_types = (enn.R2Conv, enn.R3Conv, enn.Linear)

    def inputs(self, layer):
        return layer.in_type

    def n_input_fields(self, layer):
        return len(layer.in_type)

    def hidden(self, lift):
        return lift.out_type

    def out_channels(self, layer):
        return layer.out_type.size

    def field_channels(self, layer, field):
        return slice(int(layer.out_type.fields_start[field]), int(layer.out_type.fields_end[field]))

    def _hidden_type(self, in_type, widths):
        if len(widths) != len(in_type):
            raise ValueError(f"construct: {len(widths)} widths for {len(in_type)} input fields")
        reps = [rep for rep, w in zip(in_type.representations, widths) for _ in range(int(w))]
        return enn.FieldType(in_type.gspace, reps)

    def lift(self, layer, widths):
        try:
            return OrbitLinear(layer.in_type, self._hidden_type(layer.in_type, widths), bias=False, initialize=False)
        except ValueError as err:
            raise ValueError(f"{type(layer).__name__} input: {err}") from None

    def relu(self, lift):
        return enn.ReLU(lift.out_type)

    def like(self, layer, inputs):
        base = getattr(layer, "base_class", type(layer))
        if issubclass(base, enn.Linear):
            new = enn.Linear(inputs, layer.out_type, bias=False, initialize=False)
        else:
            if layer.groups != 1:
                raise ValueError(f"{type(layer).__name__} with groups={layer.groups}: the construction needs groups=1")
            new = base(inputs, layer.out_type, layer.kernel_size, padding=layer.padding, stride=layer.stride,
                       dilation=layer.dilation, padding_mode=layer.padding_mode, bias=False, initialize=False)
        _check_same_basis(layer, new)
        return new

    def liftmix(self, lift, relu, mix, bias, gain, layout):
        return EscnnLiftMix(lift, relu, mix, bias, gain, layout)

    def folded_norm_identity(self, norm):
        return EscnnIdentity(norm.in_type)

    def _call_norm(self, norm, x):
        return norm(enn.GeometricTensor(x, norm.in_type)).tensor

    def compiled(self, pos, neg, bias, gain):
        shift = bias.vector().detach() if bias is not None else torch.zeros(self.out_channels(pos))
        return EscnnCompiledBlock(pos, neg, shift, gain)

    def _trivial_bias_columns(self, layer):
        """``[out.size, n_trivial]``: the bias space of an output type, one column per trivial irrep."""
        out_type = layer.out_type
        group = out_type.fibergroup
        columns = []
        p = 0
        for rep in out_type.representations:
            pi = 0
            for irr in rep.irreps:
                irrep = group.irrep(*irr)
                if irrep.is_trivial():
                    col = torch.zeros(out_type.size)
                    col[p:p + rep.size] = torch.as_tensor(rep.change_of_basis[:, pi], dtype=torch.float32)
                    columns.append(col)
                pi += irrep.size
            p += rep.size
        return torch.stack(columns, dim=1) if columns else torch.zeros(out_type.size, 0)

    def bias_expansion(self, layer):
        expansion = getattr(layer, "bias_expansion", None)
        return expansion.detach().clone() if expansion is not None else self._trivial_bias_columns(layer)

    def bias_coefficients(self, layer):
        bias = getattr(layer, "bias", None)
        return torch.zeros(self.bias_expansion(layer).shape[1]) if bias is None else bias.detach().clone()

    def dense(self, layer, coefficients):
        kernel = layer.basisexpansion(coefficients)
        shape = (kernel.shape[0], kernel.shape[1]) + ((layer.kernel_size,) * layer.d if hasattr(layer, "d") else ())
        return kernel.reshape(shape)


class OrbitFamily(EscnnFamily):
    """:class:`~equislt.nn.OrbitLinear` targets: the mix is an ``OrbitLinear`` on the hidden type."""

    layer_types = (OrbitLinear,)

    def like(self, layer, inputs):
        return OrbitLinear(inputs, layer.out_type, bias=False, initialize=False)

    def bias_expansion(self, layer):
        bias_blocks = [b for b in blocks(layer) if b.is_bias]
        if not bias_blocks:
            return self._trivial_bias_columns(layer)
        expansion = torch.zeros(layer.out_type.size, layer.bias.numel())
        for block in bias_blocks:
            for o, field in enumerate(block.out_fields):
                start = int(layer.out_type.fields_start[field])
                for k in range(block.n_basis):
                    expansion[start:start + block.basis.shape[1], int(block.index[o, 0, k])] = block.basis[k, :, 0]
        return expansion

    def dense(self, layer, coefficients):
        saved = layer.weights.data.clone()
        try:
            layer.weights.data.copy_(coefficients)
            matrix, _ = type(layer).expand_parameters(layer)
        finally:
            layer.weights.data.copy_(saved)
        return matrix


def _check_same_basis(target, mix):
    """The mix must use the target's steerable basis (escnn rebuilds it from default arguments)."""
    t_be, m_be = target._basisexpansion, mix._basisexpansion
    for pair in t_be._representations_pairs:
        if pair not in m_be._representations_pairs:
            raise ValueError(f"{type(target).__name__}: cannot rebuild its basis for {pair} (custom basis arguments?)")
        tb = getattr(t_be, f"block_expansion_{t_be._escape_pair(pair)}").sampled_basis
        mb = getattr(m_be, f"block_expansion_{m_be._escape_pair(pair)}").sampled_basis
        if tb.shape != mb.shape or not torch.allclose(tb, mb, atol=1e-6):
            raise ValueError(f"{type(target).__name__}: the rebuilt steerable basis for {pair} differs from the "
                             "target's (built with custom sigma/rings/frequencies_cutoff?): not supported yet")
