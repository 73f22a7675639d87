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
