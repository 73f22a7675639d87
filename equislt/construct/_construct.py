"""``construct``: target → random overparametrised network → batched Subset-Sum → Ticket + certificate."""
from __future__ import annotations

import math
from typing import Optional

from torch import nn
from tqdm import tqdm

from .._compat import tensor_of
from .._device import resolve_device
from ..masks import count_masks
from ..models import Architecture
from ..subsetsum import MAX_N
from ..ticket import Ticket
from ._build import LayerBlocks
from ._certificate import Certificate, LayerCertificate, layer_error_terms, network_bound, timed
from ._layout import LayerPlan
from ._policy import Tolerance, solve_within_tolerance
from ._recipe import ConstructRecipe
from ._trace import check_inputs, slice_inputs, trace_target

__all__ = ["VERIFY", "construct", "default_n"]

VERIFY = ("compact", "literal")


def default_n(tol: float) -> int:
    """Summands per pool ``N`` for a per-coefficient tolerance: ``N ≈ log2(1/tol) + 4`` (the median residual of a
    random Subset-Sum problem halves with every extra summand, Lueker 1998; products ``u·v`` need a few more
    summands than uniforms), clipped to ``[8, 24]``."""
    return int(min(max(math.ceil(math.log2(1.0 / tol)) + 4, 8), 24))


def _plan(layer, n: int) -> LayerPlan:
    """Normalise every layer so that its largest coefficient is ``1/2``, whatever its scale (ReLU is positively
    homogeneous, so the gain ``2 max|α|`` is folded back after the block): ``tol`` then means the same for
    weights of any magnitude, and at ``|α| ≤ 1/2`` the products ``u·v`` (``u ~ U[0,1]``, ``v ~ U[-1,1]``) have
    density ``≥ ln2/2``, a uniform component, which is what Lueker's random Subset-Sum theorem needs. A layer
    whose coefficients are all zero gets gain 0: its block keeps nothing."""
    largest = max(float(layer.alpha.abs().max()) if layer.alpha.numel() else 0.0,
                  float(layer.beta.abs().max()) if layer.beta.numel() else 0.0)
    has_bias = layer.beta.numel() > 0 and bool(layer.beta.abs().max() > 0)
    return LayerPlan(layer.path, copies=2 * n, bias_pool=n if has_bias else 0, gain=2.0 * largest,
                     folded_norm=layer.folded_norm)


def _radius(inputs, input_radius: Optional[float]) -> float:
    """The largest ``‖x‖₂`` among the inputs (of ``x`` itself for ``(x, node_mask, ...)``), unless given."""
    if input_radius is not None:
        return float(input_radius)
    flat = tensor_of(inputs[0] if isinstance(inputs, (tuple, list)) else inputs)
    return float(flat.reshape(flat.shape[0], -1).norm(dim=1).max())


def construct(target: nn.Module, inputs, *, tol: float = 1e-3, n: Optional[int] = None,
              eps: Optional[float] = None, seed: int = 0, policy: str = "widen", max_n: int = MAX_N,
              fewest: bool = False, input_nonnegative: bool = False, input_radius: Optional[float] = None,
              verify: str = "compact", device="cpu", progress: bool = True, log=None) -> Ticket:
    r"""Prune a random overparametrised network to approximate ``target`` (Pensia et al. 2020 lifted to
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
        norm, pooling, group pooling in between. More kinds: :class:`equislt.construct.families.Family`.
    inputs : sample inputs: traced to learn the execution order, and used for the measured error. One batch,
        or a tuple of call arguments, ``target(*inputs)``: ``(x, node_mask)`` for an IGN (the first 128 graphs
        are traced), ``(x, edge_index)`` for a PyG model (traced whole).
    tol : per-coefficient residual tolerance, relative: every layer is scaled so that its largest coefficient
        is ``1/2`` (ReLU is positively homogeneous), so ``tol`` means the same for weights of any magnitude.
    n : ``N``, summands per pool (each input field gets ``2N`` hidden copies, about ``N`` of each sign);
        default :func:`default_n` of ``tol``.
    eps : optional end-to-end target: if the certified bound exceeds it, a ValueError reports both.
    policy : rows over ``tol``: ``"widen"`` (more copies of the fields that own them, up to ``max_n`` summands:
        by default the exact solver's limit, ``equislt.subsetsum.MAX_N``; only those rows are solved again),
        ``"report"`` (keep, count in the certificate) or ``"raise"``; see :mod:`equislt.construct._policy`.
    fewest : among subsets within ``tol`` keep the fewest coefficients (sparser tickets).
    input_nonnegative : the network input is ``≥ 0`` (e.g. images in [0, 1]); the first layer then needs no
        negative pool. Later layers read ReLU outputs and are detected automatically.
    input_radius : ``R`` of the certified bound (default: the largest ``‖x‖₂`` among ``inputs``).
    verify : which network the certificate's measured error and agreement come from: ``"compact"`` (default: the
        form the ticket runs, target-sized) or ``"literal"`` (the pruned random network itself, built for the
        purpose: about ``2N`` times wider than the target; for small models).
    device : where the exact Subset-Sum solver runs: ``"cpu"`` (default; numba), ``"auto"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"`` (the solver's torch backend there). Tracing, draws and measuring stay on the CPU.

    The random network is never built as modules: each layer's random coefficients are drawn from the seed one
    chunk of input fields at a time, solved, and dropped; the ticket keeps the masks and runs in its compact form.
    """
    where = resolve_device(device, "construct: device")
    tolerance = Tolerance(tol, policy, max_n, fewest, None if where.type == "cpu" else where)
    n = default_n(tol) if n is None else int(n)
    if not 2 <= n <= max_n:
        raise ValueError(f"construct: n must be in [2, max_n={max_n}], got {n}")
    if verify not in VERIFY:
        raise ValueError(f"construct: verify must be one of {VERIFY}, got {verify!r}")
    if input_radius is not None and not (math.isfinite(float(input_radius)) and float(input_radius) >= 0):
        raise ValueError(f"construct: input_radius must be finite and >= 0, got {input_radius}")
    check_inputs(target, inputs, input_nonnegative)
    seconds = {"trace": 0.0, "draw": 0.0, "solve": 0.0}
    with timed(seconds, "trace"):
        trace = trace_target(target, inputs, input_nonnegative)
        plans = [_plan(layer, n) for layer in trace.layers]
    certificate, masks, terms = Certificate(eps=eps, tol=tol, input_radius=0.0), {}, {}
    for layer, plan in tqdm(list(zip(trace.layers, plans)), desc="construct", disable=not progress, leave=False):
        solution = solve_within_tolerance(layer, plan, seed, tolerance, seconds, LayerBlocks.of(layer.module, layer.family))
        block_masks = {f"{plan.path}.{part}": named for part, named in solution.masks.items()}
        masks.update(block_masks)
        terms[layer.path] = layer_error_terms(layer, solution, plan.gain)
        certificate.layers.append(LayerCertificate.of(layer, plan, solution, count_masks(block_masks),
                                                      terms[layer.path], tol))
    ticket = Ticket(seed, ConstructRecipe(plans), masks, architecture=Architecture.of(target),
                    certificate=certificate, target=target, probe=slice_inputs(inputs, 2))
    with timed(seconds, "compile"):
        ticket.compiled
    with timed(seconds, "evaluate"):
        certificate.input_radius = _radius(inputs, input_radius)
        certificate.bound, certificate.bound_note = network_bound(trace, terms, certificate.input_radius)
        certificate.assumptions = [f"the input of {layer.path} is torch.relu of the previous layer's output "
                                   "(recognised on the traced samples, not from the code)"
                                   for layer in trace.layers if layer.relu_inferred]
        certificate.measure(target, ticket.network if verify == "literal" else ticket.compiled, inputs)
        certificate.measured_on = verify
    certificate.seconds = seconds
    if eps is not None and (certificate.bound is None or certificate.bound > eps):
        raise ValueError(f"construct: certified bound {certificate.bound} does not meet eps={eps} "
                         f"({certificate.bound_note or 'raise n or lower tol'})")
    if log is not None:
        log(certificate.summary())
    return ticket
