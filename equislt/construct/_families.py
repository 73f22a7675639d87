"""Per-family recipes: how to build the lift and the mix of one target layer, and its dense kernel.

A family knows one kind of target layer (torch ``Linear``/``ConvNd``, escnn ``R2Conv``/``R3Conv``/``Linear``,
``OrbitLinear``, PyG ``Linear``, :class:`~equislt.nn.IGNLinear` in :mod:`._graph_families`). Everything else in the construction is generic over :func:`equislt.blocks`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .._compat import escnn_loaded

__all__ = ["family_of", "Family"]


class Family:
    """Interface. ``layer`` is the target layer; ``widths[b]`` (2N, more where widened) hidden copies of input
    field ``b``, ordered "all copies of field 0, then field 1, ..."."""

    def lift(self, layer, widths: Sequence[int]) -> nn.Module:
        raise NotImplementedError

    def relu(self, lift: nn.Module) -> nn.Module:
        return nn.ReLU()

    def like(self, layer, inputs) -> nn.Module:
        """A bias-free layer of ``layer``'s type, basis and output, on ``inputs`` (channels or field type)."""
        raise NotImplementedError

    def hidden(self, lift: nn.Module):
        """The lift's output (channels or field type)."""
        return lift.out_type if hasattr(lift, "out_type") else lift.weight.shape[0]

    def inputs(self, layer):
        return layer.in_type if hasattr(layer, "in_type") else layer.weight.shape[1]

    def mix(self, layer, lift: nn.Module) -> nn.Module:
        return self.like(layer, self.hidden(lift))

    def bias_expansion(self, layer) -> torch.Tensor:
        """``[out_channels, n_bias]``: how bias coefficients reach output channels."""
        raise NotImplementedError

    def bias_coefficients(self, layer) -> torch.Tensor:
        """``[n_bias]``: the layer's bias coefficients (zeros if it has no bias)."""
        raise NotImplementedError

    def dense(self, layer, coefficients: torch.Tensor) -> torch.Tensor:
        """Dense kernel ``[out_channels, in_channels, *kernel]`` of ``layer`` with the given weight coefficients."""
        raise NotImplementedError

    def liftmix(self, lift, relu, mix, bias, gain) -> nn.Module:
        from ._modules import LiftMix

        return LiftMix(lift, relu, mix, bias, gain)

    def pooled_bias(self, layer, pool: int) -> Optional[nn.Module]:
        """The random pooled bias of the block replacing ``layer`` (``None``: the layer has no bias space)."""
        from ._modules import PooledBias

        expansion = self.bias_expansion(layer)
        return PooledBias(expansion, pool) if expansion.shape[1] else None

    def operator_bound(self, target, coefficients):
        """``(bound, note)``: Schur bound of the operator ``[K_1, K_2, ...]`` (kernels of the coefficient tensors
        ``coefficients`` in ``target``'s basis, concatenated along inputs); ``(None, reason)`` if unavailable."""
        from ._certificate import schur_bound

        kernels = [self.dense(target.module, c) for c in coefficients]
        return schur_bound(torch.cat(kernels, dim=1) if len(kernels) > 1 else kernels[0]), ""

    def bias_bound(self, target, beta: torch.Tensor) -> float:
        """Upper bound on the l2 norm of the bias field with coefficients ``beta`` over the layer's output."""
        import math

        out_shape = target.out_shape
        positions = math.prod(out_shape[1:]) if len(out_shape) > 1 else 1
        if beta.numel() == 0:
            return 0.0
        return float((target.expansion.double() @ beta.double()).norm()) * math.sqrt(positions)


class TorchFamily(Family):
    def lift(self, layer, widths):
        n_in = layer.weight.shape[1]
        hidden = int(sum(widths))
        if len(widths) != n_in:
            raise ValueError(f"construct: {len(widths)} widths for {n_in} input channels")
        # no init: every coefficient is drawn by draw_block (skip_init avoids a costly kaiming init)
        if isinstance(layer, nn.Linear):
            return nn.utils.skip_init(nn.Linear, n_in, hidden, bias=False)
        conv = type(layer)
        if layer.groups != 1:
            raise ValueError(f"{type(layer).__name__} with groups={layer.groups}: the construction needs groups=1")
        return nn.utils.skip_init(conv, n_in, hidden, 1, bias=False)

    def like(self, layer, inputs):
        # no init: the caller writes every coefficient (draw_block, or compile's computed coefficients)
        base = getattr(layer, "base_class", type(layer))
        if issubclass(base, nn.Linear):
            return nn.utils.skip_init(nn.Linear, inputs, layer.out_features, bias=False)
        return nn.utils.skip_init(base, inputs, layer.out_channels, layer.kernel_size, stride=layer.stride,
                                  padding=layer.padding, dilation=layer.dilation, padding_mode=layer.padding_mode,
                                  bias=False)

    def bias_expansion(self, layer):
        return torch.eye(layer.weight.shape[0])

    def bias_coefficients(self, layer):
        bias = getattr(layer, "bias", None)
        return torch.zeros(layer.weight.shape[0]) if bias is None else bias.detach().clone()

    def dense(self, layer, coefficients):
        return coefficients.reshape(layer.weight.shape)


class EscnnFamily(Family):
    def __init__(self):
        from .._compat import import_escnn

        self.escnn = import_escnn()

    def _hidden_type(self, in_type, widths):
        if len(widths) != len(in_type):
            raise ValueError(f"construct: {len(widths)} widths for {len(in_type)} input fields")
        reps = [rep for rep, w in zip(in_type.representations, widths) for _ in range(int(w))]
        return self.escnn.nn.FieldType(in_type.gspace, reps)

    def lift(self, layer, widths):
        from ..nn import OrbitLinear

        try:
            return OrbitLinear(layer.in_type, self._hidden_type(layer.in_type, widths), bias=False, initialize=False)
        except ValueError as err:
            raise ValueError(f"{type(layer).__name__} input: {err}") from None

    def relu(self, lift):
        return self.escnn.nn.ReLU(lift.out_type)

    def like(self, layer, inputs):
        enn = self.escnn.nn
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

    def _bias_rows(self, layer):
        enn_type = layer.out_type
        group = enn_type.fibergroup
        columns = []
        p = 0
        for rep in enn_type.representations:
            pi = 0
            for irr in rep.irreps:
                irrep = group.irrep(*irr)
                if irrep.is_trivial():
                    col = torch.zeros(enn_type.size)
                    col[p:p + rep.size] = torch.as_tensor(rep.change_of_basis[:, pi], dtype=torch.float32)
                    columns.append(col)
                pi += irrep.size
            p += rep.size
        return torch.stack(columns, dim=1) if columns else torch.zeros(enn_type.size, 0)

    def bias_expansion(self, layer):
        expansion = getattr(layer, "bias_expansion", None)
        return expansion.detach().clone() if expansion is not None else self._bias_rows(layer)

    def bias_coefficients(self, layer):
        bias = getattr(layer, "bias", None)
        n = self.bias_expansion(layer).shape[1]
        return torch.zeros(n) if bias is None else bias.detach().clone()

    def dense(self, layer, coefficients):
        kernel = layer.basisexpansion(coefficients)
        shape = (kernel.shape[0], kernel.shape[1]) + ((layer.kernel_size,) * layer.d if hasattr(layer, "d") else ())
        return kernel.reshape(shape)

    def liftmix(self, lift, relu, mix, bias, gain):
        from ._escnn import EscnnLiftMix

        return EscnnLiftMix(lift, relu, mix, bias, gain)


class OrbitFamily(EscnnFamily):
    def like(self, layer, inputs):
        from ..nn import OrbitLinear

        return OrbitLinear(inputs, layer.out_type, bias=False, initialize=False)

    def bias_expansion(self, layer):
        blocks = [b for b in layer.coefficient_blocks() if b.is_bias]
        if not blocks:
            return self._bias_rows(layer)
        n = layer.bias.numel()
        expansion = torch.zeros(layer.out_type.size, n)
        for block in blocks:
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


class PyGLinearFamily(TorchFamily):
    """PyG ``torch_geometric.nn.Linear`` (the coefficient layers of PyG MLPs and convs): a dense channel map
    applied per node; lift and mix are torch ``nn.Linear`` (the message passing around it is glue)."""

    def lift(self, layer, widths):
        if len(widths) != layer.in_channels:
            raise ValueError(f"construct: {len(widths)} widths for {layer.in_channels} input channels")
        return nn.utils.skip_init(nn.Linear, layer.in_channels, int(sum(widths)), bias=False)

    def like(self, layer, inputs):
        return nn.utils.skip_init(nn.Linear, int(inputs), layer.out_channels, bias=False)


def _is_pyg_linear(layer) -> bool:
    import sys

    if "torch_geometric" not in sys.modules:
        return False
    from torch_geometric.nn.dense.linear import Linear

    if isinstance(layer, Linear):
        if layer.in_channels is None or layer.in_channels < 0:
            raise ValueError("construct: a lazy PyG Linear (in_channels=-1) has no weights yet: run the target once "
                             "or give in_channels")
        return True
    return False


def family_of(layer) -> Optional[Family]:
    """The family of a target layer, or ``None`` if the construction cannot handle it."""
    if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return TorchFamily()
    if _is_pyg_linear(layer):
        return PyGLinearFamily()
    from ..nn._ign import IGNLinear

    if isinstance(layer, IGNLinear):
        from ._graph_families import IGNFamily

        return IGNFamily()
    if escnn_loaded():
        from .._compat import import_escnn

        enn = import_escnn().nn
        from ..nn._orbit_linear import OrbitLinear

        if isinstance(layer, OrbitLinear):
            return OrbitFamily()
        if isinstance(layer, (enn.R2Conv, enn.R3Conv, enn.Linear)):
            return EscnnFamily()
    return None
