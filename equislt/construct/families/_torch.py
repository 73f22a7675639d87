"""Plain torch ``Linear`` and ``Conv1d/2d/3d`` targets (the trivial group: channels are the fields)."""
from __future__ import annotations

import torch
from torch import nn

from ._base import Family

__all__ = ["TorchFamily"]


class TorchFamily(Family):
    """Lift: a bias-free ``Linear`` or 1×1 convolution to ``Σ w_b`` channels; mix: the target's own layer type,
    kernel, stride, padding and dilation on them."""

    layer_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

    def inputs(self, layer):
        return layer.weight.shape[1]

    def lift(self, layer, widths):
        n_in = self.inputs(layer)
        if len(widths) != n_in:
            raise ValueError(f"construct: {len(widths)} widths for {n_in} input channels")
        # no init: every coefficient is drawn afterwards (skip_init avoids a costly kaiming init)
        if isinstance(layer, nn.Linear):
            return nn.utils.skip_init(nn.Linear, n_in, int(sum(widths)), bias=False)
        self._check_groups(layer)
        return nn.utils.skip_init(type(layer), n_in, int(sum(widths)), 1, bias=False)

    def like(self, layer, inputs):
        base = getattr(layer, "base_class", type(layer))
        if issubclass(base, nn.Linear):
            return nn.utils.skip_init(nn.Linear, inputs, layer.out_features, bias=False)
        self._check_groups(layer)
        return nn.utils.skip_init(base, inputs, layer.out_channels, layer.kernel_size, stride=layer.stride,
                                  padding=layer.padding, dilation=layer.dilation, padding_mode=layer.padding_mode,
                                  bias=False)

    @staticmethod
    def _check_groups(layer):
        if layer.groups != 1:
            raise ValueError(f"{type(layer).__name__} with groups={layer.groups}: the construction needs groups=1")

    def bias_expansion(self, layer):
        return torch.eye(layer.weight.shape[0])

    def bias_coefficients(self, layer):
        bias = getattr(layer, "bias", None)
        return torch.zeros(layer.weight.shape[0]) if bias is None else bias.detach().clone()

    def dense(self, layer, coefficients):
        return coefficients.reshape(layer.weight.shape)
