"""escnn versions of the construction's modules (``SequentialModule`` children must be EquivariantModules)."""
from __future__ import annotations

import torch
from torch import nn

from .._compat import import_escnn
from ._modules import LiftMix

escnn = import_escnn()

__all__ = ["EscnnLiftMix", "EscnnIdentity"]


class EscnnLiftMix(LiftMix, escnn.nn.EquivariantModule):
    """:class:`LiftMix` as an escnn ``EquivariantModule`` (``in_type`` of the lift, ``out_type`` of the mix)."""

    def __init__(self, lift, relu, mix, bias, gain):
        escnn.nn.EquivariantModule.__init__(self)
        LiftMix.__init__(self, lift, relu, mix, bias, gain)
        self.in_type, self.out_type = lift.in_type, mix.out_type

    def evaluate_output_shape(self, input_shape):
        return self.mix.evaluate_output_shape(self.lift.evaluate_output_shape(input_shape))

    def export(self) -> nn.Module:
        parts = [self.lift.export(), nn.ReLU(), self.mix.export()]
        if self.bias is not None:
            shift = self.bias.vector().detach()
            parts.append(_Shift(shift))
        parts.append(_Gain(float(self.gain)))
        return nn.Sequential(*parts)


class EscnnIdentity(escnn.nn.IdentityModule):
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
