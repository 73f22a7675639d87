"""``construct``: target → random overparametrised network → batched Subset-Sum → Ticket + certificate."""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional, Union

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
from ._feedback import FEEDBACK_SAMPLES, FEEDBACK_TRACE_BYTES, FeedbackCache
from ._layout import LayerPlan
from ._policy import Tolerance, solve_within_tolerance
from ._neurons import solve_neurons
from ._solve import METHODS
from ._recipe import ConstructRecipe
from ._trace import TRACE_SAMPLES, check_inputs, samples_within, slice_inputs, trace_target

__all__ = ["CONSTRUCT_METHODS", "MALACH_MAX_N", "VERIFY", "construct", "default_n"]

VERIFY = ("compact", "literal")
CONSTRUCT_METHODS = METHODS + ("malach_neurons",)
NEURON_FIT_SAMPLES = 2048  # inputs a neuron subnetwork is fitted on (the other methods trace 128)
MALACH_MAX_N = 2**18  # the largest pool a widening gives Malach's method by default


def default_n(tol: float, method: str = "subset_sum") -> int:
    """Summands per pool ``N`` for a per-coefficient tolerance. Subset-Sum: ``N ≈ log2(1/tol) + 4`` (the median
    residual of a random Subset-Sum problem halves with every extra summand, Lueker 1998; products ``u·v`` need a
    few more summands than uniforms), clipped to ``[8, 24]``. Malach's single products: ``N = ceil(1/tol)`` (a
    product ``u·v`` lands within ``tol`` of a coefficient ``|α| ≤ 1/2`` with probability ``≥ 0.69 tol``, its
    density being ``-ln|α|/2 ≥ ln2/2``), at least 8; the widening doubles it where that is not enough."""
    if method == "malach":
        return max(int(math.ceil(1.0 / tol)), 8)
    return int(min(max(math.ceil(math.log2(1.0 / tol)) + 4, 8), 24))


def _plan(layer, n: int, bias_pool: int) -> LayerPlan:
    """Normalise every layer so that its largest coefficient is ``1/2``, whatever its scale (ReLU is positively
    homogeneous, so the gain ``2 max|α|`` is folded back after the block): ``tol`` then means the same for
    weights of any magnitude, and at ``|α| ≤ 1/2`` the products ``u·v`` (``u ~ U[0,1]``, ``v ~ U[-1,1]``) have
    density ``≥ ln2/2``, a uniform component, which is what Lueker's random Subset-Sum theorem needs. A layer
    whose coefficients are all zero gets gain 0: its block keeps nothing."""
    largest = max(float(layer.alpha.abs().max()) if layer.alpha.numel() else 0.0,
                  float(layer.beta.abs().max()) if layer.beta.numel() else 0.0)
    has_bias = layer.beta.numel() > 0 and bool(layer.beta.abs().max() > 0)
    return LayerPlan(layer.path, copies=2 * n, bias_pool=bias_pool if has_bias else 0, gain=2.0 * largest,
                     folded_norm=layer.folded_norm)


def _check_tol(tol) -> None:
    values = list(tol.values()) if isinstance(tol, Mapping) else [tol]
    for value in values or [None]:  # an empty mapping is an error too
        if not (isinstance(value, (int, float)) and 0 < float(value) < 1):
            raise ValueError(f"construct: tol must be in (0, 1) (or a non-empty mapping of layer paths to such), "
                             f"got {tol!r}")


def _layer_tolerances(tol, layers) -> Dict[str, float]:
    """Each replaced layer's tolerance: ``tol`` for all, or ``tol[path]`` from a mapping naming every layer."""
    if not isinstance(tol, Mapping):
        return {layer.path: float(tol) for layer in layers}
    paths = [layer.path for layer in layers]
    missing, unknown = [p for p in paths if p not in tol], sorted(set(tol) - set(paths))
    if missing or unknown:
        raise ValueError(f"construct: a tol mapping must name every replaced layer exactly: missing {missing}, "
                         f"not replaced layers {unknown} (the layers: {paths})")
    return {path: float(tol[path]) for path in paths}


def _radius(inputs, input_radius: Optional[float]) -> float:
    """The largest ``‖x‖₂`` among the inputs (of ``x`` itself for ``(x, node_mask, ...)``), unless given."""
    if input_radius is not None:
        return float(input_radius)
    flat = tensor_of(inputs[0] if isinstance(inputs, (tuple, list)) else inputs)
    return float(flat.reshape(flat.shape[0], -1).norm(dim=1).max())


def construct(target: nn.Module, inputs, *, tol: Union[float, Mapping[str, float]] = 1e-3, n: Optional[int] = None,
              eps: Optional[float] = None, seed: int = 0, policy: str = "widen", max_n: Optional[int] = None,
              fewest: bool = False, input_nonnegative: bool = False, input_radius: Optional[float] = None,
              verify: str = "compact", device="cpu", method: str = "subset_sum",
              feedback: Union[bool, FeedbackCache] = False, prune_silent: bool = False,
              progress: bool = True, log=None) -> Ticket:
    r"""Prune a random overparametrised network to approximate ``target`` (Pensia et al. 2020 lifted to
    equivariant coefficients, Ferbach et al. 2023; or Malach et al. 2020's single products, ``method="malach"``).

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
        A mapping ``{layer path: tol}`` naming every replaced layer sets one per layer (e.g. from
        :func:`equislt.construct.sparse_tolerances`).
    n : ``N``, summands per pool (each input field gets ``2N`` hidden copies, about ``N`` of each sign);
        default :func:`default_n` of each layer's ``tol`` and ``method``.
    eps : optional end-to-end target: if the certified bound exceeds it, a ValueError reports both.
    policy : rows over ``tol``: ``"widen"`` (more copies of the fields that own them, up to ``max_n`` summands:
        by default the exact solver's limit, ``equislt.subsetsum.MAX_N``, or ``MALACH_MAX_N`` for Malach's
        method; only those rows are solved again),
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
    method : ``"subset_sum"`` (default: every coefficient a subset sum of its pool, ``N ∝ log(1/tol)``) or
        ``"malach"`` (every coefficient the single closest product ``|u| v`` of its pool, Malach et al. 2020:
        ``N ∝ 1/tol``, the ticket keeps about one random coefficient per target coefficient and sign). Both
        prune the same random network (equivariant for the same reason), with the same certificate and Ticket.
        ``"malach_neurons"``: keep or drop whole hidden fields of the dense random block (Malach et al.'s neuron
        subnetworks, a structured mask; :mod:`equislt.construct._neurons`), fitted on the first
        ``NEURON_FIT_SAMPLES`` inputs; ``2N`` hidden fields per input field; no certified bound.
    feedback : error feedback (GPTQ in coefficient space, :mod:`equislt.construct._feedback`): solve each layer's
        problems one basis column at a time and fold each residual into the targets still to come, weighted by
        the second moments of the layer's inputs on the first ``FEEDBACK_SAMPLES`` inputs (fewer when their
        traced activations exceed ``FEEDBACK_TRACE_BYTES``, 2 GiB), so residuals cancel in the output: the same
        number of kept coefficients for several times less output error (or, at one agreement, a coarser
        ``tol`` and fewer coefficients). Per-coefficient residuals against the target then
        exceed ``tol`` (the certified bound grows; the measured error falls). Not for ``"malach_neurons"``.
        A :class:`~equislt.construct.FeedbackCache` instead of ``True`` keeps each layer's solving order and
        second moments for the next construction of the same target on the same inputs (at another ``tol``).
    prune_silent : with ``feedback``, keep nothing for a feature (an input field's basis element and sign half)
        whose output is zero on every traced input: a ReLU channel that never fires there, or a sign half its
        input never takes. The ticket then matches the target on inputs like the traced ones only as far as
        those features stay silent (measure it on held-out inputs); the certificate counts these problems as
        ``silent_rows`` and its bound sees their full residuals.

    The random network is never built as modules: each layer's random coefficients are drawn from the seed one
    chunk of input fields at a time, solved, and dropped; the ticket keeps the masks and runs in its compact form.
    """
    where = resolve_device(device, "construct: device")
    cache = _feedback_cache(feedback)
    tolerance = _tolerance(tol, policy, max_n, fewest, where, method, cache is not None, prune_silent)
    if n is not None and not 2 <= int(n) <= tolerance.max_n:
        raise ValueError(f"construct: n must be in [2, max_n={tolerance.max_n}], got {n}")
    if verify not in VERIFY:
        raise ValueError(f"construct: verify must be one of {VERIFY}, got {verify!r}")
    if input_radius is not None and not (math.isfinite(float(input_radius)) and float(input_radius) >= 0):
        raise ValueError(f"construct: input_radius must be finite and >= 0, got {input_radius}")
    check_inputs(target, inputs, input_nonnegative)
    neurons = method == "malach_neurons"
    seconds = {"trace": 0.0, "draw": 0.0, "solve": 0.0}
    with timed(seconds, "trace"):
        trace = trace_target(target, inputs, input_nonnegative, _trace_samples(target, inputs, neurons, cache))
        tols = _layer_tolerances(tol, trace.layers)
        plans = [_plan(layer, *_pools(n, tols[layer.path], tolerance.method, neurons)) for layer in trace.layers]
        units = {unit.path: unit for unit in trace.units if unit.kind == "linear"}
    certificate = Certificate(eps=eps, tol=None if isinstance(tol, Mapping) else float(tol), input_radius=0.0,
                              method=method, feedback=cache is not None, prune_silent=tolerance.prune_silent)
    masks, terms = {}, {}
    for layer, plan in tqdm(list(zip(trace.layers, plans)), desc="construct", disable=not progress, leave=False):
        layer_tolerance = dataclasses.replace(tolerance, tol=tols[layer.path])
        if neurons:
            with timed(seconds, "solve"):
                solution = solve_neurons(layer, units[layer.path], plan, seed, layer_tolerance.tol, fewest)
        else:
            solution = solve_within_tolerance(layer, plan, seed, layer_tolerance, seconds,
                                              LayerBlocks.of(layer.module, layer.family),
                                              units[layer.path] if cache is not None else None, cache)
        block_masks = {f"{plan.path}.{part}": named for part, named in solution.masks.items()}
        masks.update(block_masks)
        terms[layer.path] = layer_error_terms(layer, solution, plan.gain)
        certificate.layers.append(LayerCertificate.of(layer, plan, solution, count_masks(block_masks),
                                                      terms[layer.path], layer_tolerance.tol))
    ticket = Ticket(seed, ConstructRecipe(plans), masks, architecture=Architecture.of(target),
                    certificate=certificate, target=target, probe=slice_inputs(inputs, 2))
    with timed(seconds, "compile"):
        ticket.compiled
    with timed(seconds, "evaluate"):
        _evaluate(certificate, trace, terms, target, ticket.network if verify == "literal" else ticket.compiled,
                  inputs, input_radius)
        certificate.measured_on = verify
    certificate.seconds = seconds
    if eps is not None and (certificate.bound is None or certificate.bound > eps):
        raise ValueError(f"construct: certified bound {certificate.bound} does not meet eps={eps} "
                         f"({certificate.bound_note or 'raise n or lower tol'})")
    if log is not None:
        log(certificate.summary())
    return ticket


def _trace_samples(target, inputs, neurons: bool, cache: Optional[FeedbackCache]) -> int:
    """Inputs to trace: ``NEURON_FIT_SAMPLES`` to fit neuron subnetworks on; with error feedback as many of
    ``FEEDBACK_SAMPLES`` as fit in ``FEEDBACK_TRACE_BYTES`` of traced activations; else ``TRACE_SAMPLES``."""
    if neurons:
        return NEURON_FIT_SAMPLES
    if cache is not None:
        return samples_within(target, inputs, FEEDBACK_SAMPLES, FEEDBACK_TRACE_BYTES)
    return TRACE_SAMPLES


def _feedback_cache(feedback) -> Optional[FeedbackCache]:
    """The cache error feedback uses (a new one for ``True``), or None without feedback."""
    if isinstance(feedback, FeedbackCache):
        return feedback
    if feedback not in (True, False):
        raise TypeError(f"construct: feedback must be True, False or a FeedbackCache, got {type(feedback).__name__}")
    return FeedbackCache() if feedback else None


def _tolerance(tol, policy: str, max_n: Optional[int], fewest: bool, where, method: str,
               feedback: bool = False, prune_silent: bool = False) -> Tolerance:
    """The validated options every layer shares (each layer's own ``tol`` replaces the one here)."""
    if method not in CONSTRUCT_METHODS:
        raise ValueError(f"construct: method must be one of {CONSTRUCT_METHODS}, got {method!r}")
    if prune_silent not in (True, False):
        raise TypeError(f"construct: prune_silent must be True or False, got {prune_silent!r}")
    if prune_silent and not feedback:
        raise ValueError("construct: prune_silent=True finds silent features in error feedback's traced second "
                         "moments; pass feedback=True (or a FeedbackCache) with it")
    if feedback and method == "malach_neurons":
        raise ValueError("construct: feedback=True moves the targets of coefficient problems; method="
                         "'malach_neurons' keeps whole hidden fields and has none (use 'subset_sum' or 'malach')")
    if max_n is None:
        max_n = MAX_N if method == "subset_sum" else MALACH_MAX_N
    if method == "subset_sum" and max_n > MAX_N:
        raise ValueError(f"construct: max_n={max_n} exceeds the exact Subset-Sum solver's limit {MAX_N}")
    _check_tol(tol)
    return Tolerance(min(tol.values()) if isinstance(tol, Mapping) else tol, policy, int(max_n), fewest,
                     None if where.type == "cpu" else where, "malach" if method == "malach" else "subset_sum",
                     bool(prune_silent))


def _pools(n: Optional[int], tol: float, method: str, neurons: bool):
    """``(N, bias pool)`` of a layer: ``n`` or :func:`default_n` of its tolerance; a neuron subnetwork's ``N`` is
    its width, its bias pool a Subset-Sum pool."""
    summands = int(n) if n is not None else default_n(tol, method)
    return summands, default_n(tol) if neurons else summands


def _evaluate(certificate: Certificate, trace, terms, target, network, inputs, input_radius) -> None:
    """The certified bound and the measured error of ``network`` against ``target`` on ``inputs``."""
    certificate.input_radius = _radius(inputs, input_radius)
    certificate.bound, certificate.bound_note = network_bound(trace, terms, certificate.input_radius)
    certificate.assumptions = [f"the input of {layer.path} is torch.relu of the previous layer's output "
                               "(recognised on the traced samples, not from the code)"
                               for layer in trace.layers if layer.relu_inferred]
    certificate.measure(target, network, inputs)
