"""Coverage you can see: every parameter masked, a score, trainable or frozen dense, and refusals that name the
remedy for the layer at hand."""
import pytest
import torch
from torch import nn

from equislt.nn import coverage, supermask


class GATNet(nn.Module):
    def __init__(self):
        super().__init__()
        from torch_geometric.nn import GATConv

        self.conv = GATConv(4, 8, heads=2)
        self.head = nn.Linear(16, 3)

    def forward(self, x, edge_index):
        return self.head(torch.relu(self.conv(x, edge_index)))


def test_coverage_lists_what_the_supermask_leaves_dense():
    model = GATNet()
    before = coverage(model)
    assert before.counts() == {"masked": 0, "scores": 0, "trainable": 163, "frozen": 0}
    supermask(model, sparsity=0.5)
    after = coverage(model)
    assert after.named("frozen") == ["conv.att_src", "conv.att_dst", "conv.bias"]
    assert after.named("masked") == ["conv.lin.weight", "head.weight", "head.bias"]
    assert after.counts() == {"masked": 115, "scores": 115, "trainable": 0, "frozen": 48}
    table = str(after)
    assert "conv.att_src" in table and table.splitlines()[-1] == "masked 115, scores 115, trainable 0, frozen 48"
    assert repr(after) == "Coverage(masked=115, scores=115, trainable=0, frozen=48)"


def test_the_search_says_which_parameters_stay_dense(tmp_path):
    from equislt.search import SearchConfig, run_search

    messages = []
    result = run_search(SearchConfig(model="steerable_cnn", model_kwargs={"channels": [4]}, epochs=1, batch_size=64,
                                     data_kwargs={"train_limit": 64, "test_limit": 16}, progress=False, out=None),
                        log=messages.append)
    frozen = [m for m in messages if "no mask covers stay dense" in m]
    assert len(frozen) == 1 and "equislt.nn.coverage" in frozen[0]
    assert result["coverage"]["masked"] > 0 and result["coverage"]["trainable"] == 0


def test_a_construction_refusal_names_the_remedy_for_that_layer():
    from equislt.construct import construct

    model = GATNet().eval()
    x, edges = torch.rand(6, 4), torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="GATConv's att_src, att_dst cannot be made of pruned random") as info:
        construct(model, (x, edges), tol=1e-2, progress=False)
    assert "GCNConv" not in str(info.value)


def test_include_all_masks_every_parameter_and_keeps_permutation_equivariance():
    model = GATNet()
    supermask(model, sparsity=0.5, seed=3, include="all")
    cover = coverage(model)
    assert cover.named("frozen") == [] and cover.counts()["trainable"] == 0
    assert "conv.parametrizations.att_src.original" in cover.named("masked")
    from equislt.nn import fold, masks_of, score_parameters

    masks = masks_of(model)
    assert set(masks["conv"]) == {"att_src", "att_dst", "bias"} and masks["conv"]["bias"].sum() == 8
    assert len(score_parameters(model)) == 6  # lin.weight, head.weight, head.bias + the three parameters
    x, edges = torch.rand(6, 4), torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    permutation = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(permutation)
    with torch.no_grad():
        out = model(x, edges)
        assert torch.allclose(model(x[permutation], inverse[edges]), out[permutation], atol=1e-6)
        plain = fold(model)
        assert torch.allclose(plain(x, edges), out, atol=1e-6)
        assert torch.equal(model(x, edges), out)  # folding a copy leaves the masked model working
    assert not any("parametrizations" in n for n, _ in plain.named_parameters())
    assert type(plain.conv).__name__ == "GATConv"
    with pytest.raises(ValueError, match="include must be one of"):
        supermask(GATNet(), sparsity=0.5, include="everything")


def test_a_search_with_include_all_saves_a_ticket_that_regenerates(tmp_path, module_on_disk):
    from equislt import Ticket
    from equislt.data import GraphAtlas
    from equislt.search import SearchConfig, run_search

    name = module_on_disk(GAT_MODULE, "gatmodels")
    atlas = GraphAtlas("connected", min_nodes=2, max_nodes=5)
    torch.save([atlas[i] for i in range(len(atlas))], tmp_path / "graphs.pt")
    for scope in ("layer", "global"):
        out = tmp_path / scope
        result = run_search(SearchConfig(model=f"{name}:gat", data_path=str(tmp_path / "graphs.pt"), include="all",
                                         scope=scope, epochs=1, batch_size=8, progress=False, out=str(out)),
                            log=lambda *_: None)
        assert result["coverage"]["frozen"] == 0 and abs(result["sparsity"] - 0.5) < 0.02
        ticket = Ticket.load(out / "ticket.pt")  # the fingerprint check regenerates the masked parameters
        assert ticket.recipe.include == "all"
        graphs = torch.load(tmp_path / "graphs.pt", weights_only=False)[:5]
        from torch_geometric.data import Batch

        batch = Batch.from_data_list(graphs)
        inputs = (batch.x.float(), batch.edge_index, batch.batch)
        with torch.no_grad():
            assert torch.allclose(ticket.export()(*inputs), ticket(*inputs), atol=1e-6)


GAT_MODULE = '''
import torch
from torch import nn


class GAT(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        from torch_geometric.nn import GATConv

        self.conv = GATConv(in_channels, 8, heads=2)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x, edge_index, batch):
        from torch_geometric.nn import global_add_pool

        return self.head(global_add_pool(torch.relu(self.conv(x, edge_index)), batch))


def gat(in_channels, num_classes):
    return GAT(in_channels, num_classes)
'''
