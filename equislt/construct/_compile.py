r"""``Ticket.compile()``: fold each pruned block back into target-sized layers with the same function.

A pruned block computes ``c (Σ_b Σ_k [α̂⁺_{abk} B_k σ(x_b) + α̂⁻_{abk} B_k σ(−x_b)] + β̂)`` with
``α̂⁺ = Σ_{t: u_t>0} u_t v_{atk}`` and ``α̂⁻ = Σ_{t: u_t<0} |u_t| v_{atk}`` over the kept coefficients, so it
equals ``x ↦ c (W⁺ σ(x) + W⁻ σ(−x) + β̂)`` with two layers of the target's own type and basis.
"""
from __future__ import annotations


import torch
from torch import nn

from .._compat import is_geometric
from ..basis import blocks
from ._families import family_of
from ._build import block_widths
from ._solve import _weight_tensor_name, hidden_occurrence, lift_coefficients

__all__ = ["CompiledBlock", "compile_network"]


class CompiledBlock(nn.Module):
    """``x ↦ gain · (pos(σ(x)) + neg(σ(−x)) + shift)`` (``neg`` may be ``None``). With ``bias`` (a module
    ``bias(y, *args)``, e.g. an IGN pattern bias) the bias is that module instead of the per-channel ``shift``.
    Extra call arguments (an IGN layer's ``node_mask``) go to ``pos``, ``neg`` and ``bias``."""

    def __init__(self, pos, neg, shift: torch.Tensor, gain: float, bias: nn.Module = None):
        super().__init__()
        self.pos, self.neg, self.bias = pos, neg, bias
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("gain", torch.tensor(float(gain)))

    def forward(self, x, *args):
        geometric = is_geometric(x)
        t = x.tensor if geometric else x
        wrap = (lambda v: type(x)(v, x.type, x.coords)) if geometric else (lambda v: v)
        unwrap = (lambda y: y.tensor) if geometric else (lambda y: y)
        out = unwrap(self.pos(wrap(torch.relu(t)), *args))
        if self.neg is not None:
            out = out + unwrap(self.neg(wrap(torch.relu(-t)), *args))
        if self.bias is not None:
            out = self.bias(out, *args) * self.gain
        else:
            out = (out + self.shift.view((1, -1) + (1,) * (out.dim() - 2))) * self.gain
        if geometric:
            return type(x)(out, self.pos.out_type, x.coords)
        return out


def _compiled_escnn(pos, neg, shift, gain):
    from .._compat import import_escnn

    enn = import_escnn().nn

    class _EscnnCompiledBlock(CompiledBlock, enn.EquivariantModule):
        def __init__(self):
            enn.EquivariantModule.__init__(self)
            CompiledBlock.__init__(self, pos, neg, shift, gain)
            self.in_type, self.out_type = pos.in_type, pos.out_type

        def evaluate_output_shape(self, input_shape):
            return self.pos.evaluate_output_shape(input_shape)

    return _EscnnCompiledBlock()


def compile_block(block) -> nn.Module:
    lift, mix = block.lift, block.mix
    family = family_of(mix)
    lift_name, mix_name = _weight_tensor_name(lift), _weight_tensor_name(mix)
    inputs = family.inputs(lift)
    widths = block_widths(block)
    _, u = lift_coefficients(lift, widths, lift.coefficient(lift_name))  # [n_fields, max w_b], 0 in padding
    v = mix.coefficient(mix_name).detach().double()
    mix_blocks = {(b.in_repr, b.out_repr): b for b in blocks(mix) if b.tensor == mix_name}
    layers = {}
    for sign in ("pos", "neg"):
        weight = u.clamp(min=0) if sign == "pos" else (-u).clamp(min=0)
        if sign == "neg" and not bool((weight > 0).any()):
            layers[sign] = None
            continue
        layer = family.like(mix, inputs)
        coefficients = torch.zeros(getattr(layer, _weight_tensor_name(layer)).numel(), dtype=torch.float64)
        for c_block in blocks(layer):
            if c_block.is_bias:
                continue
            m_block = mix_blocks[(c_block.in_repr, c_block.out_repr)]
            fields = torch.tensor(c_block.in_fields)
            occ = hidden_occurrence(m_block, fields, widths)  # [i, W]
            vv = m_block.take(v)[:, occ, :]  # [o, i, W, K]
            ww = weight[fields]  # [i, W], 0 in the padding
            c_block.put(coefficients, torch.einsum("oitk,it->oik", vv, ww))
        with torch.no_grad():
            getattr(layer, _weight_tensor_name(layer)).copy_(coefficients.view_as(getattr(layer, _weight_tensor_name(layer))))
        layers[sign] = layer.eval()
    from ._modules import IGNPooledBias

    if isinstance(block.bias, IGNPooledBias):  # Bell(l) patterns under the node mask: a fixed pattern bias
        pattern = IGNPooledBias(block.bias.channels, block.bias.order, 1)
        with torch.no_grad():
            pattern.bias.copy_(block.bias.vector().detach().reshape(-1, 1))
        pattern.bias.requires_grad_(False)
        shift = torch.zeros(block.bias.channels)
        return CompiledBlock(layers["pos"], layers["neg"], shift, float(block.gain), bias=pattern)
    shift = block.bias.vector().detach() if block.bias is not None else torch.zeros(
        layers["pos"].out_type.size if hasattr(layers["pos"], "out_type") else layers["pos"].weight.shape[0])
    if hasattr(layers["pos"], "out_type"):
        return _compiled_escnn(layers["pos"], layers["neg"], shift, float(block.gain))
    return CompiledBlock(layers["pos"], layers["neg"], shift, float(block.gain))


def compile_network(network: nn.Module, plans) -> nn.Module:
    """A copy of the pruned random network with every block compiled (see module docstring)."""
    from ..nn import replace_module
    from ._build import _copy

    compiled = _copy(network)
    for plan in plans:
        compiled = replace_module(compiled, plan.path, compile_block(compiled.get_submodule(plan.path)))
    return compiled.eval()
