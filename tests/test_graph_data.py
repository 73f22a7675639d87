"""Offline graph data: the networkx atlas tasks, KarateClub, generated SBM graphs, user datasets, dense batches."""
import networkx as nx
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn.models import GCN

from equislt.data import (GraphAtlas, dense_graph_batch, karate_club, load_graph_dataset, sbm_node_task,
                          split_indices, wl_ambiguous)
from equislt.models import IGN, graph_accuracy, train_graph_model


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def triangles():
    return GraphAtlas("triangles")


def test_atlas_has_every_graph_up_to_7_nodes_and_known_counts(triangles):
    assert len(triangles) == 1252 and len(GraphAtlas("connected", min_nodes=0)) == 1253
    counts = {task: GraphAtlas(task).y.bincount().tolist() for task in ("has_triangle", "connected", "bipartite")}
    assert counts["has_triangle"][0] == 1 + 2 + 3 + 7 + 14 + 38 + 107  # triangle-free graphs (OEIS A006785)
    assert counts["connected"][1] == 1 + 1 + 2 + 6 + 21 + 112 + 853  # connected graphs (OEIS A001349)
    assert counts["bipartite"][1] == 1 + 2 + 3 + 7 + 13 + 35 + 88  # bipartite graphs (OEIS A033995)
    assert triangles.num_classes == 10


def test_atlas_graphs_and_labels_match_networkx(triangles):
    graphs = triangles.graphs()
    for i in (6, 7, 50, 300, 1251):
        g, data = graphs[i], triangles[i]
        assert data.num_nodes == g.number_of_nodes() and data.edge_index.shape[1] == 2 * g.number_of_edges()
        assert int(data.y) == min(sum(nx.triangles(g).values()) // 3, 9)
    k7 = [d for d, g in zip(triangles, graphs) if g.number_of_edges() == 21]
    assert len(k7) == 1 and int(k7[0].y) == 9
    diameter = GraphAtlas("diameter", min_nodes=6, max_nodes=6)
    path = [int(d.y) for d, g in zip(diameter, diameter.graphs()) if nx.is_isomorphic(g, nx.path_graph(6))]
    assert path == [6]


def test_wl_ambiguous_flags_the_hexagon_and_two_triangles(triangles):
    ambiguous = wl_ambiguous(triangles)
    graphs = triangles.graphs()
    hexagon = [i for i, g in enumerate(graphs) if nx.is_isomorphic(g, nx.cycle_graph(6))]
    two_triangles = [i for i, g in enumerate(graphs)
                     if nx.is_isomorphic(g, nx.disjoint_union(nx.complete_graph(3), nx.complete_graph(3)))]
    assert ambiguous[hexagon + two_triangles].all()
    assert 0 < int(ambiguous.sum()) < 100
    assert not ambiguous[[i for i, g in enumerate(graphs) if nx.is_isomorphic(g, nx.complete_graph(4))]].any()


def test_dense_graph_batch_pads_and_keeps_adjacency_and_features():
    a = Data(x=torch.tensor([[1.0], [2.0]]), edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    b = Data(x=torch.tensor([[3.0], [4.0], [5.0]]), edge_index=torch.tensor([[0, 2], [2, 0]]), num_nodes=3)
    batch = next(iter(DataLoader([a, b], batch_size=2)))
    x, mask = dense_graph_batch(batch)
    assert x.shape == (2, 2, 3, 3) and mask.tolist() == [[True, True, False], [True, True, True]]
    assert x[0, 0].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert x[1, 1].diagonal().tolist() == [3, 4, 5] and x[0, 1].diagonal().tolist() == [1, 2, 0]


def test_splits_are_seeded_disjoint_and_complete():
    a, b = split_indices(100, (0.8, 0.2), seed=1)
    assert len(a) == 80 and len(b) == 20 and set(a.tolist()).isdisjoint(b.tolist())
    assert torch.equal(split_indices(100, (0.8, 0.2), seed=1)[0], a)
    assert not torch.equal(split_indices(100, (0.8, 0.2), seed=2)[0], a)
    with pytest.raises(ValueError, match="fractions"):
        split_indices(10, (0.8, 0.5))


def test_karate_club_and_generated_node_tasks():
    karate = karate_club()
    assert karate.num_nodes == 34 and int(karate.train_mask.sum()) == 4 and not (karate.train_mask & karate.test_mask).any()
    data = sbm_node_task(seed=3)
    again = sbm_node_task(seed=3)
    assert torch.equal(data.edge_index, again.edge_index) and torch.equal(data.x, again.x)
    same_block = (data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean()
    assert same_block > 0.7  # an assortative graph: neighbours mostly share the label
    torch.manual_seed(0)
    model = GCN(8, 16, 2, out_channels=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x, data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        optimizer.step()
    accuracy = (model(data.x, data.edge_index).argmax(1) == data.y)[data.test_mask].float().mean()
    assert accuracy > 0.8  # aggregation denoises the features: well above chance (1/3)


def test_user_dataset_loader(tmp_path):
    graphs = [Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([1]))] * 2
    torch.save(graphs, tmp_path / "mine.pt")
    loaded = load_graph_dataset(tmp_path / "mine.pt")
    assert len(loaded) == 2 and torch.equal(loaded[0].edge_index, graphs[0].edge_index)
    assert len(load_graph_dataset(GraphAtlas("connected", max_nodes=3))) == 7
    with pytest.raises(ValueError, match="lacks"):
        load_graph_dataset([Data(x=torch.ones(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))])
    with pytest.raises(ValueError, match="only 2 nodes"):
        load_graph_dataset(Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [5]]), y=torch.tensor([0])))
    for wrong in ({"graphs": graphs}, 3):
        with pytest.raises(ValueError, match="expected a PyG Dataset"):
            load_graph_dataset(wrong)


def test_ign_learns_an_atlas_task():
    data = GraphAtlas("connected", max_nodes=5)  # 52 graphs
    torch.manual_seed(0)
    model = IGN(2, 8, 2, num_layers=2)
    loader = DataLoader(data, batch_size=16, shuffle=True)
    before = graph_accuracy(model, loader)
    losses = train_graph_model(model, loader, epochs=40, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    assert graph_accuracy(model, loader) >= max(before, 0.9)
