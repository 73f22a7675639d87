"""``construct``: target → random overparametrised network → batched Subset-Sum → Ticket + certificate."""
from __future__ import annotations

import math
import time
from typing import Optional

import torch
from torch import nn
from tqdm import tqdm

from .._compat import tensor_of
from ..nn import mask_model, masks_of, replace_module
from ._analysis import analyse
from ._build import LayerPlan, build_block, build_random_network, draw_block
from ._certificate import Certificate, LayerCertificate, _quantiles, layer_error_terms, network_bound
from ._solve import fields_over_tol, solve_layer
from ._ticket import Ticket, architecture_of

__all__ = ["construct", "default_n"]

MAX_POOL = 30  # a row has at most ~this many valid summands: exact meet-in-the-middle stays fast


def default_n(tol: float) -> int:
    """Summands per problem for a per-coefficient tolerance: ``N ≈ log2(1/tol) + 4`` (theory.md D.6: the
    median residual halves with every extra summand; products ``u·v`` need a few more than uniforms)."""
    return int(min(max(math.ceil(math.log2(1.0 / tol)) + 4, 8), 24))


def construct(target: nn.Module, inputs, *, tol: float = 1e-3, n: Optional[int] = None,
              eps: Optional[float] = None, seed: int = 0, policy: str = "widen", max_n: int = 26,
              fewest: bool = False, input_nonnegative: bool = False, input_radius: Optional[float] = None,
              progress: bool = True, log=None) -> Ticket:
    r"""Prune a random overparametrised network to approximate ``target`` (Pensia et al. lifted to
    equivariant coefficients, Ferbach et al. 2023).

    Parameters
    ----------
    target : the trained network (eval mode is used: batch norms are folded with their running statistics).
        Supported layers: torch ``Linear``/``ConvNd``, escnn ``R2Conv``/``R3Conv``/``Linear`` and
        ``OrbitLinear`` on permutation fields, :class:`~equislt.nn.IGNLinear` (k-IGN, called
        ``layer(x, node_mask)``) and PyG ``Linear`` (e.g. the MLPs of ``torch_geometric.nn.models.GIN``; the
        parameter-free neighbourhood aggregations are glue, so the certified bound is then unavailable and
        layers after an aggregation keep both sign halves; convs with parameters outside a Linear, such as
        ``GCNConv.bias``, are refused), with ReLU (modules or functional ``torch.relu`` between layers), batch
        norm, pooling, group pooling in between.
    inputs : sample inputs: traced to learn the execution order, and used for the measured error. One batch,
        or a tuple of call arguments, ``target(*inputs)``: ``(x, node_mask)`` for an IGN (the first 128 graphs
        are traced), ``(x, edge_index)`` for a PyG model (traced whole).
    tol : per-coefficient residual tolerance (in normalised units, coefficients scaled to ``|α| ≤ 1``).
    n : summands per pool (each hidden block has ``2n`` random fields; about ``n`` of each sign);
        default :func:`default_n` of ``tol``.
    eps : optional end-to-end target: if the certified bound exceeds it, a ValueError reports both.
    policy : what to do when rows exceed ``tol``: ``"widen"`` (give each input field that owns such a row 4
        more hidden copies, about 2 more summands per pool, while that row's pool has fewer than ``max_n``
        summands, at most ``4·max_n`` copies; the draws are prefix-stable per field, so only that layer's
        block is rebuilt and only the widened fields' rows are solved again; bias rows widen the bias pool by
        2, up to ``max_n``), ``"report"`` (keep, count in the certificate) or ``"raise"``.
    fewest : among subsets within ``tol`` keep the fewest coefficients (sparser tickets).
    input_nonnegative : the network input is ``≥ 0`` (e.g. images in [0, 1]); the first layer then needs no
        negative pool. Later layers read ReLU outputs and are detected automatically.
    input_radius : ``R`` of the certified bound (default: the largest ``‖x‖₂`` among ``inputs``).
    """
    if policy not in ("widen", "report", "raise"):
        raise ValueError(f"construct: policy must be 'widen', 'report' or 'raise', got {policy!r}")
    if not 0 < tol < 1:
        raise ValueError(f"construct: tol must be in (0, 1), got {tol}")
    n = default_n(tol) if n is None else int(n)
    if not 2 <= n <= max_n:
        raise ValueError(f"construct: n must be in [2, max_n={max_n}], got {n}")
    times = {}
    start = time.perf_counter()
    trace = analyse(target, inputs, input_nonnegative)
    plans = []
    for layer in trace.layers:
        # normalise so that |coefficient| <= 1/2: there the products u·v (u ~ U[0,1], v ~ U[-1,1]) have density
        # >= ln2/2, a uniform component, which is what Lueker's random Subset-Sum theorem needs (theory.md A2)
        largest = max(float(layer.alpha.abs().max()), float(layer.beta.abs().max()) if layer.beta.numel() else 0.0)
        gain = max(1.0, 2.0 * largest)
        has_bias = layer.beta.numel() > 0 and bool(layer.beta.abs().max() > 0)
        plans.append(LayerPlan(layer.path, width=2 * n, bias_pool=n if has_bias else 0, gain=gain,
                               folded_norm=layer.folded_norm))
    network = build_random_network(target, plans, seed)
    times["build"] = time.perf_counter() - start

    certificate = Certificate(eps=eps, tol=tol, input_radius=0.0)
    terms = {}
    solve_time = 0.0
    for layer, plan in tqdm(list(zip(trace.layers, plans)), desc="construct", disable=not progress, leave=False):
        t0 = time.perf_counter()
        solution = solve_layer(layer, network.get_submodule(plan.path), tol, fewest)
        solve_time += time.perf_counter() - t0
        while True:
            weight_over = fields_over_tol(layer, solution, tol)
            bias_over = int((solution.bias_residual.abs() > tol).sum())
            over = int((solution.weight_residual_pos.abs() > tol).sum()
                       + (solution.weight_residual_neg.abs() > tol).sum()) + bias_over
            if over == 0 or policy != "widen":
                break
            # per-input-field widening: 4 more copies (about 2 more summands per pool) of every field owning a
            # row over tol while that row's pool has fewer than max_n summands (w_b <= 4·max_n: it terminates);
            # bias rows widen the bias pool by 2
            grow = sorted({b for half, owners in weight_over.items() for b in owners.tolist()
                           if int(solution.pool_counts[half][b]) < max_n and plan.width_of(b) // 2 + 2 <= 2 * max_n})
            grow_bias = bias_over > 0 and 0 < plan.bias_pool and plan.bias_pool + 2 <= max_n
            if not grow and not grow_bias:
                break
            plan.widen(grow, 4)
            if grow_bias:
                plan.bias_pool += 2
            t0 = time.perf_counter()
            new = build_block(layer.module, plan)
            draw_block(new, seed, plan.path)
            network = replace_module(network, plan.path, mask_model(new).eval())
            times["build"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            solution = solve_layer(layer, network.get_submodule(plan.path), tol, fewest, previous=solution,
                                   fields=grow)
            solve_time += time.perf_counter() - t0
        if over and policy == "raise":
            raise ValueError(f"construct: {over} Subset-Sum rows of {plan.path} exceed tol={tol} with N={plan.width // 2}")
        a, b, lip = layer_error_terms(layer, solution, plan.gain)
        terms[layer.path] = (a, b, lip)
        block_masks = masks_of(network.get_submodule(plan.path))
        kept = sum(int(m.sum()) for named in block_masks.values() for m in named.values())
        total = sum(m.numel() for named in block_masks.values() for m in named.values())
        residuals = torch.cat([solution.weight_residual_pos.reshape(-1)] + (
            [solution.weight_residual_neg.reshape(-1)] if not layer.input_nonnegative else []))
        max_res = float(residuals.abs().max()) if residuals.numel() else 0.0
        n_target = layer.alpha.numel() + layer.beta.numel()
        certificate.layers.append(LayerCertificate(
            path=plan.path, n=plan.width, width_added=plan.width_added, widened_fields=len(plan.extra),
            pool_positive_mean=solution.pool_sizes["positive_mean"],
            pool_negative_mean=solution.pool_sizes["negative_mean"], bias_pool=plan.bias_pool, gain=plan.gain,
            input_nonnegative=layer.input_nonnegative, folded_norm=layer.folded_norm,
            n_problems=solution.n_problems, rows_over_tol=over,
            coefficient_residual=_quantiles(residuals), bias_residual=_quantiles(solution.bias_residual),
            error_slope=a, error_offset=b, lipschitz=lip if a is not None else None, target_coefficients=n_target,
            random_coefficients=total, kept_coefficients=kept,
            lower_bound=n_target * math.log2(1.0 / (2 * max(max_res, 1e-12))) if max_res < 0.5 else 0.0))
    times["solve"] = solve_time

    t0 = time.perf_counter()
    x = inputs
    flat = x[0] if isinstance(x, (tuple, list)) else x  # (x, node_mask, ...): the radius is that of x
    flat = tensor_of(flat)
    radius = float(flat.reshape(flat.shape[0], -1).norm(dim=1).max()) if input_radius is None else float(input_radius)
    certificate.input_radius = radius
    certificate.bound, certificate.bound_note = network_bound(trace, terms, radius)
    network.eval()
    with torch.no_grad():
        reference, approx = _logits(target, x), _logits(network, x)
    diff = (reference - approx).abs()
    certificate.measured_max_error = float(diff.max())
    certificate.measured_relative_error = float(diff.max() / reference.abs().max().clamp(min=1e-12))
    if reference.dim() == 2 and reference.shape[1] > 1:
        certificate.prediction_agreement = float((reference.argmax(1) == approx.argmax(1)).float().mean())
    else:
        certificate.prediction_agreement = 1.0
    times["evaluate"] = time.perf_counter() - t0
    certificate.seconds = times
    if eps is not None and (certificate.bound is None or certificate.bound > eps):
        raise ValueError(f"construct: certified bound {certificate.bound} does not meet eps={eps} "
                         f"({certificate.bound_note or 'raise n or lower tol'})")
    if log is not None:
        log(certificate.summary())
    return Ticket(network=network, seed=seed, method="construct", recipe={"plans": plans},
                  architecture=architecture_of(target), certificate=certificate)


def _logits(model, x):
    was = model.training
    model.eval()
    try:
        out = model(*x) if isinstance(x, (tuple, list)) else model(x)
    finally:
        model.train(was)
    return tensor_of(out)
