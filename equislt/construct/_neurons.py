r"""Malach et al.'s neuron subnetworks: prune only whole hidden fields of the random block (``method="malach_neurons"``).

The block ``x ↦ c (M2 σ(M1 x) + β̂)`` keeps its lift ``M1`` and mix ``M2`` dense and random; a binary mask
``m_j`` per hidden field ``j`` keeps or drops the field whole (its row of ``M1``, its column of ``M2``), which
commutes with the group action (fields are permuted or acted on as a whole), so the ticket stays equivariant.
The block computes ``Σ_j m_j H_j(x)`` with ``H_j(x) = M2 P_j σ(M1 x)`` (``P_j`` keeps field ``j``); the mask
minimises the squared error to the target layer's weight part ``W x / c`` on the traced inputs,

.. math:: \min_{m \in \{0,1\}^J} \|H m - y\|^2 = m^\top G m - 2 c^\top m + \|y\|^2,\quad G = H^\top H,\ c = H^\top y,

by best single flips from ``m = 0`` until no flip lowers it (a local optimum). This is a random-features model
with binary output weights: Malach et al. (2020) show such neuron subnetworks do no better than random features,
which cannot efficiently approximate even a single ReLU neuron, so the error falls slowly with the width, unlike
weight subnetworks. The bias is a subset sum of its pool of random constants, as for the other methods. There is
no coefficient-wise residual, hence no certified bound; the certificate reports the measured errors.
"""
from __future__ import annotations

from typing import Dict

import torch

from .._compat import as_input_of, tensor_of
from ._build import LayerBlocks, random_block
from ._layout import LayerPlan
from ._solve import LayerSolution, solve_bias

__all__ = ["PASS_BYTES", "select_fields", "solve_neurons"]

PASS_BYTES = 2**28  # the hidden activations one batched pass of the mix takes (one copy per hidden field)


def select_fields(gram: torch.Tensor, correlation: torch.Tensor, max_flips: int = 100_000) -> torch.Tensor:
    """``m ∈ {0,1}^J`` minimising ``mᵀ G m − 2 cᵀ m`` by best single flips from ``m = 0`` (a local optimum)."""
    gram, correlation = gram.double(), correlation.double()
    keep = torch.zeros(correlation.shape[0], dtype=torch.bool)
    g = torch.zeros_like(correlation)  # G m
    diagonal = torch.diagonal(gram)
    for _ in range(max_flips):
        sign = 1.0 - 2.0 * keep.double()  # +1 adds field j, −1 drops it
        change = diagonal + 2.0 * sign * (g - correlation)
        j = int(torch.argmin(change))
        if not change[j] < -1e-12 * max(float(diagonal.max()), 1e-300):
            break
        keep[j] = ~keep[j]
        g += sign[j] * gram[:, j]
    return keep


def _contributions(block, family, layer_inputs, extra: tuple, fields: range) -> torch.Tensor:
    """``[S·out, len(fields)]``: each hidden field's contribution ``M2 P_j σ(M1 x)`` on the traced inputs."""
    t = tensor_of(block.relu(block.lift(as_input_of(block.lift, layer_inputs), *extra)))
    columns = []
    per_pass = max(1, PASS_BYTES // max(t.numel() * t.element_size(), 1))
    for start in range(0, len(fields), per_pass):
        chunk = fields[start:start + per_pass]
        masked = torch.zeros((len(chunk),) + tuple(t.shape), dtype=t.dtype)
        for i, j in enumerate(chunk):
            channels = family.field_channels(block.lift, j)
            masked[i][:, channels] = t[:, channels]
        repeated = tuple(a.repeat((len(chunk),) + (1,) * (a.dim() - 1)) if torch.is_tensor(a) else a for a in extra)
        out = tensor_of(block.mix(as_input_of(block.mix, masked.reshape((-1,) + tuple(t.shape[1:]))), *repeated))
        columns.append(out.reshape(len(chunk), -1).T)
    return torch.cat(columns, dim=1).double()


def solve_neurons(layer, unit, plan: LayerPlan, seed: int, tol: float, fewest: bool) -> LayerSolution:
    """The masks of the block that replaces ``layer`` (its traced call ``unit``) keeping whole hidden fields
    (see the module docstring); the bias pool is solved as a Subset-Sum."""
    family = layer.family
    blocks = LayerBlocks.of(layer.module, family)
    lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
    block = random_block(layer.module, plan, seed)
    with torch.no_grad():
        weight_only = family.like(layer.module, family.inputs(layer.module))
        getattr(weight_only, family.weight_name(weight_only)).copy_(
            layer.alpha.view_as(getattr(weight_only, family.weight_name(weight_only))))
        weight_only.eval()
        target = tensor_of(weight_only(as_input_of(weight_only, unit.inputs), *unit.extra)).reshape(-1).double() / plan.gain
        contributions = _contributions(block, family, unit.inputs, unit.extra, range(lift.layout.total))
    keep = select_fields(contributions.T @ contributions, contributions.T @ target)
    lift_mask = torch.zeros(lift.numel, dtype=torch.bool)
    mix_mask = torch.zeros(mix.numel, dtype=torch.bool)
    offsets = lift.layout.offsets
    for b in range(lift.layout.n_fields):
        chosen = keep[int(offsets[b]):int(offsets[b + 1])]
        lift_mask[lift.field_positions(b)[chosen].reshape(-1)] = True
        mix_mask[mix.field_positions(b)[chosen].reshape(-1)] = True
    masks: Dict[str, Dict[str, torch.Tensor]] = {"lift": {lift.name: lift_mask.view(lift.shape)},
                                                  "mix": {mix.name: mix_mask.view(mix.shape)}}
    bias_residual = torch.zeros(0, dtype=torch.float64)
    if plan.bias_pool:
        bias_mask, bias_residual = solve_bias(layer.beta.double() / plan.gain, plan.bias_pool, seed, plan.path, tol,
                                              fewest)
        masks["bias"] = {"bias": bias_mask}
    fit = contributions @ keep.double() - target
    empty = torch.zeros(0, dtype=torch.float64)
    return LayerSolution(weight_residual_pos=empty, weight_residual_neg=empty, bias_residual=bias_residual.double(),
                         n_problems=0, masks=masks, pool_sizes={"positive_mean": float(keep.sum()), "negative_mean": 0.0},
                         fit_relative_error=float(fit.norm() / target.norm().clamp(min=1e-300)))
