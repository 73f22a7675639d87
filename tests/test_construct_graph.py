"""The construction on graph networks: k-IGN targets (IGNLinear + functional ReLU + invariant readout)."""

import pytest
import torch
from torch import nn

import equislt
from equislt import Ticket
from equislt.construct import LiftMix, construct
from equislt.construct.families import IGNPooledBias
from equislt.testing import assert_equivariant, index_permutation_error

from equislt.data import GraphAtlas, dense_graph_batch  # noqa: E402
from equislt.models import IGN  # noqa: E402
from equislt.nn import IGNLinear  # noqa: E402


@pytest.fixture(scope="module")
def atlas():
    """Atlas graphs of 3..7 nodes padded to n = 7 with a node mask; a fixed train/test split."""
    from torch_geometric.loader import DataLoader

    ds = GraphAtlas("triangles", min_nodes=3, max_nodes=7)
    batch = next(iter(DataLoader(ds, batch_size=len(ds), shuffle=False)))
    x, mask = dense_graph_batch(batch, max_nodes=7)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x, mask, perm[:64], perm[64:400]


def _target(in_channels, seed=0):
    torch.manual_seed(seed)
    target = IGN(in_channels, 4, 3, num_layers=2).eval()  # 2->2, 2->2, readout 2->0, Linear head
    with torch.no_grad():
        for module in target.modules():
            if isinstance(module, IGNLinear):
                module.bias.uniform_(-0.3, 0.3)  # trained IGNs have biases on every pattern
    return target


@pytest.fixture(scope="module")
def constructed(atlas):
    x, mask, train, _ = atlas
    target = _target(x.shape[1])
    radius = float(x.reshape(len(x), -1).norm(dim=1).max())  # all graphs: held-out ones are within R
    ticket = construct(target, (x[train], mask[train]), tol=1e-4, seed=1, input_radius=radius, progress=False)
    return target, ticket


def test_ign_ticket_within_bound_and_agrees(atlas, constructed):
    x, mask, _, test = atlas
    target, ticket = constructed
    cert = ticket.certificate
    assert cert.bound is not None, cert.bound_note
    assert cert.rows_over_tol == 0
    assert cert.kept_coefficients < cert.random_coefficients
    assert [c.path for c in cert.layers] == ["layers.0", "layers.1", "readout", "head"]
    # layer 0 reads the adjacency without the flag (both halves); later layers read torch.relu outputs
    assert [c.input_nonnegative for c in cert.layers] == [False, True, True, True]
    assert cert.layers[0].n_problems == 2 * 4 * 2 * 15 + 4 * 2  # 2 signs · C_out · C_in · Bell(4) + C_out · Bell(2)
    assert cert.layers[2].n_problems == 4 * 4 * 2 + 4  # readout 2->0: Bell(2) weights, Bell(0) bias
    radius = float(x[test].reshape(len(test), -1).norm(dim=1).max())
    assert radius <= cert.input_radius + 1e-6
    with torch.no_grad():
        f = target(x[test], mask[test])
        g = ticket(x[test], mask[test])
    error = float((f - g).abs().max())
    assert error <= cert.bound  # held-out graphs within the certified bound
    assert error < 1e-3
    agreement = float((f.argmax(1) == g.argmax(1)).float().mean())
    assert agreement >= 0.99


def test_ign_ticket_blocks_are_ign_layers(constructed):
    _, ticket = constructed
    block = ticket.network.layers[0]
    assert isinstance(block, LiftMix)
    assert isinstance(block.lift, equislt.nn.MaskedIGNLinear) and block.lift.k_in == block.lift.k_out == 2
    assert isinstance(block.mix, equislt.nn.MaskedIGNLinear) and block.mix.bias is None
    assert isinstance(block.bias, IGNPooledBias) and block.bias.n_patterns == 2
    # the lift keeps only identity coefficients: one per hidden channel
    kept = block.lift.coefficient("weight").detach() != 0
    assert int(kept.sum()) <= block.lift.out_channels
    assert bool((kept.any(dim=2).sum(dim=1) <= 1).all())


def test_ign_ticket_is_permutation_invariant(atlas, constructed, mode_atol=1e-5):
    x, mask, _, test = atlas
    _, ticket = constructed
    xs, ms = x[test[:32]], mask[test[:32]]
    gen = torch.Generator().manual_seed(3)
    report = index_permutation_error(ticket.network, xs, 2, 0, node_mask=ms, n_perms=4, generator=gen)
    assert_equivariant(report, mode_atol)  # train and eval mode
    # one hidden block alone is order-2 equivariant (pattern bias under the node mask included)
    block = ticket.network.layers[1]
    h = torch.relu(ticket.network.layers[0](xs, ms))
    report = index_permutation_error(block, h, 2, 2, node_mask=ms, n_perms=4, generator=gen)
    assert_equivariant(report, mode_atol)


def test_ign_ticket_save_load_compile(atlas, constructed, tmp_path):
    x, mask, _, test = atlas
    target, ticket = constructed
    xs, ms = x[test], mask[test]
    path = tmp_path / "ign_ticket.pt"
    ticket.save(path)
    loaded = Ticket.load(path, target=_target(x.shape[1], seed=5))  # weights of the architecture are not used
    with torch.no_grad():
        g = ticket(xs, ms)
        assert torch.equal(loaded(xs, ms), g)
        compiled = ticket.compile()
        c = compiled(xs, ms)
    assert float((c - g).abs().max()) <= 1e-5 * float(g.abs().max()) + 1e-6
    assert not any(isinstance(m, equislt.nn.MaskedLayer) for m in compiled.modules())
    report = index_permutation_error(compiled, xs[:16], 2, 0, node_mask=ms[:16], n_perms=2,
                                     generator=torch.Generator().manual_seed(1))
    assert_equivariant(report, 1e-5)


def test_ign_single_layer_orders(atlas):
    """1 -> 2 and 2 -> 1 layers (different k and l), sum normalisation, no padding (plain tensors)."""
    torch.manual_seed(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = IGNLinear(1, 2, 2, 3, normalisation="sum")
            self.b = IGNLinear(2, 1, 3, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    net = Net().eval()
    with torch.no_grad():
        net.a.bias.uniform_(-0.5, 0.5)
        net.b.bias.uniform_(-0.5, 0.5)
    x = torch.randn(48, 2, 5)
    ticket = construct(net, x[:32], tol=1e-4, seed=0, progress=False)
    cert = ticket.certificate
    assert cert.bound is not None and cert.rows_over_tol == 0
    with torch.no_grad():
        error = float((net(x[32:]) - ticket(x[32:])).abs().max())
    assert error <= cert.bound and error < 1e-3
    report = index_permutation_error(ticket.network, x[32:], 1, 1, n_perms=3,
                                     generator=torch.Generator().manual_seed(0))
    assert_equivariant(report, 1e-5)


def test_ign_bound_unavailable_is_reported(atlas, monkeypatch):
    from equislt.construct.families import _ign as ign_family

    x, mask, train, _ = atlas
    monkeypatch.setattr(ign_family, "DENSE_LIMIT", 10)
    target = _target(x.shape[1])
    ticket = construct(target, (x[train[:16]], mask[train[:16]]), tol=1e-3, seed=0, progress=False)
    cert = ticket.certificate
    assert cert.bound is None
    assert "layers.0" in cert.bound_note and "n=7" in cert.bound_note
    assert "unavailable" in cert.summary()
    with pytest.raises(ValueError, match="certified bound None"):
        construct(target, (x[train[:16]], mask[train[:16]]), tol=1e-3, eps=1.0, seed=0, progress=False)


def test_ign_unsupported_glue_is_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = IGNLinear(2, 2, 1, 2)
            self.act = nn.Tanh()

        def forward(self, x, node_mask=None):
            return self.act(self.a(x, node_mask))

    with pytest.raises(ValueError, match="act .*Tanh"):
        construct(Net(), (torch.randn(4, 1, 3, 3), torch.ones(4, 3, dtype=torch.bool)), progress=False)


def test_ign_batch_norm_is_refused():
    target = nn.Sequential(IGNLinear(2, 2, 1, 2), nn.BatchNorm2d(2)).eval()
    with pytest.raises(ValueError, match="batch norm 1 after 0 cannot be folded"):
        construct(target, torch.randn(4, 1, 3, 3), progress=False)


# -- PyG message-passing targets: PyG Linear layers are the coefficient layers, aggregations are glue ---------


def test_gin_ticket_on_karate_club(tmp_path):
    from torch_geometric.nn.models import GIN

    from equislt.data import karate_club
    from equislt.testing import node_permutation_error

    torch.manual_seed(0)
    data = karate_club()
    x, edge_index = data.x, data.edge_index
    target = GIN(x.shape[1], 8, 2, out_channels=4).eval()
    ticket = construct(target, (x, edge_index), tol=1e-4, seed=0, progress=False)
    cert = ticket.certificate
    assert [c.path for c in cert.layers] == ["convs.0.nn.lins.0", "convs.0.nn.lins.1", "convs.1.nn.lins.0",
                                             "convs.1.nn.lins.1"]
    # directly after the MLP's ReLU one sign half; a GIN update (1 + ε)·x + Σ x_j of a ReLU output is a sum of
    # non-negative terms (one half too), of the raw input features only under input_nonnegative
    assert [c.input_nonnegative for c in cert.layers] == [False, True, True, True]
    assert cert.rows_over_tol == 0
    assert cert.bound is None and "aggr_module" in cert.bound_note  # no bound through the aggregation
    with torch.no_grad():
        f, g = target(x, edge_index), ticket(x, edge_index)
    assert float((f - g).abs().max()) < 1e-3
    assert float((f.argmax(1) == g.argmax(1)).float().mean()) >= 0.99
    report = node_permutation_error(ticket.network, x, edge_index, generator=torch.Generator().manual_seed(0))
    assert_equivariant(report, 1e-5)
    path = tmp_path / "gin.pt"
    ticket.save(path)
    loaded = Ticket.load(path, target=GIN(x.shape[1], 8, 2, out_channels=4))
    with torch.no_grad():
        assert torch.equal(loaded(x, edge_index), g)
        c = ticket.compile()(x, edge_index)
    assert float((c - g).abs().max()) <= 1e-5 * float(g.abs().max()) + 1e-6


def test_gin_updates_of_non_negative_features_keep_one_sign_half():
    from torch_geometric.nn.models import GIN

    from equislt.data import karate_club

    data = karate_club()
    x, edge_index = data.x, data.edge_index
    torch.manual_seed(0)
    target = GIN(x.shape[1], 8, 2, out_channels=4).eval()
    both = construct(target, (x, edge_index), tol=1e-4, seed=0, progress=False).certificate
    one = construct(target, (x, edge_index), tol=1e-4, seed=0, input_nonnegative=True, progress=False)
    assert [c.input_nonnegative for c in one.certificate.layers] == [True, True, True, True]
    assert one.certificate.layers[0].kept_coefficients < both.layers[0].kept_coefficients
    with torch.no_grad():
        assert float((target(x, edge_index) - one(x, edge_index)).abs().max()) < 1e-3
    # 1 + ε < 0 flips the root term's sign: both halves again, also behind a ReLU
    target.convs[1].eps.fill_(-2.0)
    cert = construct(target, (x, edge_index), tol=1e-4, seed=0, input_nonnegative=True, progress=False).certificate
    assert [c.input_nonnegative for c in cert.layers] == [True, True, False, True]


def test_gcn_bias_outside_linear_is_refused():
    from torch_geometric.nn.models import GCN

    x = torch.randn(6, 3)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    with pytest.raises(ValueError, match=r"convs.0 \(GCNConv\) has parameters outside its sub-layers \(bias\)"):
        construct(GCN(3, 4, 2).eval(), (x, edge_index), progress=False)
