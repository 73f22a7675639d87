"""``Family``: everything the construction needs to know about one kind of target layer.

The construction itself is generic over :func:`equislt.blocks` (coefficient blocks and bases); what differs per
layer kind (how to build a lift and a mix of the same kind, what a channel is, how a batch norm folds in, the
dense kernel for the certificate) is a method here. A subclass declares the layer types it handles in
``layer_types`` and is registered on definition; ``family_of`` (``._registry``) is the only place that decides a
layer's kind.
"""
from __future__ import annotations

import math
from typing import ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...basis import blocks
from .._block import CompiledBlock, LiftMix, PooledBias
from .._layout import HiddenLayout

__all__ = ["FAMILIES", "Family"]

FAMILIES: Dict[type, "Family"] = {}  # layer type -> family, filled as Family subclasses are defined


class Family:
    """Recipes for one kind of target layer. ``widths[b]`` hidden copies of input field ``b`` (see
    :class:`~equislt.construct.HiddenLayout`); "channels" are the layer's output channels (for escnn: the
    components of its output field type)."""

    layer_types: ClassVar[Tuple[type, ...]] = ()
    #: why a batch norm after such a layer cannot be folded into it (``None``: it can)
    norm_folding_unsupported: ClassVar[Optional[str]] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        instance = cls()
        for layer_type in cls.__dict__.get("layer_types", ()):
            FAMILIES[layer_type] = instance

    # -- what a layer is ---------------------------------------------------------------------------------------
    def check(self, layer: nn.Module) -> None:
        """Raise a ValueError naming the reason if ``layer`` cannot be a construction target at all."""

    def inputs(self, layer: nn.Module):
        """The layer's input as :meth:`like` takes it (channels, or an escnn field type)."""
        raise NotImplementedError

    def n_input_fields(self, layer: nn.Module) -> int:
        return int(self.inputs(layer))

    def hidden(self, lift: nn.Module):
        """The lift's output, as :meth:`like` takes it."""
        return lift.weight.shape[0]

    def out_channels(self, layer: nn.Module) -> int:
        return layer.weight.shape[0]

    def field_channels(self, layer: nn.Module, field: int) -> slice:
        """The output channels of output field ``field``."""
        return slice(field, field + 1)

    def weight_name(self, layer: nn.Module) -> str:
        """Name of the layer's weight coefficient tensor."""
        return next(b.tensor for b in blocks(layer) if not b.is_bias)

    def node_count(self, layer: nn.Module, inputs: torch.Tensor, extra: tuple) -> Optional[int]:
        """Graph layers whose operator depends on the number of nodes: the padded node count of a traced call."""
        return None

    # -- the random block --------------------------------------------------------------------------------------
    def lift(self, layer: nn.Module, widths: Sequence[int]) -> nn.Module:
        """A bias-free 1×1 layer from the layer's input to ``Σ w_b`` hidden copies, whose basis holds the identity
        (its coefficients are drawn afterwards)."""
        raise NotImplementedError

    def relu(self, lift: nn.Module) -> nn.Module:
        return nn.ReLU()

    def like(self, layer: nn.Module, inputs) -> nn.Module:
        """A bias-free layer of ``layer``'s type, basis and output, on ``inputs`` (coefficients not initialised)."""
        raise NotImplementedError

    def mix(self, layer: nn.Module, lift: nn.Module) -> nn.Module:
        return self.like(layer, self.hidden(lift))

    def pooled_bias(self, layer: nn.Module, pool: int) -> Optional[nn.Module]:
        """The random pooled bias of the block replacing ``layer`` (``None``: the layer has no bias space)."""
        expansion = self.bias_expansion(layer)
        return PooledBias(expansion, pool) if expansion.shape[1] else None

    def liftmix(self, lift, relu, mix, bias, gain: float, layout: HiddenLayout) -> nn.Module:
        return LiftMix(lift, relu, mix, bias, gain, layout)

    def folded_norm_identity(self, norm: nn.Module) -> nn.Module:
        """What stands in the random network where a batch norm was folded into the preceding layer."""
        return nn.Identity()

    @torch.no_grad()
    def norm_affine(self, norm: nn.Module, example: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(scale, shift)`` of a norm in eval mode (read off at 0 and 1) for inputs like ``example``."""
        shape = (1, example.shape[1]) + (1,) * (example.dim() - 2)
        zeros, ones = torch.zeros(shape), torch.ones(shape)
        was_training = norm.training
        norm.eval()  # running statistics, not the statistics of this probe batch
        try:
            shift = self._call_norm(norm, zeros)
            scale = self._call_norm(norm, ones) - shift
        finally:
            norm.train(was_training)
        return scale.reshape(-1), shift.reshape(-1)

    def _call_norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return norm(x)

    # -- the compiled block ------------------------------------------------------------------------------------
    def compiled(self, pos: nn.Module, neg: Optional[nn.Module], bias: Optional[PooledBias], gain: float) -> nn.Module:
        """``x ↦ gain (pos(σ(x)) + neg(σ(−x)) + bias)`` from the block's pooled bias (``None``: no bias)."""
        shift = bias.vector().detach() if bias is not None else torch.zeros(self.out_channels(pos))
        return CompiledBlock(pos, neg, shift, gain)

    # -- the certificate ---------------------------------------------------------------------------------------
    def bias_expansion(self, layer: nn.Module) -> torch.Tensor:
        """``[out_channels, n_bias]``: how bias coefficients reach output channels."""
        raise NotImplementedError

    def bias_coefficients(self, layer: nn.Module) -> torch.Tensor:
        """``[n_bias]``: the layer's bias coefficients (zeros if it has no bias)."""
        raise NotImplementedError

    def dense(self, layer: nn.Module, coefficients: torch.Tensor) -> torch.Tensor:
        """Dense kernel ``[out_channels, in_channels, *kernel]`` of ``layer`` with these weight coefficients."""
        raise NotImplementedError

    def operator_kernels(self, target, coefficients: List[torch.Tensor]) -> Tuple[Optional[Iterable[torch.Tensor]], str]:
        """``(kernels, note)``: dense kernels whose largest operator norm bounds the operator ``[K_1, K_2, ...]``
        of the coefficient tensors ``coefficients`` in the target's basis (one kernel unless the operator
        depends on the input size); ``(None, reason)`` if no bound can be computed."""
        kernels = [self.dense(target.module, c) for c in coefficients]
        return [torch.cat(kernels, dim=1) if len(kernels) > 1 else kernels[0]], ""

    def bias_norm(self, target, beta: torch.Tensor) -> float:
        """Upper bound on the l2 norm of the bias field with coefficients ``beta`` over the layer's output."""
        if beta.numel() == 0:
            return 0.0
        out_shape = target.out_shape
        positions = math.prod(out_shape[1:]) if len(out_shape) > 1 else 1
        return float((target.expansion.double() @ beta.double()).norm()) * math.sqrt(positions)
