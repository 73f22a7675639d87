"""Every family of user model through the whole engine: ``equislt search --model package.module:factory`` on data
read from disk, an interrupted run that resumes to the same masks, a ticket that reloads without ``target=``, an
export to plain torch with identical outputs. (escnn C8 / D4 models with mixed fields, torch and SequentialModule
roots: ``test_your_model.py``.)"""
import json

import numpy as np
import pytest
import torch

from equislt import Ticket
from equislt.cli import main
from equislt.search import SearchConfig, run_search

FAMILIES = '''
import torch
from torch import nn


class Volumes(nn.Module):
    """An escnn body over volumes [B, 1, 5, 5, 5] under a torch root, invariant logits."""

    def __init__(self, body, in_type, features, num_classes):
        super().__init__()
        self.body, self.in_type, self.head = body, in_type, nn.Linear(features, num_classes)

    def forward(self, x):
        from escnn import nn as enn

        return self.head(self.body(enn.GeometricTensor(x, self.in_type)).tensor.mean(dim=(2, 3, 4)))


def so3_gated(num_classes=2, in_channels=1):
    from escnn import gspaces, nn as enn

    space = gspaces.rot3dOnR3()
    inputs = enn.FieldType(space, [space.trivial_repr] * in_channels)
    scalars, gates = (enn.FieldType(space, [space.trivial_repr] * 2) for _ in range(2))
    vectors = enn.FieldType(space, [space.irrep(1)] * 2)
    hidden = scalars + gates + vectors
    body = enn.SequentialModule(
        enn.R3Conv(inputs, hidden, 3, padding=1),
        enn.MultipleModule(hidden, ["relu"] * 2 + ["gated"] * 4,
                           [(enn.ReLU(scalars), "relu"), (enn.GatedNonLinearity1(gates + vectors), "gated")]),
        enn.R3Conv(scalars + vectors, enn.FieldType(space, [space.trivial_repr] * 4), 3, padding=1))
    return Volumes(body, inputs, 4, num_classes)


def octahedral(num_classes=2, in_channels=1):
    from escnn import gspaces, nn as enn

    space = gspaces.octaOnR3()
    inputs = enn.FieldType(space, [space.trivial_repr] * in_channels)
    hidden = enn.FieldType(space, [space.regular_repr])
    body = enn.SequentialModule(enn.R3Conv(inputs, hidden, 3, padding=1), enn.ReLU(hidden),
                                enn.PointwiseAvgPool3D(hidden, 2), enn.GroupPooling(hidden))
    return Volumes(body, inputs, 1, num_classes)


class ResidualBlock(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=8):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.head(x.mean(dim=(2, 3)))


def resnet_block(num_classes=10, in_channels=1):
    return ResidualBlock(num_classes, in_channels)


class Graphs(nn.Module):
    """Two message-passing layers, sum pooling, a linear head; ``conv`` builds a layer (in, out)."""

    def __init__(self, conv, in_channels, num_classes, hidden=8, edges=False):
        super().__init__()
        self.conv1, self.conv2 = conv(in_channels, hidden), conv(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)
        self.edges = edges

    def forward(self, x, edge_index, batch, edge_attr=None):
        from torch_geometric.nn import global_add_pool

        extra = (edge_attr,) if self.edges else ()
        h = torch.relu(self.conv1(x, edge_index, *extra))
        h = torch.relu(self.conv2(h, edge_index, *extra))
        return self.head(global_add_pool(h, batch))


class SumAndMix(nn.Module):
    """A custom MessagePassing: sum over neighbours, then a Linear."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        from torch_geometric.nn import MessagePassing

        class Propagate(MessagePassing):
            def __init__(self):
                super().__init__(aggr="add")

            def forward(self, x, edge_index):
                return self.propagate(edge_index, x=x)

        self.propagate, self.lin = Propagate(), nn.Linear(in_channels, out_channels)

    def forward(self, x, edge_index):
        return self.lin(x + self.propagate(x, edge_index))


def pyg(kind, in_channels, num_classes):
    import torch_geometric.nn as gnn

    mlp = lambda a, b: nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, b))
    layers = {"gin": lambda a, b: gnn.GINConv(mlp(a, b)), "gcn": gnn.GCNConv, "sage": gnn.SAGEConv,
              "gat": lambda a, b: gnn.GATConv(a, b, heads=1), "custom": SumAndMix,
              "gine": lambda a, b: gnn.GINEConv(mlp(a, b), edge_dim=2)}
    return Graphs(layers[kind], in_channels, num_classes, edges=kind == "gine")
'''

ESCNN_3D = {"so3_gated": "so3_gated", "octahedral": "octahedral"}
GRAPH_KINDS = ["gin", "gcn", "sage", "gat", "gine", "custom"]


@pytest.fixture
def families(module_on_disk):
    return module_on_disk(FAMILIES, "families")


def _volumes(path):
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 5, 5, 5)).astype(np.float32)
    y = (x[:, 0, 2].sum(axis=(1, 2)) > np.median(x[:, 0, 2].sum(axis=(1, 2)))).astype(np.int64)
    np.savez(path, x=x, y=y)


def _graphs(path, edge_attr: bool):
    from equislt.data import GraphAtlas

    atlas = GraphAtlas("has_triangle", min_nodes=3, max_nodes=5)
    graphs = [atlas[i] for i in range(len(atlas))]
    if edge_attr:
        for g in graphs:
            g.edge_attr = torch.ones(g.edge_index.shape[1], 2)
    torch.save(graphs, path)


def _through_the_engine(tmp_path, model: str, data: str, options: dict, model_kwargs: dict):
    """search (CLI) → cut at step 1 and resume → reload without target= → export; returns the ticket and a probe."""
    args = ["search", "--model", model, "--model-kwargs", json.dumps(model_kwargs), "--data-path", data,
            "--data-kwargs", json.dumps(options), "--epochs", "1", "--batch-size", "8", "--checkpoint-every", "1",
            "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "result.json").read_text())
    config = SearchConfig(model=model, model_kwargs=model_kwargs, data_path=data, data_kwargs=options, epochs=1,
                          batch_size=8, checkpoint_every=1, progress=False, out=str(tmp_path / "cut"))
    assert run_search(config, log=lambda *_: None, max_steps=1) is None
    assert main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["mask_digest"] == full["mask_digest"]
    ticket = Ticket.load(tmp_path / "full" / "ticket.pt")  # no target=: the factory is recorded by name
    return ticket, full


def _assert_exports_identically(ticket, *inputs):
    with torch.no_grad():
        expected = ticket(*inputs)
        plain = ticket.export()
        got = plain(*inputs)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), float((got - expected).abs().max())
    try:
        from escnn import nn as enn
    except ImportError:
        return
    assert not any(isinstance(m, enn.EquivariantModule) for m in plain.modules())


@pytest.mark.parametrize("factory", sorted(ESCNN_3D))
def test_3d_escnn_models_of_yours(tmp_path, families, factory):
    _volumes(tmp_path / "volumes.npz")
    ticket, result = _through_the_engine(tmp_path, f"{families}:{factory}", str(tmp_path / "volumes.npz"),
                                         {"rotations": "none", "test_fraction": 0.25}, {})
    assert result["coverage"]["masked"] > 0 and 0.0 <= result["test_accuracy"] <= 1.0
    _assert_exports_identically(ticket, torch.rand(3, 1, 5, 5, 5))


def test_a_torch_resnet_block_of_yours(tmp_path, families, idx_digits):
    folder = idx_digits(tmp_path / "digits", side=8)
    ticket, _ = _through_the_engine(tmp_path, f"{families}:resnet_block", str(folder),
                                    {"train_limit": 32, "test_limit": 16}, {})
    _assert_exports_identically(ticket, torch.rand(3, 1, 9, 9))


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_pyg_models_of_yours(tmp_path, families, kind):
    from torch_geometric.data import Batch

    path = tmp_path / "graphs.pt"
    _graphs(path, edge_attr=kind == "gine")
    ticket, result = _through_the_engine(tmp_path, f"{families}:pyg", str(path), {"train_limit": 24,
                                                                                  "test_limit": 8}, {"kind": kind})
    if kind == "gat":  # the attention vectors and the conv biases stay dense, and the result says so
        assert result["coverage"]["frozen"] > 0
    graphs = torch.load(path, weights_only=False)[:4]
    batch = Batch.from_data_list(graphs)
    inputs = (batch.x.float(), batch.edge_index, batch.batch) + ((batch.edge_attr,) if kind == "gine" else ())
    _assert_exports_identically(ticket, *inputs)
