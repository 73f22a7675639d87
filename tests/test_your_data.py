"""Your own data, read from disk and never downloaded: images from a ``.npz`` or a class-per-folder tree, graphs
from a TUDataset directory, node classification on one graph (a ``Data`` file, a Planetoid directory, the bundled
KarateClub), all with the same data options."""
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from equislt import Ticket
from equislt.search import DATA_OPTIONS, SearchConfig, Searcher, build_task, run_search


def _quiet(*_):
    pass


def _search(data_path=None, model="plain_cnn", **changes) -> Searcher:
    values = dict(model=model, model_kwargs={"channels": [4]} if model == "plain_cnn" else {}, data_path=data_path,
                  epochs=1, batch_size=8, progress=False, out=None)
    values.update(changes)
    return Searcher(SearchConfig(**values), log=_quiet)


def test_npz_images_channels_last_split_at_random(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)  # RGB, channels last, even side
    y = np.arange(40) % 4
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    task = build_task("rotated_digits", {"test_fraction": 0.25, "rotations": "none", "seed": 3},
                      str(tmp_path / "mine.npz"))
    assert task.kind == "image" and task.num_classes == 4 and (len(task.train), len(task.test)) == (30, 10)
    image, label = task.test[0]
    assert image.shape == (3, 9, 9) and 0 <= float(image.min()) and float(image.max()) <= 1  # padded to odd
    assert task.model_defaults == {"num_classes": 4, "input_size": 9, "in_channels": 3}
    assert task.source == f"images in {tmp_path / 'mine.npz'} (.npz)"
    # the split is the seed's: every image lands in exactly one split
    seen = sorted(int(label) for split in (task.train, task.test) for _, label in split)
    assert seen == sorted(y.tolist())
    searcher = _search(str(tmp_path / "mine.npz"), data_kwargs={"train_limit": 16, "test_limit": 8})
    assert (len(searcher.task.train), len(searcher.task.test)) == (16, 8)
    assert 0.0 <= searcher.run()["test_accuracy"] <= 1.0  # plain_cnn got in_channels=3 from the data
    np.savez(tmp_path / "short.npz", x=x, y=y[:-1])
    with pytest.raises(ValueError, match="short.npz: 40 images in 'x' but 39 labels in 'y'"):
        build_task("rotated_digits", {}, str(tmp_path / "short.npz"))
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(ValueError, match="bad.npz: expected arrays 'x' and 'y'"):
        build_task("rotated_digits", {}, str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError, match="objects.npz: not a readable .npz of numeric arrays"):
        build_task("rotated_digits", {}, str(tmp_path / "objects.npz"))


def test_image_folders_by_class_name(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in ("cat", "dog", "emu"):
            (tmp_path / "pets" / split / name).mkdir(parents=True)
            for i in range(6 if split == "train" else 2):
                Image.fromarray(rng.integers(0, 256, size=(9, 9), dtype=np.uint8), mode="L").save(
                    tmp_path / "pets" / split / name / f"{i}.png")
    task = build_task("rotated_digits", {"rotations": "none"}, str(tmp_path / "pets"))
    assert (len(task.train), len(task.test), task.num_classes) == (18, 6, 3)
    assert task.train[0][0].shape == (1, 9, 9) and task.source.endswith("(3 classes)")
    assert [int(task.test[i][1]) for i in range(6)] == [0, 0, 1, 1, 2, 2]  # sorted folder names: cat, dog, emu
    pixels = [np.asarray(Image.open(tmp_path / "pets" / "test" / name / f"{i}.png"), dtype=np.float32)
              for name in ("cat", "dog", "emu") for i in range(2)]
    scale = max(float(p.max()) for p in pixels)  # a split is scaled by its largest pixel
    assert all(np.allclose(task.test[i][0][0].numpy(), pixels[i] / scale) for i in range(6))
    Image.fromarray(np.zeros((7, 7), dtype=np.uint8), mode="L").save(tmp_path / "pets" / "train" / "emu" / "odd.png")
    with pytest.raises(ValueError, match="odd.png: \\(7, 7\\) pixels, but .* has \\(9, 9\\)"):
        build_task("rotated_digits", {}, str(tmp_path / "pets"))


def _write_tu(directory, graphs):
    """A TUDataset's raw text files, as PyG downloads them (1-based node ids)."""
    raw = directory / "raw"
    raw.mkdir(parents=True)
    name = directory.name
    edges, indicator, labels, offset = [], [], [], 0
    for number, graph in enumerate(graphs, start=1):
        edges += [(int(a) + offset + 1, int(b) + offset + 1) for a, b in graph.edge_index.t()]
        indicator += [number] * graph.num_nodes
        labels.append(int(graph.y))
        offset += graph.num_nodes
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in labels))


def test_a_tudataset_directory_on_disk(tmp_path):
    from equislt.data import GraphAtlas

    atlas = GraphAtlas("connected", min_nodes=2, max_nodes=5)
    graphs = [atlas[i] for i in range(len(atlas))]
    _write_tu(tmp_path / "ATLAS5", graphs)
    searcher = _search(str(tmp_path / "ATLAS5"), model="gin", model_kwargs={"hidden_channels": 8, "num_layers": 2},
                       data_kwargs={"test_fraction": 0.25, "seed": 1})
    task = searcher.task
    assert task.kind == "graph" and len(task.train) + len(task.test) == len(graphs) and task.num_classes == 2
    assert task.model_defaults["in_channels"] == 1  # no node features in the files: the constant feature 1
    assert 0.0 <= searcher.run()["test_accuracy"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "ATLAS5").iterdir()) == ["raw"]  # nothing written there
    (tmp_path / "ATLAS5" / "raw" / "ATLAS5_A.txt").unlink()
    with pytest.raises(ValueError, match="missing raw/ATLAS5_A.txt.*never downloads"):
        build_task("graph_atlas", {}, str(tmp_path / "ATLAS5"))


class NodeGCN(nn.Module):
    """A node classifier: ``forward(x, edge_index)`` gives one row of logits per node."""

    def __init__(self, in_channels, num_classes, hidden=8):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1, self.conv2 = GCNConv(in_channels, hidden), GCNConv(hidden, num_classes)

    def forward(self, x, edge_index):
        return self.conv2(torch.relu(self.conv1(x, edge_index)), edge_index)


def node_gcn(in_channels, num_classes, hidden=8):
    return NodeGCN(in_channels, num_classes, hidden)


def test_node_classification_on_karate_club_and_on_a_data_file(tmp_path):
    from equislt.data import sbm_node_task

    result = run_search(SearchConfig(model=node_gcn, data="karate_club", epochs=3, batch_size=4, progress=False,
                                     out=str(tmp_path / "karate")), log=_quiet)
    assert result["data"].startswith("karate_club") and 0.0 <= result["test_accuracy"] <= 1.0
    ticket = Ticket.load(tmp_path / "karate" / "ticket.pt")  # its fingerprint: the whole graph's node logits
    from equislt.data import karate_club

    graph = karate_club()
    with torch.no_grad():
        logits = ticket(graph.x, graph.edge_index)
    assert logits.shape == (34, 4)
    permutation = torch.randperm(34, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(permutation)
    with torch.no_grad():  # node-equivariant: relabelled nodes give relabelled rows
        moved = ticket(graph.x[permutation], inverse[graph.edge_index])
    assert torch.allclose(moved, logits[permutation], atol=1e-5)

    data = sbm_node_task(block_sizes=(12, 12), seed=0)
    torch.save(data, tmp_path / "graph.pt")
    searcher = _search(str(tmp_path / "graph.pt"), model=node_gcn, data_kwargs={"train_limit": 5}, batch_size=4)
    assert searcher.task.kind == "node" and len(searcher.task.train) == 5
    assert len(searcher.task.test) == int(data.test_mask.sum())
    searcher.run()
    data.train_mask = data.train_mask.long()
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: train_mask must be a bool tensor"):
        build_task("graph_atlas", {}, str(tmp_path / "bad.pt"))


def _write_planetoid(directory, nodes=560, train=10, test=20, features=4, classes=3):
    """Planetoid's raw files (pickles, as PyG downloads them): train nodes first, then 500 validation nodes,
    then the test nodes."""
    rng = np.random.default_rng(0)
    raw = directory / "raw"
    raw.mkdir(parents=True)
    prefix = f"ind.{directory.name.lower()}"
    labels = np.eye(classes)[rng.integers(0, classes, size=nodes)]
    x = rng.random((nodes, features)).astype(np.float32)
    arrays = {"x": x[:train], "y": labels[:train], "allx": x[: nodes - test], "ally": labels[: nodes - test],
              "tx": x[nodes - test:], "ty": labels[nodes - test:]}
    for name, value in arrays.items():
        (raw / f"{prefix}.{name}").write_bytes(pickle.dumps(value))
    graph = {i: [int(j) for j in rng.choice(nodes, size=3, replace=False)] for i in range(nodes)}
    (raw / f"{prefix}.graph").write_bytes(pickle.dumps(graph))
    (raw / f"{prefix}.test.index").write_text("".join(f"{i}\n" for i in range(nodes - test, nodes)))


def test_a_planetoid_directory_needs_trust_in_its_pickles(tmp_path):
    _write_planetoid(tmp_path / "Tiny")
    with pytest.raises(ValueError, match="Tiny: Planetoid's raw files are Python pickles.*trust_pickles"):
        build_task("karate_club", {}, str(tmp_path / "Tiny"))
    task = build_task("karate_club", {"trust_pickles": True}, str(tmp_path / "Tiny"))
    assert task.kind == "node" and (len(task.train), len(task.test)) == (10, 20)
    assert task.model_defaults["in_channels"] == 4 and task.num_classes <= 3
    assert sorted(p.name for p in (tmp_path / "Tiny").iterdir()) == ["raw"]


def test_one_set_of_data_options_for_every_source(tmp_path):
    assert DATA_OPTIONS == ("train_limit", "test_limit", "rotations", "test_fraction", "seed", "trust_pickles")
    task = build_task("graph_atlas", {"train_limit": 10, "test_limit": 5})
    assert (len(task.train), len(task.test)) == (10, 5)
    from equislt.data import GraphAtlas

    atlas = GraphAtlas("connected", min_nodes=2, max_nodes=4)
    torch.save([atlas[i] for i in range(len(atlas))], tmp_path / "graphs.pt")
    with pytest.raises(ValueError, match="data_kwargs for the data in .*rotations.*data options: train_limit"):
        build_task("graph_atlas", {"rotations": "c4"}, str(tmp_path / "graphs.pt"))
