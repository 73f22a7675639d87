"""Error feedback: residuals folded into the coefficients still to solve (GPTQ in coefficient space)."""
import pytest
import torch
from torch import nn

from equislt import Ticket
from equislt.construct import FeedbackCache, construct
from equislt.construct._build import LayerBlocks
from equislt.construct._feedback import DAMPING, LayerFeedback
from equislt.construct._trace import trace_target
from equislt.testing import assert_equivariant, equivariance_error


def _correlated_inputs(count: int, dim: int, rank: int = 3, seed: int = 0) -> torch.Tensor:
    """Inputs near one ``rank``-dimensional subspace (as images and hidden features are): where feedback helps;
    ``seed`` draws the samples, the subspace is always the same."""
    basis = torch.randn(rank, dim, generator=torch.Generator().manual_seed(1234))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, rank, generator=g) @ basis + 0.05 * torch.randn(count, dim, generator=g)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def test_the_update_is_the_least_squares_correction_of_the_later_coefficients():
    """After a step with residual ``r`` on features ``Q``, the later targets move by ``δ_R = −H_RR⁻¹ H_RQ r``
    (``H`` the damped second moment of the features ``σ(±x_j)``): the correction that minimises the layer's
    output error on the traced inputs given ``r``."""
    target, x = _mlp(), _correlated_inputs(256, 12)
    trace = trace_target(target, x, samples=256)
    layer, unit = trace.layers[0], next(u for u in trace.units if u.path == "0")
    halves = [("pos", 1.0), ("neg", -1.0)]
    alpha = layer.alpha.double()
    feedback = LayerFeedback.of(layer, unit, LayerBlocks.of(layer.module, layer.family), halves, alpha)
    # features in natural order: (input j, half h); weight [16, 12] flattened row-major
    phi = torch.cat([torch.relu(x), torch.relu(-x)], dim=1).double()  # [S, 24]: feature (h, j) at h * 12 + j
    moment = phi.T @ phi
    moment += DAMPING * moment.diagonal().mean() * torch.eye(24, dtype=torch.float64)
    b, positions = feedback.steps[0]
    assert torch.equal(positions, torch.arange(16) * 12 + b)  # the column of input field b
    q = [b, 12 + b]  # its two halves
    rest = [j for j in range(24) if j not in q]
    residual = torch.zeros(2 * alpha.numel(), dtype=torch.float64)
    r = torch.randn(16, 2, dtype=torch.float64)
    residual[positions] = r[:, 0]
    residual[alpha.numel() + positions] = r[:, 1]
    before = feedback.goals.clone()
    feedback.propagate(0, residual)
    expected = -(torch.linalg.solve(moment[rest][:, rest], moment[rest][:, q]) @ r.T).T  # [16 outputs, 22]
    moved = (feedback.goals - before).view(2, 16, 12)  # (half, output, input)
    got = torch.cat([moved[0], moved[1]], dim=1)[:, rest]
    assert torch.allclose(got, expected, atol=1e-9)
    assert torch.equal(moved[:, :, b], torch.zeros(2, 16, dtype=torch.float64))  # the solved column stays


def test_feedback_lowers_the_output_error_at_the_same_kept_count(tmp_path):
    target, x = _mlp(), _correlated_inputs(1024, 12)
    plain = construct(target, x, tol=3e-3, n=16, fewest=True, progress=False)
    fed = construct(target, x, tol=3e-3, n=16, fewest=True, feedback=True, progress=False)
    a, b = plain.certificate, fed.certificate
    assert b.feedback and not a.feedback
    assert abs(b.kept_coefficients - a.kept_coefficients) <= 0.1 * a.kept_coefficients
    held_out = _correlated_inputs(256, 12, seed=1)
    with torch.no_grad():
        f = target(held_out)
        error = {name: float((f - t.compiled(held_out)).norm() / f.norm()) for name, t in (("plain", plain),
                                                                                             ("fed", fed))}
    assert error["fed"] < error["plain"] / 2, error
    # every problem is within tol of its moved goal; against the target's own coefficients the residuals are
    # larger (they were moved to cancel in the output), and the certificate says so
    assert b.rows_over_tol == 0
    assert max(layer.coefficient_residual["max"] for layer in b.layers) > 3e-3
    ticket_path = tmp_path / "fed.pt"
    fed.save(ticket_path)
    loaded = Ticket.load(ticket_path, target=target)
    assert loaded.certificate.feedback
    with torch.no_grad():
        assert torch.equal(loaded.compiled(held_out), fed.compiled(held_out))


def _assert_d4_invariant(ticket, x):
    """The ticket's literal and compact networks, in train and eval mode, under the rotations and a flip of D4."""
    actions = [(f"rot{k}", (lambda z, k=k: torch.rot90(z, k, dims=(2, 3))), (lambda y: y)) for k in (1, 2, 3)]
    actions.append(("flip", (lambda z: torch.flip(z, dims=(3,))), (lambda y: y)))
    for network in (ticket.network, ticket.compiled):
        for mode in ("train", "eval"):
            getattr(network, mode)()
            assert_equivariant(equivariance_error(network, x, actions), 1e-5)


def test_a_feedback_ticket_of_a_steerable_cnn_is_exactly_equivariant():
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn("d4", channels=(2, 3), kernel_size=3, input_size=9, num_classes=4).eval()
    x = torch.rand(64, 1, 9, 9)
    ticket = construct(target, x, tol=1e-3, n=16, fewest=True, input_nonnegative=True, feedback=True,
                       progress=False)
    assert ticket.certificate.rows_over_tol == 0
    _assert_d4_invariant(ticket, x[:8])


def test_feedback_on_graph_layers_lowers_the_error():
    from torch_geometric.nn.models import GIN

    from equislt.data import karate_club

    data = karate_club()
    torch.manual_seed(0)
    target = GIN(data.x.shape[1], 8, 2, out_channels=4).eval()
    inputs = (data.x, data.edge_index)
    errors = {}
    for feedback in (False, True):
        ticket = construct(target, inputs, tol=3e-3, n=16, fewest=True, input_nonnegative=True,
                           feedback=feedback, progress=False)
        assert ticket.certificate.rows_over_tol == 0
        with torch.no_grad():
            f = target(*inputs)
            errors[feedback] = float((f - ticket(*inputs)).norm() / f.norm())
    assert errors[True] < errors[False], errors


def test_feedback_with_malachs_single_products():
    """The feedback only moves targets, so Malach et al.'s one-product method takes it too."""
    target, x = _mlp(), _correlated_inputs(1024, 12)
    held_out = _correlated_inputs(256, 12, seed=1)
    errors = {}
    for feedback in (False, True):
        ticket = construct(target, x, tol=3e-2, method="malach", feedback=feedback, progress=False)
        assert ticket.certificate.rows_over_tol == 0 and ticket.certificate.feedback == feedback
        with torch.no_grad():
            f = target(held_out)
            errors[feedback] = float((f - ticket.compiled(held_out)).norm() / f.norm())
    assert errors[True] < errors[False] / 2, errors


def test_feedback_needs_coefficient_problems():
    target, x = _mlp(), _correlated_inputs(64, 12)
    with pytest.raises(ValueError, match="malach_neurons"):
        construct(target, x, method="malach_neurons", feedback=True, progress=False)


def test_a_feedback_cache_serves_later_constructions_of_the_same_target_and_only_those():
    """A FeedbackCache computes each layer's order and second moments once: a second construction at another
    tolerance reuses them and builds the very ticket a fresh construction builds; another target (same
    architecture, other weights) or other inputs are computed again."""
    target, x = _mlp(), _correlated_inputs(512, 12)
    cache = FeedbackCache()
    options = dict(n=16, fewest=True, progress=False)
    construct(target, x, tol=3e-3, feedback=cache, **options)
    assert cache.hits == 0 and "layers=['0', '2']" in repr(cache)
    cached = construct(target, x, tol=1e-3, feedback=cache, **options)
    fresh = construct(target, x, tol=1e-3, feedback=True, **options)
    assert cache.hits == 2
    kept, expected = cached.masks(), fresh.masks()
    assert kept.keys() == expected.keys()
    assert all(torch.equal(kept[k][m], expected[k][m]) for k in expected for m in expected[k])
    other = _mlp()
    with torch.no_grad():
        other[0].weight.mul_(-1)
    construct(other, x, tol=1e-3, feedback=cache, **options)  # layer 2's coefficients are the same, its input not
    assert cache.hits == 2
    elsewhere = _correlated_inputs(512, 12, seed=1)
    construct(target, elsewhere, tol=1e-3, feedback=cache, **options)
    assert cache.hits == 2
    construct(target, elsewhere, tol=3e-3, feedback=cache, **options)
    assert cache.hits == 4
    with pytest.raises(TypeError, match="feedback must be True, False or a FeedbackCache"):
        construct(target, x, tol=1e-3, feedback="yes", **options)


def test_the_feedback_trace_is_bounded_by_bytes(monkeypatch):
    """Feedback traces up to FEEDBACK_SAMPLES inputs, fewer when every unit's traced input and output would
    exceed FEEDBACK_TRACE_BYTES (large models); a graph batch is traced whole."""
    from equislt.construct import _construct
    from equislt.construct._trace import samples_within

    target, x = _mlp(), _correlated_inputs(512, 12)
    per_sample = 4 * (12 + 16 + 16 + 16 + 16 + 4)  # float32 in/out of Linear 12→16, ReLU, Linear 16→4
    assert samples_within(target, x, 1024, 100 * per_sample) == 100
    assert samples_within(target, x, 1024, 2**40) == 1024
    assert samples_within(target, x, 1024, 1) == 1
    edges = torch.tensor([[0, 1], [1, 0]])
    assert samples_within(target, (x[:2], edges), 1024, 1) == 1024  # (x, edge_index): traced whole
    traced = []
    original = _construct.trace_target
    monkeypatch.setattr(_construct, "trace_target", lambda *a: traced.append(a[3]) or original(*a))
    monkeypatch.setattr(_construct, "FEEDBACK_TRACE_BYTES", 64 * per_sample)
    construct(target, x, tol=3e-3, n=16, fewest=True, feedback=True, progress=False)
    assert traced == [64]


def _mlp_with_silent_features():
    """``_mlp`` whose hidden units 3 and 7 never fire (weights 0, bias −0.1) and whose input 0 is always
    positive on ``_positive_first`` inputs: 4 × 2 silent rows in layer 2, 16 (input 0's negative half) in
    layer 0."""
    target = _mlp()
    with torch.no_grad():
        target[0].weight[[3, 7]] = 0.0
        target[0].bias[[3, 7]] = -0.1
    return target


def _positive_first(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[:, 0] = x[:, 0].abs() + 0.1
    return x


def test_silent_features_keep_nothing_and_the_traced_outputs_stay():
    """prune_silent: the problems of features whose output is zero on every traced input stay empty. Their
    coefficients multiply zeros there, so on those inputs the ticket's outputs are the ones it has without
    pruning, with fewer coefficients kept; on an input that wakes a silent feature it is worse (measured, not
    certified: the bound sees the full residuals)."""
    g = torch.Generator().manual_seed(0)  # full-rank inputs: the feedback's moved goals hold off their span too
    target, x = _mlp_with_silent_features(), _positive_first(torch.randn(512, 12, generator=g))
    options = dict(tol=3e-3, n=16, fewest=True, feedback=True, progress=False)
    full = construct(target, x, **options)
    pruned = construct(target, x, prune_silent=True, **options)
    a, b = full.certificate, pruned.certificate
    assert (a.silent_rows, b.silent_rows) == (0, 24)
    assert {layer.path: layer.silent_rows for layer in b.layers} == {"0": 16, "2": 8}
    assert b.prune_silent and not a.prune_silent and a.rows_over_tol == b.rows_over_tol == 0
    assert b.kept_coefficients < a.kept_coefficients
    lift = pruned.masks()["2.lift"]["weight"]  # [hidden copies, 16 inputs]: nothing of units 3 and 7
    assert not lift[:, [3, 7]].any() and lift[:, 0].any()
    assert full.masks()["2.lift"]["weight"][:, [3, 7]].any()
    held_out = _positive_first(torch.randn(256, 12, generator=g))
    with torch.no_grad():
        assert torch.allclose(pruned.compiled(x), full.compiled(x), atol=1e-6)
        assert torch.allclose(pruned.compiled(held_out), full.compiled(held_out), atol=1e-6)
        awake = torch.randn(256, 12, generator=g)  # input 0 of either sign: its negative half speaks
        f = target(awake)
        errors = [float((f - t.compiled(awake)).norm() / f.norm()) for t in (full, pruned)]
    assert errors[1] > 2 * errors[0], errors
    assert b.bound > a.bound
    assert "24 problems of features silent" in b.summary()


def test_prune_silent_needs_error_feedback():
    target, x = _mlp(), _correlated_inputs(64, 12)
    with pytest.raises(ValueError, match="prune_silent=True finds silent features"):
        construct(target, x, prune_silent=True, progress=False)
    with pytest.raises(TypeError, match="prune_silent must be True or False"):
        construct(target, x, feedback=True, prune_silent="yes", progress=False)


def test_a_ticket_without_its_silent_features_is_exactly_equivariant():
    """A silent regular field of a D4 CNN (batch-norm scale 0, shift −0.1) keeps nothing in the next layer; pruning
    whole coefficient columns keeps the ticket exactly equivariant."""
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn("d4", channels=(2, 3), kernel_size=3, input_size=9, num_classes=4).eval()
    with torch.no_grad():
        norm = getattr(target.features[1], "batch_norm_[8]")  # the regular fields of D4 (size 8)
        norm.weight[1], norm.bias[1] = 0.0, -0.1
    x = torch.rand(64, 1, 9, 9)
    options = dict(tol=1e-3, n=16, fewest=True, input_nonnegative=True, feedback=True, progress=False)
    full = construct(target, x, **options)
    ticket = construct(target, x, prune_silent=True, **options)
    silent = {layer.path: layer.silent_rows for layer in ticket.certificate.layers}
    assert silent["features.4"] > 0 and silent["features.0"] == 0
    assert ticket.certificate.kept_coefficients < full.certificate.kept_coefficients
    with torch.no_grad():
        assert torch.allclose(ticket.compiled(x), full.compiled(x), atol=1e-5)
    _assert_d4_invariant(ticket, x[:8])
