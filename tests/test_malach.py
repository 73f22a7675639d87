"""Malach et al. (2020) beside Pensia/Ferbach's Subset-Sum: single products (``method="malach"``) and neuron
subnetworks (``method="malach_neurons"``) through the same construction, certificate and Ticket."""

import pytest
import torch
from torch import nn

from equislt import Ticket
from equislt.construct import construct
from equislt.subsetsum import closest_single
from equislt.testing import (assert_equivariant, equivariance_error, index_permutation_error,
                             node_permutation_error)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4)).eval(), torch.randn(128, 6)


def _c4():
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn("c4", channels=(2, 2), kernel_size=3, input_size=9, num_classes=3)
    x = torch.rand(48, 1, 9, 9)
    target.train()
    with torch.no_grad():
        target(x)
    return target.eval(), x


def _ign():
    from equislt.models import IGN

    torch.manual_seed(0)
    x, mask = torch.randn(32, 2, 5, 5), torch.rand(32, 5) < 0.8
    return IGN(2, 3, 2, num_layers=1).eval(), (x, mask)


def _gin():
    from equislt.data import karate_club
    from equislt.models import gin_classifier

    torch.manual_seed(0)
    data = karate_club()
    return gin_classifier(data.num_features, 4, 3, num_layers=1).eval(), (data.x, data.edge_index)


def _out(model, inputs):
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return out.tensor if hasattr(out, "tensor") else out


def _equivariance(family, model, inputs):
    if family == "c4":
        actions = [(f"rot{k}", (lambda z, k=k: torch.rot90(z, k, dims=(2, 3))), (lambda y: y)) for k in (1, 2, 3)]
        return equivariance_error(model, inputs[:4], actions)
    if family == "ign":
        return index_permutation_error(model, inputs[0][:4], 2, 0, node_mask=inputs[1][:4],
                                       generator=torch.Generator().manual_seed(0))
    if family == "gin":
        return node_permutation_error(model, *inputs, node_level=False, generator=torch.Generator().manual_seed(0))
    return None


def test_closest_single_is_the_best_subset_of_at_most_one_element():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(200, 7, generator=g, dtype=torch.float64) * 2 - 1
    targets = torch.rand(200, generator=g, dtype=torch.float64) - 0.5
    targets[:5] = 0.0  # the empty subset is the best answer for a zero target
    valid = torch.rand(200, 7, generator=g) < 0.7
    result = closest_single(values, targets, valid, tol=1e-2)
    assert int(result.chosen.sum(1).max()) <= 1 and not bool((result.chosen & ~valid).any())
    for p in range(200):
        best = min([abs(float(targets[p]))] + [abs(float(values[p, i] - targets[p])) for i in range(7) if valid[p, i]])
        assert abs(float(result.residual[p])) == pytest.approx(best, abs=1e-15)
    assert not bool(result.chosen[:5].any())
    wide = closest_single(torch.rand(3, 1000, generator=g), torch.tensor([0.1, 0.2, 0.3]))  # no N limit
    assert float(wide.residual.abs().max()) < 1e-2


@pytest.mark.parametrize("family", ["mlp", "c4", "ign", "gin"])
def test_malach_tickets_agree_with_their_targets(family, tmp_path):
    """Every target coefficient is one product |u| v within tol (rows over tol: none), the ticket keeps about one
    random coefficient per target coefficient and sign, its compact form is the literal pruned network, it is as
    equivariant as the target and reloads bit for bit."""
    target, inputs = {"mlp": _mlp, "c4": _c4, "ign": _ign, "gin": _gin}[family]()
    ticket = construct(target, inputs, tol=1e-2, seed=1, method="malach", input_nonnegative=family == "c4",
                       progress=False)
    cert = ticket.certificate
    assert cert.method == "malach" and cert.rows_over_tol == 0
    assert cert.prediction_agreement >= 0.95 and cert.measured_relative_error < 0.05
    for layer in cert.layers:  # each problem keeps at most one mix coefficient; the lift only the copies used
        assert layer.coefficient_residual["max"] <= 1e-2
        assert layer.kept_coefficients <= 2 * layer.n_problems + layer.target_coefficients
    with torch.no_grad():
        compact, literal = _out(ticket, inputs), _out(ticket.network, inputs)
    assert float((compact - literal).abs().max()) <= 1e-5 * float(literal.abs().max())
    report = _equivariance(family, ticket.compiled, inputs)
    if report is not None:
        assert_equivariant(report, 1e-5)
    ticket.save(tmp_path / "t.pt")
    with torch.no_grad():
        assert torch.equal(_out(Ticket.load(tmp_path / "t.pt", target=target), inputs), compact)


def test_malach_needs_polynomially_more_random_coefficients_than_subset_sum():
    """At the same tolerance, single products need far larger pools (N ∝ 1/tol against log(1/tol)) and keep far
    fewer coefficients (one per problem against a subset)."""
    target, x = _mlp()
    subset = construct(target, x, tol=1e-3, method="subset_sum", progress=False).certificate
    single = construct(target, x, tol=1e-3, method="malach", progress=False).certificate
    assert single.rows_over_tol == subset.rows_over_tol == 0
    assert single.random_coefficients > 50 * subset.random_coefficients
    assert single.kept_coefficients < subset.kept_coefficients / 2
    coarse = construct(target, x, tol=1e-2, method="malach", progress=False).certificate
    assert coarse.random_coefficients < single.random_coefficients / 4  # ten times the tolerance


def test_malach_is_widened_by_doubling_up_to_max_n():
    target, x = _mlp()
    ticket = construct(target, x, tol=1e-3, n=8, method="malach", max_n=64, policy="widen", progress=False)
    for plan in ticket.recipe.plans:  # 2N = 16 copies doubled to at most 2·max_n = 128 per field
        assert all(16 + extra <= 128 for extra in plan.extra.values())
        assert {16 + extra for extra in plan.extra.values()} <= {32, 64, 128}
    assert ticket.certificate.rows_over_tol > 0  # pools of 64 cannot reach 1e-3
    with pytest.raises(ValueError, match="exceed"):
        construct(target, x, tol=1e-3, n=8, method="malach", max_n=64, policy="raise", progress=False)


def test_unknown_method_and_too_large_pools_are_named():
    target, x = _mlp()
    with pytest.raises(ValueError, match="method must be one of"):
        construct(target, x, method="pensia", progress=False)
    with pytest.raises(ValueError, match="exact Subset-Sum solver's limit"):
        construct(target, x, method="subset_sum", max_n=64, progress=False)


# -- neuron subnetworks -------------------------------------------------------------------------------------

def _single_neuron(d=4, samples=512):
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(d, 1), nn.ReLU()).eval(), torch.randn(samples, d)


def test_neuron_subnetworks_keep_whole_hidden_fields():
    """A structured mask: every hidden field keeps all or none of its lift and mix coefficients; no coefficient
    residual, so no certified bound, and the certificate says why."""
    from equislt.construct._build import LayerBlocks

    target, x = _single_neuron()
    ticket = construct(target, x, n=16, method="malach_neurons", progress=False)
    plan = ticket.recipe.plans[0]
    lift, mix = LayerBlocks.of(target[0]).tensors(plan.layout(4))
    masks = ticket.masks()
    lift_mask = masks["0.lift"][lift.name].reshape(-1)
    mix_mask = masks["0.mix"][mix.name].reshape(-1)
    kept_fields = 0
    for b in range(4):
        rows_lift = lift_mask[lift.field_positions(b)]
        rows_mix = mix_mask[mix.field_positions(b)]
        assert torch.equal(rows_lift.all(1), rows_lift.any(1)) and torch.equal(rows_mix.all(1), rows_mix.any(1))
        assert torch.equal(rows_lift.any(1), rows_mix.any(1))
        kept_fields += int(rows_lift.any(1).sum())
    assert 0 < kept_fields < 4 * 32
    cert = ticket.certificate
    assert cert.bound is None and "neuron subnetwork" in cert.bound_note and cert.layers[0].lower_bound == 0.0
    assert 0 < cert.layers[0].fit_relative_error < 1
    with torch.no_grad():
        assert torch.equal(ticket(x), ticket.network(x))  # it runs as the literal pruned block


def test_neuron_subnetworks_approximate_a_relu_neuron_only_slowly():
    """Malach et al.: pruning whole neurons is a random-features model. Its error falls with the width, but a
    weight subnetwork of a smaller random network is far more accurate."""
    target, x = _single_neuron()
    errors = [construct(target, x, n=n, method="malach_neurons", progress=False).certificate.measured_relative_error
              for n in (4, 64)]
    assert errors[1] < 0.6 * errors[0]
    neurons = construct(target, x, n=64, method="malach_neurons", progress=False).certificate
    weights = construct(target, x, tol=1e-3, progress=False).certificate  # a Subset-Sum weight subnetwork
    assert weights.random_coefficients < neurons.random_coefficients
    assert weights.measured_relative_error < neurons.measured_relative_error / 5


def test_neuron_subnetworks_stay_equivariant():
    target, x = _c4()
    ticket = construct(target, x[:16], n=2, method="malach_neurons", input_nonnegative=True, progress=False)
    assert_equivariant(_equivariance("c4", ticket.compiled, x), 1e-5)
    assert ticket.certificate.prediction_agreement > 0
