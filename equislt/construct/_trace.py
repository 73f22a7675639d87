"""Read a target network: its layers in execution order, batch norms to fold, what the construction supports.

The target is run once on sample inputs with forward hooks on its *units*: coefficient layers, batch
norms and parameter-free leaves (containers such as ``nn.Sequential``/``SequentialModule`` or a custom
``forward`` are looked through). Batch norms (eval mode: a per-channel affine map) are folded into the
layer they follow; anything that is not a supported linear layer, ReLU, pooling or reshaping raises an
error naming the unit and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import nn

from .._compat import escnn_loaded, import_escnn, is_geometric, tensor_of
from ..basis import blocks
from .families import Family, family_of

__all__ = ["TRACE_SAMPLES", "TargetLayer", "Trace", "Unit", "check_inputs", "connected", "samples_within",
           "slice_inputs", "trace_target"]

_PASSIVE = ("ReLU", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
            "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
            "AdaptiveMaxPool3d", "Flatten", "Identity", "Dropout", "IdentityModule", "EscnnIdentity", "GroupPooling",
            # escnn's pointwise pools on permutation fields (2D and 3D; antialiased ones blur with a non-negative
            # normalised filter first), which commute with ReLU's sign structure
            "PointwiseMaxPool", "PointwiseMaxPool2D", "PointwiseMaxPool3D", "PointwiseAvgPool", "PointwiseAvgPool2D",
            "PointwiseAvgPool3D", "PointwiseMaxPoolAntialiased", "PointwiseMaxPoolAntialiased2D",
            "PointwiseMaxPoolAntialiased3D", "PointwiseAvgPoolAntialiased", "PointwiseAvgPoolAntialiased2D",
            "PointwiseAvgPoolAntialiased3D", "PointwiseAdaptiveAvgPool", "PointwiseAdaptiveAvgPool2D",
            "PointwiseAdaptiveAvgPool3D", "PointwiseAdaptiveMaxPool", "PointwiseAdaptiveMaxPool2D",
            "PointwiseAdaptiveMaxPool3D",
            # PyG message passing: parameter-free (fixed) neighbourhood aggregations, glue between Linear layers
            "SumAggregation", "MeanAggregation", "MaxAggregation", "MinAggregation",
            "TrimToLayer")  # BasicGNN's neighbour-sampling trim: the identity without num_sampled_nodes
_SIGN_PRESERVING = tuple(n for n in _PASSIVE if n != "ReLU")  # non-negative in → non-negative out
_NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InnerBatchNorm")


@dataclass
class Unit:
    path: str
    module: nn.Module
    kind: str  # "linear" | "norm" | "passive"
    inputs: torch.Tensor = None
    output: torch.Tensor = None
    extra: tuple = ()  # further positional arguments of the call (e.g. an IGN layer's node_mask)


@dataclass
class TargetLayer:
    """One linear layer of the target, with batch norm folded in.

    ``alpha`` has the layout of the layer's weight coefficient tensor (``weights`` for escnn, ``weight``
    for torch); ``beta`` ``[n_bias]`` and ``expansion`` ``[out_channels, n_bias]`` give its bias vector
    ``expansion @ beta``.
    """

    path: str
    module: nn.Module
    family: Family
    weight_name: str
    alpha: torch.Tensor
    beta: torch.Tensor
    expansion: torch.Tensor
    input_nonnegative: bool
    folded_norm: Optional[str] = None
    in_shape: tuple = ()
    out_shape: tuple = ()
    n_nodes: Optional[int] = None  # graph layers: padded number of nodes of the traced batch
    relu_inferred: bool = False  # the input is a functional torch.relu of the previous output, seen on the traces


@dataclass
class Trace:
    units: List[Unit] = field(default_factory=list)
    layers: List[TargetLayer] = field(default_factory=list)


def _tensor(x):
    if isinstance(x, (tuple, list)):
        x = x[0]
    return tensor_of(x)


def _kind(module: nn.Module) -> Optional[str]:
    name = type(module).__name__
    if family_of(module) is not None:
        return "linear"
    if name in _NORMS:
        return "norm"
    if name in _PASSIVE:
        return "passive"
    return None


def _units(model: nn.Module):
    """``(path, module)`` of the units, not descending into them. A module instance reached under several paths
    (e.g. one ReLU shared by PyG's ``BasicGNN`` and its MLPs) is one unit, under its first path. Containers
    that hold parameters of their own (e.g. ``GCNConv.bias``, added after propagation) are refused: those
    parameters are outside every layer the construction replaces."""
    stack = [("", model)]
    done = set()
    while stack:
        path, module = stack.pop()
        if id(module) in done:
            continue
        done.add(id(module))
        kind = _kind(module)
        children = list(module.named_children())
        if kind is not None or not children:
            yield path, module, kind
            continue
        own = [name for name, p in module._parameters.items() if p is not None]
        if own:
            name = type(module).__name__
            remedy = (f"build {name} with bias=False and put the bias in a following Linear" if own == ["bias"] else
                      f"{name}'s {', '.join(p for p in own if p != 'bias')} cannot be made of pruned random "
                      "coefficients; use a layer whose parameters all sit in Linear sub-layers (e.g. GINConv), or "
                      "search a ticket instead (the search masks the Linear sub-layers and keeps these dense: "
                      "equislt.nn.coverage lists them)")
            raise ValueError(f"construct: layer {path or '<root>'} ({name}) has parameters outside its sub-layers "
                             f"({', '.join(own)}); the construction only replaces supported linear layers: {remedy}")
        for name, child in reversed(children):
            stack.append((f"{path}.{name}" if path else name, child))


_REASONS = {
    "NormNonLinearity": "norm nonlinearities act on irrep fields; the construction needs ReLU on permutation "
                        "representations (regular, quotient, trivial fields)",
    "GatedNonLinearity1": "gated nonlinearities act on irrep fields; the construction needs ReLU on permutation "
                          "representations",
    "ELU": "the construction needs ReLU (positively homogeneous); ELU is not",
    "Tanh": "the construction needs ReLU (positively homogeneous); Tanh is not",
    "Sigmoid": "the construction needs ReLU (positively homogeneous); Sigmoid is not",
    "GELU": "the construction needs ReLU (positively homogeneous); GELU is not",
    "MultiheadAttention": "attention is not linear in an equivariant basis",
}


def _unsupported(path, module):
    name = type(module).__name__
    reason = _REASONS.get(name, "only linear layers with a known basis, ReLU, batch norm (folded), pooling and "
                                "reshaping are supported")
    return ValueError(f"construct: layer {path or '<root>'} ({name}) is not supported: {reason}")


def _fold(layer: TargetLayer, norm: nn.Module, path: str, example: torch.Tensor) -> None:
    """Fold an eval-mode norm (a per-channel affine map) into the layer before it."""
    scale, shift = layer.family.norm_affine(norm, example)
    weight_blocks = [b for b in blocks(layer.module) if b.tensor == layer.weight_name]
    alpha = layer.alpha.clone()
    for block in weight_blocks:
        theta = block.take(alpha).clone()
        for o, fld in enumerate(block.out_fields):
            s = scale[layer.family.field_channels(layer.module, fld)]
            if not torch.allclose(s, s[0].expand_as(s), rtol=1e-5, atol=1e-7):
                raise ValueError(f"construct: batch norm {path} scales the channels of one field of "
                                 f"{layer.path} differently; only per-field norms (InnerBatchNorm) can be folded")
            theta[o] *= s[0]
        block.put(alpha, theta)
    bias = scale * (layer.expansion @ layer.beta) + shift
    solution = torch.linalg.lstsq(layer.expansion.double(), bias.double().unsqueeze(1)).solution.squeeze(1)
    if (layer.expansion.double() @ solution - bias.double()).abs().max() > 1e-4 * (1 + bias.abs().max()):
        raise ValueError(f"construct: the shift of batch norm {path} is not in the bias space of {layer.path}")
    layer.alpha, layer.beta, layer.folded_norm = alpha, solution.to(layer.beta.dtype), path


TRACE_SAMPLES = 128


def trace_target(target: nn.Module, inputs, input_nonnegative: bool = False, samples: int = TRACE_SAMPLES) -> Trace:
    """Trace ``target`` (in eval mode) on the first ``samples`` of ``inputs`` and collect its layers with
    folded batch norms."""
    trace = Trace(units=_record_units(target, inputs, samples))
    network_input = tensor_of(slice_inputs(inputs, samples)[0])
    previous: Optional[Unit] = None
    for i, unit in enumerate(trace.units):
        if unit.kind == "linear":
            layer = _target_layer(unit, trace.units[:i], input_nonnegative)
            if not layer.input_nonnegative and _gin_update_of_nonnegative(target, unit, trace.units[:i],
                                                                           network_input, input_nonnegative):
                layer.input_nonnegative = True
            trace.layers.append(layer)
        elif unit.kind == "norm":
            if previous is None or previous.kind != "linear" or not torch.equal(previous.output, unit.inputs):
                raise ValueError(f"construct: batch norm {unit.path} must directly follow a linear layer to be "
                                 "folded into it")
            reason = trace.layers[-1].family.norm_folding_unsupported
            if reason:
                raise ValueError(f"construct: batch norm {unit.path} after {trace.layers[-1].path} cannot be folded: "
                                 f"{reason}")
            _fold(trace.layers[-1], unit.module, unit.path, unit.inputs)
        previous = unit
    if not trace.layers:
        raise ValueError("construct: the target has no linear layer the construction knows")
    return trace


def samples_within(target: nn.Module, inputs, most: int, budget: int) -> int:
    """How many leading samples of ``inputs`` (at most ``most``, at least 1) a trace of ``target`` can record
    within ``budget`` bytes of unit inputs, outputs and extra arguments, from a trace of two samples. Inputs
    traced whole (a PyG graph batch) are not cut: ``most``."""
    if _one_graph_batch(inputs):
        return most
    count = tensor_of(slice_inputs(inputs, 2)[0]).shape[0]
    recorded = 0
    for unit in _record_units(target, inputs, count):
        for value in (unit.inputs, unit.output, *unit.extra):
            recorded += value.numel() * value.element_size() if torch.is_tensor(value) else 0
    per_sample = max(recorded / max(count, 1), 1.0)
    return int(min(most, max(1, budget // per_sample)))


def _record_units(target: nn.Module, inputs, samples: int = TRACE_SAMPLES) -> List[Unit]:
    """Run ``target`` once (eval mode, no grad) with hooks on its units; the units in call order with their
    inputs, extra arguments and outputs."""
    units: List[Unit] = []
    handles, seen, pending = [], set(), {}

    def before(template):
        def record(module, args):
            if template.kind == "passive":  # parameter-free: may be called several times, one unit per call
                unit = Unit(template.path, module, template.kind)
            else:
                if template.path in seen:
                    raise ValueError(f"construct: layer {template.path} is called more than once (shared weights "
                                     "are not supported)")
                seen.add(template.path)
                unit = template
            # clones, recorded before the call: in-place ops (ReLU(inplace=True)) must not change them
            unit.inputs = _tensor(args).detach().clone()
            unit.extra = tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args[1:])
            units.append(unit)
            pending[id(module)] = unit
        return record

    def after(module, args, output):
        pending.pop(id(module)).output = _tensor(output).detach().clone()

    for path, module, kind in _units(target):
        if kind is None:
            raise _unsupported(path, module)
        unit = Unit(path, module, kind)
        handles.append(module.register_forward_pre_hook(before(unit)))
        handles.append(module.register_forward_hook(after))
    was_training = target.training
    target.eval()
    try:
        with torch.no_grad():
            target(*slice_inputs(inputs, samples))
    finally:
        for h in handles:
            h.remove()
        target.train(was_training)
    return units


def _target_layer(unit: Unit, before: List[Unit], input_nonnegative: bool) -> TargetLayer:
    module = unit.module
    family = family_of(module)
    weight_name = family.weight_name(module)
    structural = _nonnegative(before, input_nonnegative) and _reads_previous(before, unit)
    functional = not structural and _after_functional_relu(before, unit)
    alpha, beta = getattr(module, weight_name).detach().clone(), family.bias_coefficients(module).float()
    for name, values in (("weights", alpha), ("bias", beta)):
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"construct: layer {unit.path} ({type(module).__name__}) has NaN or infinite {name}")
    return TargetLayer(
        path=unit.path, module=module, family=family, weight_name=weight_name, alpha=alpha, beta=beta,
        expansion=family.bias_expansion(module).float(),
        input_nonnegative=(structural or functional) and bool((unit.inputs >= 0).all()),
        in_shape=tuple(unit.inputs.shape[1:]), out_shape=tuple(unit.output.shape[1:]),
        n_nodes=family.node_count(module, unit.inputs, unit.extra), relu_inferred=functional)


def check_inputs(target: nn.Module, inputs, input_nonnegative: bool) -> None:
    """Named errors for inputs the construction cannot use: an empty batch, dtypes other than float32, NaN or
    inf, negative values under ``input_nonnegative``, negative node indices, a plain tensor for an escnn model;
    and for a target whose parameters are not float32."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not args:
        raise ValueError("construct: no inputs")
    x = tensor_of(args[0])
    if not torch.is_tensor(x) or x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"construct: inputs must be a non-empty batch, got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != torch.float32:
        raise ValueError(f"construct: inputs are {x.dtype}; the construction works in float32: pass x.float()")
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        raise ValueError(f"construct: input sample {int(torch.nonzero(bad)[0])} holds NaN or inf")
    if input_nonnegative and bool((x < 0).any()):
        raise ValueError(f"construct: input_nonnegative=True but the inputs reach {float(x.min()):.3g}")
    for i, a in enumerate(args[1:], start=1):
        if torch.is_tensor(a) and not a.is_floating_point() and a.dtype != torch.bool and a.numel() and int(a.min()) < 0:
            raise ValueError(f"construct: input argument {i} (e.g. edge_index) holds a negative index {int(a.min())}")
    if escnn_loaded() and isinstance(target, import_escnn().nn.EquivariantModule) and not is_geometric(args[0]):
        raise ValueError("construct: the target is an escnn module: give its inputs as a GeometricTensor, "
                         "escnn.nn.GeometricTensor(x, target.in_type)")
    dtypes = sorted({str(p.dtype) for p in target.parameters() if p.dtype != torch.float32})
    if dtypes:
        raise ValueError(f"construct: the target has {', '.join(dtypes)} parameters; the construction works in "
                         "float32: pass target.float()")


def slice_inputs(inputs, count: int) -> tuple:
    """The first ``count`` samples of the inputs, as a tuple of call arguments: ``inputs`` is one batch
    (tensor / GeometricTensor) or a tuple of batched arguments such as ``(x, node_mask)``."""
    if _one_graph_batch(inputs):
        return tuple(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(a[:count] if torch.is_tensor(a) or is_geometric(a) else a for a in inputs)
    return (inputs[:count],)


def _one_graph_batch(inputs) -> bool:
    """``(x, edge_index, ...)``: one graph (batch) of nodes, traced whole (an integer argument after ``x``)."""
    return isinstance(inputs, (tuple, list)) and any(
        torch.is_tensor(a) and not (a.is_floating_point() or a.dtype == torch.bool) for a in inputs[1:])


def _reads_previous(before: List[Unit], unit: Unit) -> bool:
    """The unit reads the previous unit's output (unchanged, reshaped or spatially averaged): no glue that could
    change signs in between (e.g. a message-passing aggregation with arbitrary edge weights)."""
    if not before:
        return True
    return before[-1].output is not None and connected(before[-1].output, unit.inputs)


def _after_functional_relu(before: List[Unit], unit: Unit) -> bool:
    """The unit reads ``relu(previous output)`` (a functional ``torch.relu`` between two units, as in
    ``x = torch.relu(layer(x))``): on the traced samples its input equals ``relu`` of the previous unit's output
    and that output had negative entries (so the glue did act as a ReLU, not as an identity)."""
    if not before or before[-1].output is None:
        return False
    out = before[-1].output
    return (out.shape == unit.inputs.shape and bool((out < 0).any())
            and torch.equal(torch.relu(out), unit.inputs))


def _nonnegative(before: List[Unit], input_nonnegative: bool) -> bool:
    for unit in reversed(before):
        name = type(unit.module).__name__
        if name == "ReLU":
            return True
        if name not in _SIGN_PRESERVING:
            return False
    return input_nonnegative


def _gin_update_of_nonnegative(target: nn.Module, unit: Unit, before: List[Unit], network_input: torch.Tensor,
                               input_nonnegative: bool) -> bool:
    """The unit is the first layer of a PyG ``GINConv``'s ``nn`` and reads ``(1 + ε)·x + Σ_{j∈N(i)} x_j`` with
    ``1 + ε ≥ 0`` and ``x ≥ 0`` (the output of a ReLU chain, or the network input under ``input_nonnegative``):
    a sum of non-negative terms, so one sign half suffices. Checked on the traces: the previous unit is the conv's
    aggregation and the unit's input equals ``aggregation + (1 + ε)·x`` for that ``x``."""
    if not before or not before[-1].path.endswith(".aggr_module") or before[-1].output is None:
        return False
    conv_path = before[-1].path[: -len(".aggr_module")]
    try:
        conv = target.get_submodule(conv_path)
    except AttributeError:
        return False
    if type(conv).__name__ != "GINConv" or not unit.path.startswith(f"{conv_path}.nn."):
        return False
    first = next((m for m in conv.nn.modules() if family_of(m) is not None), None)
    one_plus_eps = 1.0 + float(conv.eps)
    if first is not unit.module or one_plus_eps < 0:
        return False
    earlier = before[:-1]
    x = earlier[-1].output if earlier else network_input
    if x is None or x.shape != unit.inputs.shape or not _nonnegative(earlier, input_nonnegative):
        return False
    return (bool((unit.inputs >= 0).all())
            and torch.allclose(unit.inputs, before[-1].output + one_plus_eps * x, rtol=1e-5, atol=1e-6))


def connected(output: torch.Tensor, inputs: torch.Tensor) -> bool:
    """A unit reads the previous unit's output: unchanged, reshaped, averaged over trailing dims, or through a
    functional ReLU (``x = torch.relu(layer(x))``: 1-Lipschitz, maps 0 to 0)."""
    if output.numel() == inputs.numel():
        return (torch.equal(output.reshape(-1), inputs.reshape(-1))
                or torch.equal(torch.relu(output).reshape(-1), inputs.reshape(-1)))
    if output.dim() > inputs.dim() and output.shape[: inputs.dim()] == inputs.shape:
        mean = output.mean(dim=tuple(range(inputs.dim(), output.dim())))
        return torch.allclose(mean, inputs, atol=1e-6, rtol=1e-5)
    return False
