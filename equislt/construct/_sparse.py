r"""Sparse tickets: the fewest kept coefficients at a prediction agreement, with a tolerance per layer.

Fewest-elements Subset-Sum from large pools (Natale et al. 2024: fixed-size random Subset-Sum) keeps few
coefficients per target coefficient, but a per-coefficient tolerance ``ε`` is the wrong goal: ``ε`` per
coefficient of a large layer adds up in its output. The tolerance is therefore chosen per layer from the
certificate of a reference construction (fewest, tolerance ``t₀`` everywhere). For a chain of layers the output
error grows with each layer's relative operator error ``a_i / L_i`` (``a_i``: the certificate's error slope, the
Schur bound of the residual operator times the gain; ``L_i``: the target layer's own bound), which is about
``s_i·t_i`` with ``s_i = (a_i/L_i)/t₀``. Each layer keeps about ``K_i log(1/t_i)`` coefficients (``K_i`` target
coefficients, one more summand per halving), so minimising ``Σ K_i log(1/t_i)`` subject to ``Σ s_i t_i ≤ E``
gives

.. math:: t_i = \lambda\, K_i / s_i :

large layers (expensive to make exact) get a coarser tolerance, small sensitive ones a finer one. The level
``λ`` is the coarsest of ``λ₀·2^-k`` (found by bisection over ``k``) at which the ticket's prediction agreement
with the target on the given inputs reaches the goal (``criterion="agreement"``), or, stricter, its agreement
*with a margin* (``criterion="margin"``: an input counts only if the target's gap between its top two logits
exceeds twice the ticket's largest output error there, so no prediction is counted as kept by luck). An
agreement of 0.999 means something only on thousands of inputs: on a few hundred, 1.0 still allows flips on
others. Layers without a certified slope (graph layers behind
an aggregation) get the reference allocation ``t_i = λ``. After the bisection, the level halfway (geometrically)
between the agreeing one and the coarser one that failed is tried too.

The allocation rests on a model (independent errors, worst-case slopes), so some layers have slack at the level
found. With ``refine=True`` (the default) each layer's tolerance is then doubled, layer by layer (the one keeping
the most first), for as long as the ticket still agrees and keeps fewer coefficients: a coordinate search on the
same inputs, so the agreement it holds is measured, not modelled (check it on held-out inputs).

Error feedback (``feedback=True``, the default here; :mod:`._feedback`) makes each layer's residuals cancel in
its output on the traced inputs, so the same agreement holds at a coarser level: fewer kept coefficients. Its
solving order and second moments do not depend on the level: they are computed once (a ``FeedbackCache``).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..subsetsum import MAX_N
from ..ticket import Ticket
from ._certificate import model_outputs
from ._construct import construct
from ._feedback import FeedbackCache

__all__ = ["CRITERIA", "SPARSE_REFERENCE_TOL", "construct_sparse", "margin_agreement", "sparse_tolerances"]

SPARSE_REFERENCE_TOL = 1e-3
_FINEST = 1e-7  # no layer tolerance below this
_COARSEST = 0.25  # nor above this (a coefficient of 1/2 needs at least one summand)


def sparse_tolerances(certificate, level: float) -> Dict[str, float]:
    """``{layer path: t_i}`` with ``t_i = level · K_i/s_i`` normalised so that the largest ``K_i/s_i`` is 1 (see the
    module docstring), from the certificate of a fewest construction at one tolerance everywhere."""
    weights = {}
    for layer in certificate.layers:
        if layer.error_slope is None or not layer.lipschitz or not layer.error_slope or layer.tol is None:
            weights[layer.path] = None
        else:
            weights[layer.path] = layer.target_coefficients / (layer.error_slope / layer.lipschitz / layer.tol)
    known = [w for w in weights.values() if w is not None]
    top = max(known) if known else 1.0
    return {path: min(max(level * (1.0 if w is None else w / top), _FINEST), _COARSEST) for path, w in weights.items()}


@torch.no_grad()
def margin_agreement(target: nn.Module, network: nn.Module, inputs) -> float:
    """The fraction of inputs whose prediction ``network`` keeps with a margin: the target's gap between its two
    largest logits exceeds ``2 max_c |f_c(x) − g_c(x)|`` (then the argmax cannot differ). Outputs ``[B, C]``."""
    f, g = model_outputs(target, inputs), model_outputs(network, inputs)
    if f.dim() != 2 or f.shape[1] < 2:
        raise ValueError(f"margin_agreement: needs logits [inputs, classes >= 2], got shape {tuple(f.shape)}")
    top = f.topk(2, dim=1).values
    return float(((top[:, 0] - top[:, 1]) > 2 * (f - g).abs().amax(dim=1)).double().mean())


CRITERIA = ("agreement", "margin")


def construct_sparse(target: nn.Module, inputs, *, agreement: float = 0.999, criterion: str = "agreement",
                     n: int = MAX_N, start: float = 4e-3, steps: int = 10, seed: int = 0,
                     input_nonnegative: bool = False, feedback=True, prune_silent: Optional[bool] = None,
                     refine: bool = True, progress: bool = True, log=None, **options) -> Ticket:
    """A ticket keeping few coefficients (``fewest=True``, pools of ``n`` summands, error feedback unless
    ``feedback=False``, with a given ``FeedbackCache`` if one is passed, and then features silent on ``inputs``
    pruned unless ``prune_silent=False``: see :func:`~equislt.construct.construct`)
    whose predictions agree with ``target``'s on at least ``agreement`` of ``inputs`` (``criterion="margin"``:
    with a margin, :func:`margin_agreement`), with per-layer tolerances :func:`sparse_tolerances` at the coarsest level
    among ``start·2^-k``, ``k < steps``, that agrees, found by bisection, then (``refine``) each layer's tolerance
    doubled while the ticket agrees with fewer coefficients (see the module docstring).

    Pass inputs the target was not trained on and as many as you can: they are both what is traced and what the
    agreement is measured on. Other keyword arguments go to :func:`~equislt.construct.construct`. Raises a
    ValueError when even the finest level does not agree (naming its agreement)."""
    if not 0 < agreement <= 1:
        raise ValueError(f"construct_sparse: agreement must be in (0, 1], got {agreement}")
    if criterion not in CRITERIA:
        raise ValueError(f"construct_sparse: criterion must be one of {CRITERIA}, got {criterion!r}")
    if int(steps) < 1 or not 0 < start < 1:
        raise ValueError(f"construct_sparse: need steps >= 1 and 0 < start < 1, got steps={steps}, start={start}")
    if feedback is True:  # one cache for every level: the second moments do not depend on it
        feedback = FeedbackCache()
    if prune_silent is None:
        prune_silent = feedback is not False
    common = dict(n=n, fewest=True, seed=seed, input_nonnegative=input_nonnegative, feedback=feedback,
                  prune_silent=prune_silent, progress=progress, **options)
    # the allocation's slopes come from solved residuals only (a silent feature's would swamp its layer's)
    reference = construct(target, inputs, tol=SPARSE_REFERENCE_TOL, **{**common, "prune_silent": False}).certificate
    tried = {}

    def build(tols: Dict[str, float], what: str):
        """``(ticket at tols, its agreement by the criterion)``, logged as ``what``."""
        ticket = construct(target, inputs, tol=tols, **common)
        cert = ticket.certificate
        margin = margin_agreement(target, ticket.compiled, inputs) if criterion == "margin" else None
        if log is not None:
            log(f"construct_sparse: {what}: agreement {cert.prediction_agreement:.4f}"
                + ("" if margin is None else f" ({margin:.4f} with a margin)")
                + f", kept {cert.kept_coefficients:,} "
                f"({cert.kept_coefficients / max(cert.target_coefficients, 1):.2f}× the target)")
        return ticket, cert.prediction_agreement if margin is None else margin

    def attempt(k: float):
        level = float(start) * 2.0 ** -k
        tried[k] = build(sparse_tolerances(reference, level), f"level {level:.2e}")
        return tried[k][1] >= agreement

    low, high = 0, int(steps) - 1  # the smallest k that agrees (finer levels agree more), then k − 1/2
    while low < high:  # the finest level, the most expensive, is built only if no coarser one agrees
        middle = (low + high) // 2
        if attempt(middle):
            high = middle
        else:
            low = middle + 1
    if high not in tried and not attempt(high):
        raise ValueError(f"construct_sparse: even level {start * 2.0 ** -high:.2e} agrees on only "
                         f"{tried[high][1]:.4f} of the inputs (goal {agreement}); pass more steps")
    if high > 0 and attempt(high - 0.5):  # between the coarser level that fails and the one that agrees
        high -= 0.5
    return _coarsened(tried[high][0], build, agreement) if refine else tried[high][0]


def _coarsened(ticket: Ticket, build, agreement: float) -> Ticket:
    """Layer by layer (the one keeping the most first), double the tolerance until ``build`` no longer reaches
    ``agreement`` with fewer kept coefficients; keep the last doubling that did."""
    tols = {layer.path: layer.tol for layer in ticket.certificate.layers}
    for path in [layer.path for layer in sorted(ticket.certificate.layers, key=lambda layer: -layer.kept_coefficients)]:
        while tols[path] < _COARSEST:
            trial = {**tols, path: min(2 * tols[path], _COARSEST)}
            candidate, reached = build(trial, f"{path} at tol {trial[path]:.2e}")
            if reached < agreement or candidate.certificate.kept_coefficients >= ticket.certificate.kept_coefficients:
                break
            ticket, tols = candidate, trial
    return ticket
