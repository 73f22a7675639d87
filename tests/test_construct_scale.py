"""The construction at scale: the random network is never built, the ticket runs in its compact form (equal to
the literal pruned network), tolerances are relative, and escnn's groups on R³ work."""
import itertools

import pytest
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn

import equislt
from equislt import Ticket
from equislt.construct import construct
from equislt.testing import assert_equivariant, equivariance_error


def _warm(model, *inputs):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*inputs)
    return model.eval()


def _mlp():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    return _warm(target, torch.randn(32, 10)), torch.randn(96, 10)


def _cnn():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(6, 3))
    return _warm(target, torch.rand(8, 1, 8, 8)), torch.rand(64, 1, 8, 8)


def _steerable(group):
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn(group, channels=(2, 3), kernel_size=3, input_size=9, num_classes=4)
    return _warm(target, torch.rand(8, 1, 9, 9)), torch.rand(48, 1, 9, 9)


def _ign():
    from equislt.models import IGN

    torch.manual_seed(0)
    x = torch.randn(48, 3, 6, 6)
    mask = torch.rand(48, 6) < 0.8
    target = IGN(3, 4, 3, num_layers=2).eval()
    with torch.no_grad():
        for module in target.modules():
            if isinstance(module, equislt.nn.IGNLinear):
                module.bias.uniform_(-0.3, 0.3)
    return target, (x, mask)


def _gin():
    from equislt.data import karate_club
    from equislt.models import gin_classifier

    torch.manual_seed(0)
    data = karate_club()
    target = gin_classifier(data.num_features, 8, 4, num_layers=2).eval()
    return target, (data.x, data.edge_index)


FAMILIES = {"mlp": _mlp, "cnn": _cnn, "c4": lambda: _steerable("c4"), "d4": lambda: _steerable("d4"),
            "ign": _ign, "gin": _gin}


def _call(model, inputs):
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return out.tensor if hasattr(out, "tensor") else out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_compact_form_is_the_literal_pruned_network(family, tmp_path):
    """The ticket runs target-sized layers; the literal pruned random network (built on request) computes the
    same function to float rounding, and a reloaded ticket reproduces both bit for bit."""
    target, inputs = FAMILIES[family]()
    ticket = construct(target, inputs, tol=1e-3, seed=2, input_nonnegative=family in ("cnn", "c4", "d4"),
                       progress=False)
    assert ticket.certificate.measured_on == "compact"
    with torch.no_grad():
        compact, literal = _call(ticket, inputs), _call(ticket.network, inputs)
        reference = _call(target, inputs)
    assert float((compact - literal).abs().max()) <= 1e-5 * float(literal.abs().max())
    assert float((compact - reference).abs().max()) == pytest.approx(ticket.certificate.measured_max_error)
    # the compact form is the target's size: no layer wider than the target's
    assert sum(p.numel() for p in ticket.compiled.parameters()) <= 3 * sum(p.numel() for p in target.parameters())
    ticket.save(tmp_path / "t.pt")
    again = Ticket.load(tmp_path / "t.pt", target=target)
    with torch.no_grad():
        assert torch.equal(_call(again, inputs), compact)
        assert torch.equal(_call(again.network, inputs), literal)


def test_verify_literal_measures_the_literal_network():
    target, x = _mlp()
    compact = construct(target, x, tol=1e-3, progress=False)
    literal = construct(target, x, tol=1e-3, verify="literal", progress=False)
    assert literal.certificate.measured_on == "literal"
    assert torch.equal(compact.masks()["0.mix"]["weight"], literal.masks()["0.mix"]["weight"])
    assert literal.certificate.measured_max_error == pytest.approx(compact.certificate.measured_max_error, rel=1e-3)
    with pytest.raises(ValueError, match="verify"):
        construct(target, x, verify="both", progress=False)


def test_the_random_network_is_never_built_during_construct(monkeypatch):
    """Only target-sized escnn layers are built (the compact form, a lift with one copy per field): nothing over
    the 2N-wide hidden type."""
    import equislt.construct._build as build

    target, x = _steerable("c4")
    widest = max(m.in_type.size for m in target.modules() if isinstance(m, enn.R2Conv))
    sizes = []
    original = enn.R2Conv.__init__

    def recording(self, in_type, *args, **kwargs):
        sizes.append(in_type.size)
        original(self, in_type, *args, **kwargs)

    monkeypatch.setattr(enn.R2Conv, "__init__", recording)
    monkeypatch.setattr(build, "random_block", lambda *a, **k: pytest.fail("the random network was built"))
    ticket = construct(target, x, tol=1e-3, input_nonnegative=True, progress=False)
    assert sizes and max(sizes) <= widest
    assert ticket.certificate.prediction_agreement == 1.0


def test_chunks_of_input_fields_give_the_same_ticket(monkeypatch):
    import equislt.construct._solve as solve

    target, x = _steerable("d4")
    whole = construct(target, x, tol=1e-3, n=8, input_nonnegative=True, progress=False)
    monkeypatch.setattr(solve, "CHUNK_BYTES", 1)  # one input field per chunk
    chunked = construct(target, x, tol=1e-3, n=8, input_nonnegative=True, progress=False)
    assert [p.as_dict() for p in whole.recipe.plans] == [p.as_dict() for p in chunked.recipe.plans]
    for path, named in whole.masks().items():
        for name, mask in named.items():
            assert torch.equal(mask, chunked.masks()[path][name]), (path, name)


def test_the_virtual_layout_is_the_layout_of_the_built_block():
    """Where the construction writes each random coefficient and mask bit, without building the block, is where
    the built block holds it (escnn with mixed field types, widened fields)."""
    from equislt.construct import LayerPlan
    from equislt.construct._build import LayerBlocks, random_block

    g = gspaces.rot2dOnR2(4)
    t_in = enn.FieldType(g, [g.regular_repr, g.trivial_repr, g.regular_repr])
    t_out = enn.FieldType(g, [g.regular_repr, g.trivial_repr])
    layer = enn.R2Conv(t_in, t_out, 3)
    plan = LayerPlan("0", copies=4, bias_pool=2, gain=1.0, extra={1: 4})
    block = random_block(layer, plan, seed=3)
    lift, mix = LayerBlocks.of(layer).tensors(block.layout)
    for virtual, built in ((lift, block.lift), (mix, block.mix)):
        real = [b for b in equislt.blocks(built) if not b.is_bias]
        assert [(s.start, s.n_out, s.n_in, s.n_basis, s.out_repr, s.in_repr) for s in virtual.blocks] == [
            (int(b.index.reshape(-1)[0]), *b.shape, b.out_repr, b.in_repr) for b in real]
        assert tuple(getattr(built, virtual.name).shape) == virtual.shape


# -- relative tolerance -------------------------------------------------------------------------------------

def test_the_tolerance_is_relative_to_each_layers_scale():
    """The same MLP scaled ×1e-3, ×1, ×1e3 (every weight ×s: the network is s² times the original) gives the same
    relative error and agreement; an absolute tolerance matched the ×1e-3 network by empty subsets (100% error).
    Within one layer the bias sets the scale too: a layer is normalised by its largest weight or bias."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 5, bias=False))
    x = torch.randn(128, 12)
    results = []
    for scale in (1e-3, 1.0, 1e3):
        target = nn.Sequential(nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 5, bias=False))
        with torch.no_grad():
            for mine, reference in zip(target.parameters(), base.parameters()):
                mine.copy_(reference * scale)
        cert = construct(target, x, tol=1e-2, seed=1, progress=False).certificate
        results.append((cert.measured_relative_error, cert.prediction_agreement, cert.kept_coefficients))
    relative, agreement, kept = zip(*results)
    assert max(relative) < 0.05 and min(agreement) >= 0.95
    assert max(relative) / min(relative) < 1.01 and len(set(agreement)) == 1 and len(set(kept)) == 1


def test_a_layer_of_zeros_keeps_nothing():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        target[2].weight.zero_()
        target[2].bias.zero_()
    x = torch.randn(32, 6)
    ticket = construct(target, x, tol=1e-3, progress=False)
    zero = ticket.certificate.layers[1]
    assert zero.gain == 0.0 and zero.kept_coefficients == 0 and zero.n_problems == 0
    with torch.no_grad():
        assert torch.equal(ticket(x), torch.zeros(32, 3)) and torch.equal(ticket.network(x), torch.zeros(32, 3))


# -- escnn on R³ ----------------------------------------------------------------------------------------------

class OctaCNN(nn.Module):
    """Octahedral (24 rotations of the cube) CNN on 7×7×7 volumes: regular fields, InnerBatchNorm, pointwise max
    pooling, group pooling, adaptive pooling and a linear head; invariant to the 24 rotations of the grid."""

    def __init__(self):
        super().__init__()
        g = gspaces.octaOnR3()
        self.in_type = enn.FieldType(g, [g.trivial_repr])
        t1, t2 = enn.FieldType(g, 2 * [g.regular_repr]), enn.FieldType(g, 2 * [g.regular_repr])
        pooled = enn.GroupPooling(t2)
        self.features = enn.SequentialModule(
            enn.R3Conv(self.in_type, t1, 3, padding=1), enn.InnerBatchNorm(t1), enn.ReLU(t1),
            enn.PointwiseMaxPool3D(t1, 3, 2, 1), enn.R3Conv(t1, t2, 3, padding=1), enn.InnerBatchNorm(t2),
            enn.ReLU(t2), pooled, enn.PointwiseAdaptiveAvgPool3D(pooled.out_type, 1))
        self.head = nn.Linear(pooled.out_type.size, 5)

    def forward(self, x):
        return self.head(self.features(enn.GeometricTensor(x, self.in_type)).tensor.flatten(1))


def _cube_rotations():
    """The 24 rotations of the voxel grid (as functions on ``[B, C, D, H, W]``), generated by quarter turns."""
    turns = [lambda v, d=d: torch.rot90(v, 1, d) for d in ((2, 3), (2, 4), (3, 4))]
    probe = torch.arange(27.0).view(1, 1, 3, 3, 3)
    found = {tuple(probe.reshape(-1).tolist()): (lambda v: v)}
    frontier = list(found.values())
    while frontier:
        new = []
        for rotation, turn in itertools.product(frontier, turns):
            composed = (lambda v, r=rotation, t=turn: t(r(v)))
            key = tuple(composed(probe).reshape(-1).tolist())
            if key not in found:
                found[key] = composed
                new.append(composed)
        frontier = new
    return list(found.values())


def test_an_octahedral_cnn_on_r3_is_constructed_exported_and_invariant():
    rotations = _cube_rotations()
    assert len(rotations) == 24
    torch.manual_seed(0)
    target = _warm(OctaCNN(), torch.rand(8, 1, 7, 7, 7))
    x = torch.rand(200, 1, 7, 7, 7)
    ticket = construct(target, x[:100], tol=1e-3, input_nonnegative=True, progress=False)
    with torch.no_grad():
        f, g = target(x), ticket(x)
    assert float((f.argmax(1) == g.argmax(1)).float().mean()) >= 0.995
    actions = [(f"r{i}", rotation, (lambda y: y)) for i, rotation in enumerate(rotations[1:])]
    assert_equivariant(equivariance_error(ticket.compiled, x[:4], actions), 1e-5)
    assert_equivariant(equivariance_error(target, x[:4], actions), 1e-5)
    exported = equislt.nn.export(target.features)  # escnn's export of R3Conv, 3D pools, group pooling
    with torch.no_grad():
        assert torch.allclose(exported(x[:4]), target.features(enn.GeometricTensor(x[:4], target.in_type)).tensor,
                              atol=1e-5)
    folded = equislt.nn.fold(ticket.network)  # the literal network, copied without deepcopy
    with torch.no_grad():
        assert float((folded(x[:8]) - g[:8]).abs().max()) <= 1e-5 * float(g.abs().max())
