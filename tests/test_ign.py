"""k-order IGN layers: basis counts, independence, equivariance, Maron's 2→2 ops, padding, masks."""
import itertools
import math

import pytest
import torch

import equislt
from equislt.basis import (IGNBlock, bell_number, ign_basis_size, ign_basis_tensor, ign_identity_index,
                           ign_partitions, orbit_labels, set_partitions)
from equislt.models import IGN
from equislt.nn import IGNLinear, MaskedIGNLinear, coefficient_layers, export, mask_model, supermask
from equislt.testing import assert_equivariant, index_permutation_error, permute_indices

ORDERS = [(k, l) for k in range(4) for l in range(4) if k + l <= 6]


pytestmark = pytest.mark.usefixtures("one_thread")


def _all_perms_action(n, m):
    """perm[g, t]: S_n acting on flat index tuples of [n]^m (all n! elements)."""
    tuples = torch.tensor(list(itertools.product(range(n), repeat=m)), dtype=torch.long).view(-1, m)
    weights = n ** torch.arange(m - 1, -1, -1)
    perms = [torch.tensor(g)[tuples] @ weights if m else torch.zeros(1, dtype=torch.long)
             for g in itertools.permutations(range(n))]
    return torch.stack(perms)


def _rank(basis):
    flat = basis.reshape(basis.shape[0], -1)
    return int(torch.linalg.matrix_rank(flat @ flat.T))


def test_bell_numbers_and_partitions():
    assert [bell_number(m) for m in range(9)] == [1, 1, 2, 5, 15, 52, 203, 877, 4140]
    for m in range(7):
        parts = set_partitions(m)
        assert len(parts) == len(set(parts)) == bell_number(m)
        assert all(p[0] == 0 for p in parts if m) and list(parts) == sorted(parts)
    assert [ign_basis_size(k, l) for k, l in [(1, 1), (1, 2), (2, 1), (2, 2), (2, 0), (1, 0), (3, 3)]] == \
        [2, 5, 5, 15, 2, 1, 203]


@pytest.mark.parametrize("n,m", [(1, 2), (2, 2), (2, 3), (2, 4), (2, 5), (3, 3), (3, 4), (4, 4)])
def test_basis_size_is_the_brute_force_orbit_count_and_the_rank(n, m):
    labels = orbit_labels(_all_perms_action(n, m), torch.zeros(math.factorial(n), 1, dtype=torch.long))
    orbits = int(labels.max()) + 1
    for l in range(m + 1):
        k = m - l
        assert ign_basis_size(k, l, n) == orbits
        assert _rank(ign_basis_tensor(k, l, n)) == orbits
        orbit = ign_basis_tensor(k, l, n, kind="orbit")
        assert int((orbit.flatten(1).sum(1) > 0).sum()) == orbits
        assert torch.all(orbit.sum(0) == 1)  # the orbit indicators partition all index tuples
    assert (n, m) != (2, 5) or orbits == 16 < bell_number(5)


@pytest.mark.parametrize("k,l", [(0, 2), (1, 1), (2, 1), (2, 2), (1, 3), (3, 2), (3, 3)])
def test_basis_is_linearly_independent_for_n_at_least_k_plus_l(k, l):
    assert _rank(ign_basis_tensor(k, l, k + l)) == bell_number(k + l)


@pytest.mark.parametrize("k,l", ORDERS)
def test_every_basis_element_is_equivariant(k, l):
    n = 4
    basis = ign_basis_tensor(k, l, n, normalisation="mean").view(-1, *[n] * (l + k))
    for _ in range(3):
        perm = torch.randperm(n)
        moved = permute_indices(basis, perm, l + k, start_dim=1)
        assert (moved - basis).abs().max() <= 1e-12


@pytest.mark.parametrize("k,l", ORDERS)
@pytest.mark.parametrize("normalisation", ["mean", "sum"])
def test_layer_applies_each_basis_element_as_the_dense_reference(k, l, normalisation):
    n = 4 if k + l <= 5 else 3
    p = bell_number(k + l)
    layer = IGNLinear(k, l, 1, p, normalisation=normalisation).double()
    with torch.no_grad():  # output channel o applies basis element o alone
        layer.weight.copy_(torch.eye(p).view(p, 1, p))
        layer.bias.normal_()
    x = torch.randn(2, 1, *[n] * k, dtype=torch.float64)
    mask = torch.ones(2, n, dtype=torch.bool)
    y = layer(x, mask).reshape(2, p, -1)
    basis = ign_basis_tensor(k, l, n, normalisation)
    bias = layer.bias @ ign_basis_tensor(0, l, n)[..., 0]
    ref = torch.einsum("pyx,bx->bpy", basis, x.reshape(2, -1)) + bias
    assert (y - ref).abs().max() <= 1e-10
    weight, dense_bias = layer.dense_weight(n)
    assert torch.allclose(weight[:, :, 0], basis) and torch.allclose(dense_bias, bias)


def _maron_2_to_2(n):
    """The 15 operations of Maron et al. (2019) as dense [15, n², n²] matrices (their order, unnormalised)."""
    ops = []
    for e in torch.eye(n * n, dtype=torch.float64):
        X = e.view(n, n)
        d, r, c, t, s = X.diagonal(), X.sum(1), X.sum(0), X.trace(), X.sum()
        ones = torch.ones(n, dtype=X.dtype)
        out = [torch.diag(d), torch.diag(t * ones), torch.diag(r), torch.diag(c), torch.diag(s * ones),
               c[:, None].expand(n, n), r[:, None].expand(n, n), c[None, :].expand(n, n), r[None, :].expand(n, n),
               X, X.T, d[:, None].expand(n, n), d[None, :].expand(n, n), t * torch.ones(n, n), s * torch.ones(n, n)]
        ops.append(torch.stack(out).reshape(15, n * n))
    return torch.stack(ops, -1)  # [15, out n², in n²]


def test_2_to_2_spans_the_same_space_as_marons_15_operations():
    n = 5
    ours, maron = ign_basis_tensor(2, 2, n), _maron_2_to_2(n)
    assert _rank(ours) == _rank(maron) == _rank(torch.cat([ours, maron])) == 15
    # with mean normalisation each element is one of Maron's ops up to his 'inf' normalisation factor
    flat_ours = ign_basis_tensor(2, 2, n, "mean").flatten(1)
    flat_maron = maron.flatten(1)
    scale = {1: 1, 2: n, 3: n, 4: n, 5: n * n, 6: n, 7: n, 8: n, 9: n, 10: 1, 11: 1, 12: 1, 13: 1, 14: n, 15: n * n}
    for i, row in enumerate(flat_maron, 1):
        assert min((row / scale[i] - o).abs().max() for o in flat_ours) <= 1e-12


def test_identity_element_and_blocks():
    for k in range(4):
        layer = IGNLinear(k, k, 3, 3, bias=False)
        with torch.no_grad():
            layer.weight.zero_()
            layer.weight[:, :, ign_identity_index(k)] = torch.eye(3)
        x = torch.randn(2, 3, *[4] * k)
        assert torch.equal(layer(x, torch.ones(2, 4, dtype=torch.bool)), x)
    layer = IGNLinear(2, 1, 3, 5)
    weight_block, bias_block = equislt.blocks(layer)
    assert isinstance(weight_block, IGNBlock) and weight_block.shape == (5, 3, 5) and bias_block.shape == (5, 1, 1)
    assert weight_block.basis.tolist() == [list(p) for p in ign_partitions(2, 1)]
    assert weight_block.dense(4).shape == (5, 4, 16) and bias_block.is_bias
    assert torch.equal(weight_block.take(layer.weight), layer.weight)
    assert IGNLinear(2, 2, 1, 1).coefficient_blocks()[0].identity_index == ign_identity_index(2) == 6  # (0, 1, 0, 1)
    assert "order 2->1" in repr(layer) and "Bell(3)" in repr(layer)


@pytest.mark.parametrize("k,l", [(2, 2), (2, 0), (1, 2), (3, 1), (0, 2)])
def test_padded_batch_matches_each_graph_alone(k, l):
    layer = IGNLinear(k, l, 2, 3).double()
    with torch.no_grad():
        layer.bias.normal_()
    sizes, n = [3, 5, 4], 5
    graphs = [torch.randn(1, 2, *[m] * k, dtype=torch.float64) for m in sizes]
    x = torch.zeros(3, 2, *[n] * k, dtype=torch.float64)
    mask = torch.zeros(3, n, dtype=torch.bool)
    for b, (g, m) in enumerate(zip(graphs, sizes)):
        x[(b, slice(None)) + (slice(0, m),) * k] = g[0]
        mask[b, :m] = True
        if k:  # garbage in the padding must be ignored
            x[(b, slice(None)) + (slice(m, None),) * k] = 7.0
    y = layer(x, mask).detach()
    for b, (g, m) in enumerate(zip(graphs, sizes)):
        alone = layer(g, torch.ones(1, m, dtype=torch.bool))[0].detach()
        assert torch.allclose(y[(b, slice(None)) + (slice(0, m),) * l], alone, atol=1e-12)
        if l:
            assert float(y[b].abs().sum()) == pytest.approx(float(alone.abs().sum()))  # zeros on padded entries


@pytest.mark.parametrize("k,l", [(2, 2), (3, 3), (1, 2), (2, 0), (3, 1)])
def test_layer_is_equivariant_under_random_permutations(k, l):
    layer = IGNLinear(k, l, 3, 4)
    x = torch.randn(2, 3, *[6] * k)
    assert_equivariant(index_permutation_error(layer, x, k, l), 1e-5)
    mask = torch.rand(2, 6) < 0.7  # padding anywhere: the mask is permuted with the nodes
    mask[:, 0] = True
    assert_equivariant(index_permutation_error(layer, x, k, l, node_mask=mask), 1e-5)


def test_masking_dense_entries_breaks_equivariance_but_coefficient_masks_do_not():
    layer = IGNLinear(2, 2, 1, 1, bias=False).double()
    n = 5
    weight, _ = layer.dense_weight(n)
    broken = weight[0, :, 0].clone()
    broken[3, 7] = 0.0  # an entry of the expanded matrix, not a coefficient
    x = torch.randn(4, 1, n, n, dtype=torch.float64)

    def dense_layer(inp):
        return (inp.reshape(inp.shape[0], -1) @ broken.T).view(-1, 1, n, n)

    dense_layer.train = lambda mode=True: None
    dense_layer.training = False
    assert index_permutation_error(dense_layer, x, 2, 2, modes=("eval",)).max() > 1e-3
    masked = mask_model(layer)
    masked.mask.set("weight", torch.rand(1, 1, 15) < 0.5)
    assert_equivariant(index_permutation_error(masked, x, 2, 2), 1e-10)


def _ign_input(batch=3, n=6):
    adj = (torch.rand(batch, n, n) < 0.4).float()
    adj = torch.triu(adj, 1)
    adj = adj + adj.transpose(1, 2)
    x = torch.stack([adj, torch.diag_embed(torch.randn(batch, n))], 1)
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[0, 4:] = False
    mask[1, 5:] = False
    return x * (mask[:, None, :, None] & mask[:, None, None, :]), mask


@pytest.mark.parametrize("order", [2, 3])
def test_supermask_ign_model_stays_invariant_in_train_and_eval(order):
    model = IGN(2, 4, 3, num_layers=2, order=order)
    x, mask = _ign_input()
    before = model(x, mask)
    model = supermask(model, sparsity=0.5, seed=0)
    layers = dict(coefficient_layers(model))
    assert sum(isinstance(m, MaskedIGNLinear) for m in layers.values()) == 3
    assert all(n.endswith("_scores") for n, p in model.named_parameters() if p.requires_grad)
    out = model(x, mask)
    assert not torch.allclose(out, before)
    report = index_permutation_error(model, x, 2, 0, node_mask=mask)
    assert len(report.errors) == 6
    assert_equivariant(report, 1e-5)
    loss = out.square().sum()
    loss.backward()
    assert model.layers[0].mask.scores("weight").grad.abs().sum() > 0
    plain = export(model)
    assert not any(isinstance(m, MaskedIGNLinear) for m in plain.modules())
    model.eval()
    assert torch.allclose(plain(x, mask), model(x, mask), atol=1e-6)


def test_bad_input_is_rejected_with_the_layer_and_reason():
    with pytest.raises(ValueError, match="k_in must be an int >= 0"):
        IGNLinear(-1, 2, 1, 1)
    with pytest.raises(ValueError, match="normalisation"):
        IGNLinear(2, 2, 1, 1, normalisation="inf")
    layer = IGNLinear(2, 2, 3, 1)
    with pytest.raises(ValueError, match=r"IGNLinear\(2->2\): expected input \[B, 3, n, n\]"):
        layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="same size n"):
        layer(torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="node_mask must be"):
        layer(torch.randn(2, 3, 4, 4), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="order-0 input has no node axis"):
        IGNLinear(0, 2, 3, 1)(torch.randn(2, 3))
