"""Sparse tickets: per-layer tolerances, fewest elements (closest among the fewest), the agreement goal."""
import math

import pytest
import torch
from torch import nn

from equislt.construct import construct, construct_sparse, margin_agreement, sparse_tolerances


def _target():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 5)).eval()
    return target, torch.randn(512, 8)


def test_a_tolerance_per_layer():
    target, x = _target()
    tol = {"0": 1e-2, "2": 1e-4, "4": 1e-3}
    cert = construct(target, x, tol=tol, fewest=True, progress=False).certificate
    assert cert.tol is None and [layer.tol for layer in cert.layers] == [1e-2, 1e-4, 1e-3]
    for layer in cert.layers:
        assert layer.rows_over_tol == 0 and layer.coefficient_residual["max"] <= layer.tol
    # the default N follows each layer's tolerance
    assert [layer.n for layer in cert.layers] == [11, 18, 14]
    with pytest.raises(ValueError, match=r"missing \['4'\]"):
        construct(target, x, tol={"0": 1e-2, "2": 1e-3}, progress=False)
    with pytest.raises(ValueError, match="not replaced layers"):
        construct(target, x, tol={**tol, "1": 1e-3}, progress=False)
    with pytest.raises(ValueError, match="tol must be in"):
        construct(target, x, tol={**tol, "4": 2.0}, progress=False)


def test_sparse_tolerances_give_large_insensitive_layers_the_coarsest_tolerance():
    """``t_i ∝ K_i / s_i``: K_i target coefficients, s_i the relative error slope per unit tolerance."""
    target, x = _target()
    reference = construct(target, x, tol=1e-3, fewest=True, progress=False).certificate
    tols = sparse_tolerances(reference, 1e-2)
    weights = {layer.path: layer.target_coefficients * layer.lipschitz * layer.tol / layer.error_slope
               for layer in reference.layers}
    top = max(weights, key=weights.get)
    assert tols[top] == pytest.approx(1e-2)
    for path, weight in weights.items():
        assert tols[path] == pytest.approx(1e-2 * weight / weights[top])


def test_construct_sparse_keeps_fewer_coefficients_at_the_agreement_goal():
    target, x = _target()
    closest = construct(target, x, tol=1e-5, progress=False).certificate
    lines = []
    ticket = construct_sparse(target, x, agreement=0.99, n=16, start=1e-2, steps=6, log=lines.append,
                              refine=False, progress=False)
    cert = ticket.certificate
    assert cert.prediction_agreement >= 0.99 and cert.rows_over_tol == 0
    assert cert.kept_coefficients < closest.kept_coefficients / 2
    assert lines and all("construct_sparse: level" in line for line in lines)
    # bisection: at most ceil(log2(6)) + 1 levels built, then the half step between the agreeing level and the
    # coarser one that failed; the ticket is the coarsest tried level that agrees
    assert len(lines) <= 5
    tried = {}
    for line in lines:
        kept = int(line.split("kept ")[1].split(" ")[0].replace(",", ""))
        tried[float(line.split("level ")[1].split(":")[0])] = (float(line.split("agreement ")[1].split(",")[0]), kept)
    coarsest = max(level for level, (agreed, _) in tried.items() if agreed >= 0.99)
    assert tried[coarsest][1] == cert.kept_coefficients
    half_steps = [level for level in tried if abs(round(math.log2(1e-2 / level)) - math.log2(1e-2 / level)) > 0.4]
    assert len(half_steps) == 1 and min(tried) < half_steps[0] < max(tried)
    assert cert.feedback  # construct_sparse solves with error feedback by default
    # the margin criterion is stricter: a prediction kept with a margin is kept
    strict = construct_sparse(target, x, agreement=0.99, criterion="margin", n=16, start=1e-2, steps=6,
                              refine=False, progress=False)
    assert margin_agreement(target, strict.compiled, x) >= 0.99
    assert margin_agreement(target, ticket.compiled, x) <= ticket.certificate.prediction_agreement
    assert strict.certificate.kept_coefficients >= cert.kept_coefficients


def test_refining_doubles_layer_tolerances_while_the_ticket_agrees():
    """refine=True: after the bisection each layer's tolerance is doubled, the layer keeping the most first, while
    the ticket still reaches the goal with fewer coefficients; the first doubling that does not is logged and
    dropped. The result keeps at most the bisection's coefficients and still agrees."""
    target, x = _target()
    options = dict(agreement=0.99, n=16, start=1e-2, steps=6, progress=False)
    plain = construct_sparse(target, x, refine=False, **options)
    lines = []
    refined = construct_sparse(target, x, log=lines.append, **options)
    a, b = plain.certificate, refined.certificate
    assert b.prediction_agreement >= 0.99 and b.kept_coefficients <= a.kept_coefficients
    start = {layer.path: layer.tol for layer in a.layers}
    trials = [line.split("construct_sparse: ")[1] for line in lines if " at tol " in line]
    assert trials, lines
    order = [layer.path for layer in sorted(a.layers, key=lambda layer: -layer.kept_coefficients)]
    assert [t.split(" at tol")[0] for t in trials] == sorted((t.split(" at tol")[0] for t in trials), key=order.index)
    kept, tols = a.kept_coefficients, dict(start)  # replay the log with the rule: the same ticket comes out
    for trial in trials:
        path, tol = trial.split(" at tol ")[0], float(trial.split(" at tol ")[1].split(":")[0])
        assert tol == pytest.approx(2 * tols[path], rel=1e-2)  # one doubling of the layer's current tolerance
        count = int(trial.split("kept ")[1].split(" ")[0].replace(",", ""))
        if float(trial.split("agreement ")[1].split(",")[0]) >= 0.99 and count < kept:
            kept, tols[path] = count, 2 * tols[path]
    assert kept == b.kept_coefficients
    assert {layer.path: layer.tol for layer in b.layers} == pytest.approx(tols)


def test_construct_sparse_says_when_the_goal_is_out_of_reach():
    target, x = _target()
    with pytest.raises(ValueError, match="agrees on only"):
        construct_sparse(target, x, agreement=1.0, criterion="margin", n=8, start=0.2, steps=1, progress=False)
    with pytest.raises(ValueError, match="criterion"):
        construct_sparse(target, x, criterion="vibes", progress=False)
