"""PyG message passing: graph-operator blocks, masked PyG Linear, supermask swap-in on GCN/GIN/GraphSAGE."""
import pytest
import torch
from torch import nn
from torch_geometric.nn import GCNConv, GINConv, GraphConv, SAGEConv
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.models import GCN, GIN, GraphSAGE
from torch_geometric.utils import erdos_renyi_graph

import equislt
from equislt.basis import coefficient_names, init_std
from equislt.models import gin_classifier
from equislt.nn import MaskedLayer, coefficient_layers, export, mask_model, masks_of, score_parameters, supermask
from equislt.nn import MaskedPyGLinear
from equislt.testing import assert_equivariant, node_permutation_error


pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(n=12, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    edge_index = erdos_renyi_graph(n, 0.3)
    return torch.randn(n, c, generator=g), edge_index


def _from_blocks(conv, x, edge_index):
    """Σ_blocks S_t X W_tᵀ (+ 1 bᵀ) rebuilt from the documented graph operators."""
    n = x.shape[0]
    out = 0
    for block in equislt.blocks(conv):
        theta = block.take(conv.get_parameter(block.tensor))
        op = block.operator_matrix(edge_index, n)
        if block.is_bias:
            out = out + op @ theta[:, 0, 0][None, :]
        else:
            out = out + op @ x @ theta[:, :, 0].T
    return out


@pytest.mark.parametrize("conv", [
    GCNConv(4, 3), GCNConv(4, 3, normalize=False, add_self_loops=False), GraphConv(4, 3), GraphConv(4, 3, aggr="mean"),
    SAGEConv(4, 3), SAGEConv(4, 3, aggr="add"), GINConv(nn.Linear(4, 3), eps=0.3, train_eps=True),
    GINConv(Linear(4, 3)),
], ids=lambda c: f"{type(c).__name__}-{getattr(c, 'aggr', '')}")
def test_graph_operator_blocks_rebuild_the_conv(conv):
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_()
    x, edge_index = _graph()
    assert torch.allclose(_from_blocks(conv, x, edge_index), conv(x, edge_index), atol=1e-5)
    names = coefficient_names(conv)
    assert set(init_std(conv)) == set(names)


def test_block_operators_and_paths_are_documented_names():
    ops = {b.tensor: b.operator for b in equislt.blocks(GraphConv(4, 3))}
    assert ops == {"lin_rel.weight": "adjacency", "lin_root.weight": "identity", "lin_rel.bias": "constant"}
    ops = {b.tensor: b.operator for b in equislt.blocks(GIN(4, 8, 1).convs[0])}
    assert ops == {"nn.lins.0.weight": "gin", "nn.lins.1.weight": "identity", "nn.lins.0.bias": "constant",
                   "nn.lins.1.bias": "constant"}
    ops = {b.tensor: b.operator for b in equislt.blocks(SAGEConv(4, 3, project=True))}
    assert ops["lin.weight"] == "identity" and ops["lin_l.weight"] == "mean"


def test_unsupported_graph_operators_and_lazy_linear_raise_clear_errors():
    with pytest.raises(ValueError, match="GraphConv: aggr='max' is not a linear graph operator"):
        equislt.blocks(GraphConv(4, 3, aggr="max"))
    with pytest.raises(ValueError, match="lazy and not initialised"):
        mask_model(nn.Sequential(Linear(-1, 3)))
    with pytest.raises(ValueError, match="lazy and not initialised"):
        MaskedPyGLinear.wrap(Linear(-1, 3), nn.Identity())
    lazy = GCN(-1, 8, 2)
    x, edge_index = _graph()
    lazy(x, edge_index)  # initialised by one forward pass: then it can be masked
    assert len(list(coefficient_layers(mask_model(lazy)))) == 2


@pytest.mark.parametrize("make", [lambda: GIN(4, 16, 2, out_channels=3), lambda: GCN(4, 16, 2, out_channels=3),
                                  lambda: GraphSAGE(4, 16, 2, out_channels=3)], ids=["GIN", "GCN", "GraphSAGE"])
def test_supermask_swap_in_on_pyg_models_keeps_permutation_equivariance(make):
    x, edge_index = _graph()
    model = make()
    linears = [p for p, m in model.named_modules() if isinstance(m, Linear)]
    dense = supermask(make(), sparsity=0.0, seed=2)
    model = supermask(model, sparsity=0.6, seed=2)
    layers = dict(coefficient_layers(model))
    assert sorted(layers) == sorted(linears) and all(isinstance(m, MaskedPyGLinear) for m in layers.values())
    assert {type(m).__name__ for m in model.modules()} & {"GINConv", "GCNConv", "SAGEConv"}  # PyG's own convs
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("_scores") for n in trainable)
    assert len(score_parameters(model)) == len(trainable)
    kept = [float(m.float().mean()) for named in masks_of(model).values() for m in named.values()]
    assert all(abs(k - 0.4) < 0.1 for k in kept)
    assert not torch.allclose(model(x, edge_index), dense(x, edge_index))  # the masks act
    assert_equivariant(node_permutation_error(model, x, edge_index), 1e-5)
    model(x, edge_index).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in score_parameters(model)[:1])
    plain = export(model)
    assert not any(isinstance(m, MaskedLayer) for m in plain.modules())
    model.eval()
    assert torch.allclose(plain(x, edge_index), model(x, edge_index), atol=1e-6)


def test_masked_gin_classifier_is_permutation_invariant_in_train_and_eval():
    x, edge_index = _graph(n=10, c=1)
    model = mask_model(gin_classifier(1, 8, 3, num_layers=2))
    for _, layer in coefficient_layers(model):
        for name in layer.mask.names:
            layer.mask.set(name, torch.rand(layer.mask.mask(name).shape) < 0.5)
    report = node_permutation_error(model, x, edge_index, node_level=False)
    assert len(report.errors) == 6
    assert_equivariant(report, 1e-5)
