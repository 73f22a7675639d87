"""Export: a model with identical outputs made of plain torch modules only (no mask, no escnn module).

After :func:`~equislt.nn.fold`, every escnn module is converted: by escnn's own ``export()`` where it has one, and
here where it has none (pointwise average pooling, antialiased or not, in 2D and 3D; group pooling and inner batch
norm over fields of different sizes; gated nonlinearities; ``SequentialModule`` and ``MultipleModule`` holding any
of them). An escnn root becomes the plain module (tensors in,
tensors out, as escnn's ``export()``); inside a torch root each escnn submodule becomes a plain module that takes
and returns what the escnn module did (a ``GeometricTensor`` in gives a ``GeometricTensor`` out), so the root's
own ``forward`` runs unchanged.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn
from torch.nn import functional as F

from .._compat import escnn_loaded, import_escnn, is_geometric
from ._convert import fold, replace_module

__all__ = ["ChannelAffine", "ChannelBranches", "DepthwiseFilter", "FieldMaxPool", "GatedChannels", "GeometricAdapter",
           "export"]


class ChannelAffine(nn.Module):
    """``x · scale + shift`` per channel (escnn's ``InnerBatchNorm`` in eval mode, fields of any sizes)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"


class DepthwiseFilter(nn.Module):
    """A fixed depthwise filter (escnn's antialiased average pooling): ``conv(x, filter, groups=channels)``."""

    def __init__(self, weight: torch.Tensor, stride, padding):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.stride, self.padding = stride, padding
        self._conv = F.conv2d if weight.dim() == 4 else F.conv3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.weight, stride=self.stride, padding=self.padding, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}, kernel={list(self.weight.shape[2:])}, stride={self.stride}"


class FieldMaxPool(nn.Module):
    """The maximum over the channels of each field, fields of any sizes (escnn's ``GroupPooling``): output channel
    ``j`` is the max of input channels ``groups[s][j]`` for the fields of size ``s``."""

    def __init__(self, fields: Dict[int, List[int]], starts: Dict[int, List[int]], n_fields: int):
        super().__init__()
        self.n_fields = n_fields
        self.sizes = sorted(fields)
        for s in self.sizes:
            channels = torch.tensor([[start + k for k in range(s)] for start in starts[s]], dtype=torch.long)
            self.register_buffer(f"channels_{s}", channels.view(-1))
            self.register_buffer(f"fields_{s}", torch.tensor(fields[s], dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_empty((x.shape[0], self.n_fields) + tuple(x.shape[2:]))
        for s in self.sizes:
            fields = getattr(self, f"fields_{s}")
            picked = x.index_select(1, getattr(self, f"channels_{s}"))
            out[:, fields] = picked.view(x.shape[0], len(fields), s, *x.shape[2:]).amax(dim=2)
        return out

    def extra_repr(self) -> str:
        return f"fields={self.n_fields}, sizes={self.sizes}"


class GatedChannels(nn.Module):
    """escnn's ``GatedNonLinearity1``: every gated channel times ``sigmoid(gate - bias)`` of its field's gate
    (``gated[j]`` ← ``inputs[j] · σ(x[gates[gate_of[j]]] - bias[gate_of[j]])``), the gates kept at
    ``gate_outputs`` unless dropped."""

    def __init__(self, gates, bias, inputs, outputs, gate_of, gate_outputs, out_channels: int):
        super().__init__()
        for name, value in (("gates", gates), ("inputs", inputs), ("outputs", outputs), ("gate_of", gate_of),
                            ("gate_outputs", gate_outputs)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.long))
        self.register_buffer("bias", bias.detach().clone())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        gates = torch.sigmoid(x.index_select(1, self.gates) - self.bias.view(view))
        out = x.new_empty((x.shape[0], self.out_channels) + tuple(x.shape[2:]))
        if self.gate_outputs.numel():
            out[:, self.gate_outputs] = gates
        out[:, self.outputs] = x.index_select(1, self.inputs) * gates.index_select(1, self.gate_of)
        return out


class ChannelBranches(nn.Module):
    """escnn's ``MultipleModule``: branch ``i`` gets the input channels ``channels_i`` and the outputs are
    concatenated in branch order."""

    def __init__(self, branches: List[tuple]):
        super().__init__()
        self.branches = nn.ModuleList(module for _, module in branches)
        for i, (channels, _) in enumerate(branches):
            self.register_buffer(f"channels_{i}", torch.as_tensor(channels, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x.index_select(1, getattr(self, f"channels_{i}")))
                          for i, branch in enumerate(self.branches)], dim=1)


class GeometricAdapter(nn.Module):
    """A plain module standing where an escnn module was inside a torch model: a ``GeometricTensor`` input gives a
    ``GeometricTensor`` of the escnn module's ``out_type`` (computed by ``plain`` on the tensor), a tensor a
    tensor."""

    def __init__(self, plain: nn.Module, out_type):
        super().__init__()
        self.plain = plain
        self.out_type = out_type

    def forward(self, x):
        if is_geometric(x):
            return import_escnn().nn.GeometricTensor(self.plain(x.tensor), self.out_type)
        return self.plain(x)


def _group_pooling(module) -> nn.Module:
    fields: Dict[int, List[int]] = {}
    starts: Dict[int, List[int]] = {}
    start = 0
    for index, representation in enumerate(module.in_type.representations):
        fields.setdefault(representation.size, []).append(index)
        starts.setdefault(representation.size, []).append(start)
        start += representation.size
    return FieldMaxPool(fields, starts, len(module.in_type))


def _inner_batch_norm(module) -> nn.Module:
    """Eval-mode ``InnerBatchNorm``: every field normalised by its own running mean and variance (shared by the
    field's channels), then its affine weight and bias: one scale and shift per channel."""
    scale = torch.ones(module.in_type.size)
    shift = torch.zeros(module.in_type.size)
    for size, contiguous in module._contiguous.items():
        indices = getattr(module, f"indices_{size}")
        channels = torch.arange(int(indices[0]), int(indices[1])) if contiguous else indices
        norm = getattr(module, f"batch_norm_[{size}]")
        if norm.running_mean is None:
            raise TypeError(f"export: {type(module).__name__} without running statistics (track_running_stats="
                            "False) normalises by each batch: it has no fixed plain form")
        field_scale = torch.rsqrt(norm.running_var + norm.eps)
        field_shift = -norm.running_mean * field_scale
        if norm.affine:
            field_scale, field_shift = field_scale * norm.weight, field_shift * norm.weight + norm.bias
        scale[channels] = field_scale.detach().repeat_interleave(size)
        shift[channels] = field_shift.detach().repeat_interleave(size)
    return ChannelAffine(scale, shift)


def _channels(indices: torch.Tensor, contiguous: bool) -> torch.Tensor:
    """escnn's index buffers: ``[start, stop]`` of a contiguous block, else the channel list."""
    return torch.arange(int(indices[0]), int(indices[1])) if contiguous else indices.view(-1)


def _gated(module) -> nn.Module:
    """``GatedNonLinearity1`` as index arithmetic over its own buffers (the order of its ``forward``)."""
    gates = _channels(module.gates_indices, module._contiguous["gate"])
    inputs, outputs, gate_of, next_gate = [], [], [], 0
    for size in module._order:
        count = module._nfields[size]
        inputs.append(_channels(getattr(module, f"input_indices_{size}"), module._contiguous[size]))
        outputs.append(_channels(getattr(module, f"output_indices_{size}"), module._contiguous[size]))
        gate_of.append(torch.arange(next_gate, next_gate + count).repeat_interleave(size))
        next_gate += count
    gate_outputs = torch.zeros(0, dtype=torch.long) if module.drop_gates else gates
    return GatedChannels(gates, module.bias, torch.cat(inputs), torch.cat(outputs), torch.cat(gate_of),
                         gate_outputs, module.out_type.size)


def _multiple(module) -> nn.Module:
    """``MultipleModule`` (one label per branch, no reshuffle) as :class:`ChannelBranches`."""
    branching, merging = module.branching, module.merging
    if getattr(branching, "reshuffle_layer", None) is not None or any(len(ls) != 1 for ls in merging._labels):
        raise TypeError("export: a MultipleModule that reshuffles its fields or feeds a branch several labels has "
                        "no plain form in equislt")
    branches = []
    for i, (label,) in enumerate(merging._labels):
        channels = _channels(getattr(branching, f"indices_{label}"), branching._contiguous[label])
        branches.append((channels, _plain(getattr(merging, f"submodule_{i}"))))
    return ChannelBranches(branches)


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(iter(list(module.parameters()) + list(module.buffers())), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _plain(module: nn.Module) -> nn.Module:
    """The plain torch module computing what escnn ``module`` computes on tensors (on the module's device)."""
    return _converted(module).to(_device_of(module))


def _converted(module: nn.Module) -> nn.Module:
    enn = import_escnn().nn
    if isinstance(module, enn.SequentialModule):
        return nn.Sequential(*(_plain(child) for child in module.children()))
    if isinstance(module, (enn.PointwiseAvgPool2D, enn.PointwiseAvgPool3D)):
        pool = nn.AvgPool2d if isinstance(module, enn.PointwiseAvgPool2D) else nn.AvgPool3d
        return pool(module.kernel_size, module.stride, module.padding, module.ceil_mode)
    if isinstance(module, (enn.PointwiseAvgPoolAntialiased2D, enn.PointwiseAvgPoolAntialiased3D)):
        return DepthwiseFilter(module.filter, module.stride, module.padding)
    if isinstance(module, enn.GroupPooling):
        return _group_pooling(module)
    if isinstance(module, enn.InnerBatchNorm):
        return _inner_batch_norm(module)
    if isinstance(module, enn.GatedNonLinearity1):
        return _gated(module)
    if isinstance(module, enn.MultipleModule):
        return _multiple(module)
    try:
        return module.export()
    except NotImplementedError as err:
        raise TypeError(f"export: escnn's {type(module).__name__} has no plain torch form in escnn or equislt "
                        f"({str(err).strip().splitlines()[0]})") from None


def export(model: nn.Module) -> nn.Module:
    """A plain torch model with identical outputs (see the module): :func:`fold`, then every escnn module
    converted. The result is in eval mode (escnn exports only in eval mode)."""
    folded = fold(model).eval()
    if not escnn_loaded():
        return folded
    enn = import_escnn().nn
    if isinstance(folded, enn.EquivariantModule):
        return _plain(folded).eval()
    outermost: List[tuple] = []  # escnn modules not inside another one (named_modules lists parents first)
    for path, module in folded.named_modules():
        if isinstance(module, enn.EquivariantModule) and not any(path.startswith(f"{p}.") for p, _ in outermost):
            outermost.append((path, module))
    for path, module in outermost:
        folded = replace_module(folded, path, GeometricAdapter(_plain(module), module.out_type))
    return folded.eval()
