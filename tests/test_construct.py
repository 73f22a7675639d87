"""The provable construction: error within the certificate, exact equivariance, tickets that regenerate."""
import copy

import pytest
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn

import equislt
from equislt import Ticket
from equislt.construct import construct
from equislt.testing import assert_equivariant, equivariance_error, escnn_equivariance_error


def _warm_batchnorm(model, x):
    """Give batch norms non-trivial running statistics (a few train-mode passes)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x + 0.1 * torch.randn_like(x))
    return model.eval()


def _radius(x):
    return float(x.reshape(len(x), -1).norm(dim=1).max())


def _check_ticket(target, ticket, x_test, tmp_path, rtol=1e-5):
    cert = ticket.certificate
    with torch.no_grad():
        f = target.eval()(x_test)
        g = ticket.network(x_test)
    error = float((f - g).abs().max())
    norms = x_test.reshape(len(x_test), -1).norm(dim=1)
    assert cert.bound is not None, cert.bound_note
    assert float(norms.max()) <= cert.input_radius + 1e-6
    assert error <= cert.bound  # outputs within the certified bound on held-out inputs
    assert cert.rows_over_tol == 0
    assert cert.kept_coefficients < cert.random_coefficients
    assert cert.random_coefficients >= cert.lower_bound  # a valid instance respects the lower bound
    # save -> load regenerates the pruned random network bit-exactly
    path = tmp_path / "ticket.pt"
    ticket.save(path)
    loaded = Ticket.load(path, target=target)
    with torch.no_grad():
        assert torch.equal(loaded.network(x_test), g)
        compiled = ticket.compile()
        c = compiled(x_test)
    assert float((c - g).abs().max()) <= rtol * float(g.abs().max()) + 1e-6
    assert not any(isinstance(m, equislt.nn.MaskedLayer) for m in compiled.modules())
    return error


def test_mlp_recovers_pensia(tmp_path):
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                           nn.Linear(16, 4))
    x = torch.randn(200, 10)
    _warm_batchnorm(target, x)
    state = copy.deepcopy(target.state_dict())
    ticket = construct(target, x[:100], tol=1e-4, seed=1, input_radius=_radius(x), progress=False)
    assert all(torch.equal(state[k], v) for k, v in target.state_dict().items())  # target untouched
    error = _check_ticket(target, ticket, x[100:], tmp_path)
    assert error < 1e-2
    layers = ticket.certificate.layers
    assert [c.input_nonnegative for c in layers] == [False, True, True]
    assert layers[0].folded_norm == "1"
    assert layers[0].n_problems == 2 * 10 * 16 + 16  # two signs per weight + one per bias


def test_cnn_recovers_da_cunha(tmp_path):
    torch.manual_seed(0)
    target = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(6, 3))
    x = torch.rand(96, 1, 8, 8)
    _warm_batchnorm(target, x)
    ticket = construct(target, x[:48], tol=1e-4, input_nonnegative=True, input_radius=_radius(x),
                       progress=False)
    _check_ticket(target, ticket, x[48:], tmp_path)
    assert ticket.certificate.layers[0].input_nonnegative


@pytest.mark.parametrize("group", ["c4", "d4"])
def test_steerable_cnn_ticket_is_exactly_equivariant(group, tmp_path):
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn(group, channels=(2, 3), kernel_size=3, input_size=9, num_classes=4)
    x = torch.rand(64, 1, 9, 9)
    _warm_batchnorm(target, x)
    ticket = construct(target, x[:32], tol=1e-4, input_nonnegative=True, input_radius=_radius(x),
                       progress=False)
    _check_ticket(target, ticket, x[32:], tmp_path)
    cert = ticket.certificate
    assert cert.prediction_agreement == 1.0
    actions = [(f"rot{k}", (lambda z, k=k: torch.rot90(z, k, dims=(2, 3))), (lambda y: y)) for k in (1, 2, 3)]
    if group == "d4":
        actions.append(("flip", (lambda z: torch.flip(z, dims=(3,))), (lambda y: y)))
    assert_equivariant(equivariance_error(ticket.network, x[:8], actions), 1e-5)
    # the ticket regenerates from the recorded architecture factory alone (no target needed)
    ticket.save(tmp_path / "t.pt")
    again = Ticket.load(tmp_path / "t.pt")
    with torch.no_grad():
        assert torch.equal(again.network(x[:8]), ticket.network(x[:8]))


def test_escnn_linear_and_orbit_linear_targets(tmp_path):
    from equislt.nn import OrbitLinear

    gspace = gspaces.no_base_space(gspaces.flipRot2dOnR2(3).fibergroup)
    group = gspace.fibergroup
    t_in = enn.FieldType(gspace, [group.regular_representation, group.trivial_representation])
    t_mid = enn.FieldType(gspace, [group.regular_representation] * 3)
    t_out = enn.FieldType(gspace, [group.regular_representation] * 2)
    torch.manual_seed(0)
    target = enn.SequentialModule(enn.Linear(t_in, t_mid), enn.ReLU(t_mid), OrbitLinear(t_mid, t_out))
    with torch.no_grad():
        target[2].bias.normal_()
    x = enn.GeometricTensor(torch.randn(64, t_in.size), t_in)
    ticket = construct(target, x, tol=1e-4, progress=False)
    with torch.no_grad():
        error = (ticket.network(x).tensor - target(x).tensor).abs().max()
    assert error <= ticket.certificate.bound and error < 1e-2
    assert_equivariant(escnn_equivariance_error(ticket.network, x[:8]), 1e-5)


def test_error_decays_exponentially_in_n():
    """log(median coefficient residual) against N has slope ≈ −ln 2 per summand (Lueker 1998: the
    median residual of a random Subset-Sum problem halves with every extra summand)."""
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(24, 24))
    x = torch.randn(8, 24)
    ns, medians = [8, 10, 12, 14, 16], []
    for n in ns:
        ticket = construct(target, x, tol=0.5, n=n, policy="report", seed=n, progress=False)
        medians.append(ticket.certificate.layers[0].coefficient_residual["median"])
    logs = torch.log(torch.tensor(medians, dtype=torch.float64))
    xs = torch.tensor(ns, dtype=torch.float64)
    slope = float(((xs - xs.mean()) * (logs - logs.mean())).sum() / ((xs - xs.mean()) ** 2).sum())
    assert -1.0 < slope < -0.45, (slope, medians)  # -ln 2 = -0.69


@pytest.mark.parametrize("module, message", [
    (lambda g: enn.SequentialModule(enn.R2Conv(enn.FieldType(g, [g.trivial_repr]), enn.FieldType(g, [g.irrep(1)]), 3),
                                    enn.NormNonLinearity(enn.FieldType(g, [g.irrep(1)]))),
     "NormNonLinearity.*permutation"),
    (lambda g: nn.Sequential(nn.Linear(3, 3), nn.ELU(), nn.Linear(3, 2)), "ELU.*positively homogeneous"),
])
def test_unsupported_layers_are_named(module, message):
    g = gspaces.rot2dOnR2(4)
    model = module(g)
    x = torch.randn(2, 3) if isinstance(model, nn.Sequential) else torch.randn(2, 1, 5, 5)
    x = x if isinstance(model, nn.Sequential) else enn.GeometricTensor(x, model.in_type)
    with pytest.raises(ValueError, match=message):
        construct(model, x, progress=False)


def test_irrep_fields_under_relu_are_rejected_with_the_reason():
    g = gspaces.rot2dOnR2(4)
    t_in, t_irr = enn.FieldType(g, [g.trivial_repr]), enn.FieldType(g, [g.irrep(1)])
    model = enn.SequentialModule(enn.R2Conv(t_in, t_irr, 3), enn.R2Conv(t_irr, t_in, 3))
    x = enn.GeometricTensor(torch.randn(2, 1, 7, 7), t_in)
    with pytest.raises(ValueError, match="R2Conv input: field type 'irrep_1' is not a permutation representation"):
        construct(model, x, progress=False)


def test_policy_raise_reports_rows_over_tolerance():
    target = nn.Sequential(nn.Linear(8, 8))
    with pytest.raises(ValueError, match="exceed tol"):
        construct(target, torch.randn(4, 8), tol=1e-6, n=4, policy="raise", progress=False)


def test_widen_policy_adds_width_and_reports_it():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(8, 8))
    ticket = construct(target, torch.randn(4, 8), tol=1e-4, n=6, policy="widen", progress=False)
    layer = ticket.certificate.layers[0]
    assert layer.copies_added > 0 and layer.rows_over_tol == 0


# -- per-input-field widening ("addwidth") with prefix-stable draws ------------------------------------------

def _c4_target():
    g = gspaces.rot2dOnR2(4)
    t_in = enn.FieldType(g, [g.trivial_repr])
    t_mid = enn.FieldType(g, [g.regular_repr] * 3)
    t_out = enn.FieldType(g, [g.regular_repr] * 2)
    torch.manual_seed(0)
    return enn.SequentialModule(enn.R2Conv(t_in, t_mid, 3, padding=1), enn.ReLU(t_mid),
                                enn.R2Conv(t_mid, t_out, 3, padding=1))


def _mixed_fields_target():
    g = gspaces.rot2dOnR2(4)
    t_in = enn.FieldType(g, [g.regular_repr, g.trivial_repr, g.regular_repr])
    t_out = enn.FieldType(g, [g.regular_repr] * 2)
    return enn.SequentialModule(enn.R2Conv(t_in, t_out, 3))


def test_torch_generator_prefixes_are_stable():
    """The per-field draws rely on it: a longer ``torch.rand`` draw extends a shorter one."""
    for n in (1, 15, 16, 17, 100, 4097):
        for dtype in (torch.float32, torch.float64):
            short = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=dtype)
            long = torch.rand(3 * n + 5, generator=torch.Generator().manual_seed(3), dtype=dtype)
            assert torch.equal(short, long[:n])


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Linear(5, 3)),
    lambda: nn.Sequential(nn.Conv2d(4, 3, 3)),
    _mixed_fields_target,
], ids=["linear", "conv2d", "r2conv-mixed-fields"])
def test_widening_one_field_leaves_every_other_coefficient_unchanged(make):
    from equislt.construct import LayerPlan
    from equislt.construct._build import build_random_network

    target = make()
    narrow = LayerPlan("0", copies=6, bias_pool=3, gain=1.0)
    wide = LayerPlan("0", copies=6, bias_pool=3, gain=1.0, extra={1: 4})
    nets = [build_random_network(target, [plan], seed=7).get_submodule("0") for plan in (narrow, wide)]
    widths = [net.layout.widths for net in nets]
    assert widths[0][1] == 6 and widths[1][1] == 10 and widths[0][0] == widths[1][0] == 6
    for part, side in (("lift", "out"), ("mix", "in")):
        layers = [getattr(net, part) for net in nets]
        name = "weights" if hasattr(layers[0], "weights") else "weight"
        flats = [getattr(layer, name).detach().reshape(-1) for layer in layers]
        positions = [_field_positions(target[0], net, part) for net in nets]
        covered = [sum(p.numel() for p in pos) for pos in positions]
        assert covered == [f.numel() for f in flats]  # every coefficient belongs to one hidden copy
        for b, (p0, p1) in enumerate(zip(*positions)):
            v0, v1 = flats[0][p0], flats[1][p1]
            assert torch.equal(v1[: len(v0)], v0), (part, b)  # same values, bit for bit
            assert len(v1) == len(v0) + (4 if b == 1 else 0)
        assert flats[1].numel() > flats[0].numel()
        assert float(flats[1].abs().max()) <= 1.0
    assert torch.equal(nets[0].bias.bias, nets[1].bias.bias)


def _field_positions(target_layer, block, part):
    """Per input field, the flat positions of its copies' coefficients in ``block.<part>`` (the weight tensor)."""
    from equislt.construct._build import LayerBlocks

    lift, mix = LayerBlocks.of(target_layer).tensors(block.layout)
    tensor = lift if part == "lift" else mix
    return [tensor.field_positions(b) for b in range(block.layout.n_fields)]


def _layer_over_tol(ticket):
    return [layer.rows_over_tol for layer in ticket.certificate.layers]


def test_widen_fixes_a_failing_layer_by_widening_only_some_fields(tmp_path):
    from equislt.construct import LayerPlan
    from equislt.construct._build import LayerBlocks
    from equislt.construct._policy import Tolerance, solve_within_tolerance
    from equislt.construct._solve import field_targets
    from equislt.construct._trace import trace_target

    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(24, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(64, 24)
    tol, n = 1e-3, 14
    report = construct(target, x, tol=tol, n=n, policy="report", progress=False)
    assert _layer_over_tol(report)[0] > 0
    ticket = construct(target, x, tol=tol, n=n, policy="widen", input_radius=_radius(x), progress=False)
    cert = ticket.certificate
    assert cert.rows_over_tol == 0
    first = cert.layers[0]
    assert 0 < first.widened_fields < 24 and first.copies_added >= 4 * first.widened_fields
    plan = ticket.recipe.plans[0]
    assert len(plan.extra) == first.widened_fields and sum(plan.extra.values()) == first.copies_added
    assert first.n == report.certificate.layers[0].n == n  # base width unchanged: only some fields grow
    assert first.copies == 2 * n
    # the unwidened fields keep the values and the subsets of the 'report' run (prefix-stable draws)
    block, block_report = ticket.network.get_submodule("0"), report.network.get_submodule("0")
    assert list(block.layout.widths) == [2 * n + plan.extra.get(b, 0) for b in range(24)]
    masks, masks_report = equislt.nn.masks_of(block), equislt.nn.masks_of(block_report)
    positions = _field_positions(target[0], block, "mix")
    positions_report = _field_positions(target[0], block_report, "mix")
    for b in range(24):
        p, q = positions[b], positions_report[b]
        assert torch.equal(block.mix.weight.reshape(-1)[p[:2 * n]], block_report.mix.weight.reshape(-1)[q])
        if b not in plan.extra:
            assert torch.equal(masks["mix"]["weight"].reshape(-1)[p], masks_report["mix"]["weight"].reshape(-1)[q])
    # in a widened field only the rows over tol were solved again: the others keep their subsets of the first
    # copies, exactly as the 'report' run chose them
    layer = trace_target(target, x, False).layers[0]
    narrow = LayerPlan.from_dict({**plan.as_dict(), "extra": {}})
    unwidened = solve_within_tolerance(layer, narrow, 0, Tolerance(tol, policy="report"), {})
    assert torch.equal(unwidened.masks["mix"]["weight"], masks_report["mix"]["weight"])
    blocks = LayerBlocks.of(target[0])
    _, mix = blocks.tensors(narrow.layout(24))
    for b in plan.extra:
        within = torch.ones(8, dtype=torch.bool)
        for residual in (unwidened.weight_residual_pos, unwidened.weight_residual_neg):
            within &= field_targets([b], mix, blocks.mix_blocks, residual)[0].abs() <= tol
        assert 0 < int(within.sum()) < 8
        widened = masks["mix"]["weight"].reshape(-1)[positions[b]]
        before = masks_report["mix"]["weight"].reshape(-1)[positions_report[b]]
        assert torch.equal(widened[:2 * n, within], before[:, within]) and not widened[2 * n:, within].any()
    # solving the widened block from scratch also keeps every row within tol
    fresh = solve_within_tolerance(layer, LayerPlan.from_dict(plan.as_dict()), 0, Tolerance(tol, policy="report"), {})
    assert fresh.rows_over(tol) == 0
    # certificate, save -> load (bit-identical), compile (same function) with widened fields
    _check_ticket(target, ticket, torch.randn(32, 24), tmp_path)
    again = type(cert).from_dict(cert.as_dict())
    assert again.layers[0].widened_fields == first.widened_fields
    assert "+fields" in cert.summary()


def test_widen_escnn_r2conv_regular_fields(tmp_path):
    """C4 steerable convolutions on regular fields: widening some fields keeps the ticket exactly equivariant,
    within its certificate, regenerable and compilable."""
    target = _c4_target()
    x = torch.rand(48, 1, 9, 9)
    xg = enn.GeometricTensor(x, target.in_type)
    tol, n = 1e-3, 12
    report = construct(target, xg[:24], tol=tol, n=n, policy="report", input_nonnegative=True, progress=False)
    assert report.certificate.layers[1].rows_over_tol > 0
    ticket = construct(target, xg[:24], tol=tol, n=n, policy="widen", input_nonnegative=True,
                       input_radius=_radius(x), progress=False)
    cert = ticket.certificate
    assert cert.rows_over_tol == 0
    assert 0 < cert.layers[1].widened_fields < 3  # three regular input fields, only some widened
    block = ticket.network.get_submodule("2")
    assert len(block.lift.out_type) == block.layout.total and len(set(block.layout.widths)) > 1
    with torch.no_grad():
        f, g = target.eval()(xg[24:]).tensor, ticket.network(xg[24:]).tensor
    assert float((f - g).abs().max()) <= cert.bound
    assert_equivariant(escnn_equivariance_error(ticket.network, xg[:4]), 1e-5)
    ticket.save(tmp_path / "t.pt")
    loaded = Ticket.load(tmp_path / "t.pt", target=target)
    assert [p.extra for p in loaded.recipe.plans] == [p.extra for p in ticket.recipe.plans]
    with torch.no_grad():
        assert torch.equal(loaded.network(xg[24:]).tensor, g)
        c = ticket.compile()(xg[24:]).tensor
    assert float((c - g).abs().max()) <= 1e-5 * float(g.abs().max()) + 1e-6


def test_tickets_of_the_old_format_are_refused_with_the_reason(tmp_path):
    torch.save({"format": "equislt.ticket/1", "seed": 0, "plans": [], "masks": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="older equislt"):
        Ticket.load(tmp_path / "old.pt", target=nn.Sequential(nn.Linear(2, 2)))
