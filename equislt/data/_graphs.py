"""Offline graph data: networkx's graph atlas, PyG's KarateClub, generated graphs, and a user's own dataset.

Nothing is downloaded. Graph-level tasks use the atlas (``networkx.graph_atlas_g()``: all 1,253 graphs with
at most 7 nodes; the empty 0-node graph is left out by default), labelled by a graph property. Every graph
is a PyG ``Data(x, edge_index, y, num_nodes)`` with both directions of each undirected edge.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import networkx as nx
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.utils import to_dense_adj, to_dense_batch

from .._files import load_plain

__all__ = [
    "ATLAS_TASKS",
    "GraphAtlas",
    "PLANETOID_FILES",
    "atlas_label",
    "dense_graph_batch",
    "karate_club",
    "graph_source",
    "load_graph_dataset",
    "node_graph",
    "planetoid_directory",
    "tu_directory",
    "sbm_node_task",
    "split_indices",
    "wl_ambiguous",
]

TRIANGLE_CAP = 9


def _triangles(g) -> int:
    return sum(nx.triangles(g).values()) // 3


def _diameter(g) -> int:
    return nx.diameter(g) + 1 if g.number_of_nodes() and nx.is_connected(g) else 0


ATLAS_TASKS: Dict[str, Tuple[Callable, int, str]] = {
    "triangles": (lambda g: min(_triangles(g), TRIANGLE_CAP), TRIANGLE_CAP + 1,
                  f"number of triangles, capped at {TRIANGLE_CAP} (class {TRIANGLE_CAP} = '>= {TRIANGLE_CAP}')"),
    "has_triangle": (lambda g: int(_triangles(g) > 0), 2, "1 if the graph contains a triangle"),
    "connected": (lambda g: int(g.number_of_nodes() > 0 and nx.is_connected(g)), 2, "1 if connected"),
    "bipartite": (lambda g: int(nx.is_bipartite(g)), 2, "1 if bipartite (2-colourable)"),
    "diameter": (_diameter, 8, "0 if disconnected, else diameter + 1 (1..7)"),
}


def atlas_label(graph, task: str) -> int:
    """The label of one networkx graph for ``task`` (see :data:`ATLAS_TASKS`)."""
    if task not in ATLAS_TASKS:
        raise ValueError(f"GraphAtlas: unknown task {task!r} (known: {sorted(ATLAS_TASKS)})")
    return int(ATLAS_TASKS[task][0](graph))


def _from_networkx(graph, y: int, features: str, max_degree: int) -> Data:
    n = graph.number_of_nodes()
    edges = torch.tensor(list(graph.edges()), dtype=torch.long).view(-1, 2).t()
    edge_index = torch.cat([edges, edges.flip(0)], 1)
    if features == "ones":
        x = torch.ones(n, 1)
    elif features == "degree":
        deg = torch.tensor([d for _, d in sorted(graph.degree())], dtype=torch.long)
        x = torch.nn.functional.one_hot(deg.clamp(max=max_degree), max_degree + 1).float()
    else:
        raise ValueError(f"GraphAtlas: features must be 'ones' or 'degree', got {features!r}")
    return Data(x=x, edge_index=edge_index, y=torch.tensor([y]), num_nodes=n)


class GraphAtlas(InMemoryDataset):
    """Graph classification on the networkx graph atlas (offline; all graphs with ``min_nodes..max_nodes`` nodes).

    Parameters
    ----------
    task : one of :data:`ATLAS_TASKS`: ``"triangles"`` (count, capped), ``"has_triangle"``, ``"connected"``,
        ``"bipartite"``, ``"diameter"``.
    min_nodes, max_nodes : node-count range (``0 ≤ min ≤ max ≤ 7``; default 1..7: 1,252 graphs).
    features : ``"ones"`` (``x = 1``: the model must use the structure) or ``"degree"`` (one-hot degree).

    Attributes: ``num_classes``, ``task``, ``description``, ``atlas_index`` (position in ``graph_atlas_g()``).
    """

    def __init__(self, task: str = "triangles", min_nodes: int = 1, max_nodes: int = 7, features: str = "ones",
                 transform=None):
        if task not in ATLAS_TASKS:
            raise ValueError(f"GraphAtlas: unknown task {task!r} (known: {sorted(ATLAS_TASKS)})")
        if not 0 <= min_nodes <= max_nodes <= 7:
            raise ValueError(f"GraphAtlas: need 0 <= min_nodes <= max_nodes <= 7 (the atlas stops at 7 nodes), "
                             f"got {min_nodes}..{max_nodes}")
        super().__init__(None, transform)
        self.task, self.description = task, ATLAS_TASKS[task][2]
        graphs = [(i, g) for i, g in enumerate(nx.graph_atlas_g()) if min_nodes <= g.number_of_nodes() <= max_nodes]
        self.atlas_index = torch.tensor([i for i, _ in graphs])
        data = [_from_networkx(g, atlas_label(g, task), features, 6) for _, g in graphs]
        self._num_classes = ATLAS_TASKS[task][1]
        self.data, self.slices = self.collate(data)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def graphs(self) -> List[nx.Graph]:
        """The networkx graphs, in dataset order."""
        atlas = nx.graph_atlas_g()
        return [atlas[int(i)] for i in self.atlas_index]


def wl_ambiguous(dataset: GraphAtlas, iterations: int = 7) -> torch.Tensor:
    """Bool ``[len(dataset)]``: graphs whose 1-WL colour histogram is shared with a graph of another label.

    No message-passing network (1-WL at most) nor 2-IGN (2-WL ≡ 1-WL) can classify all of these correctly.
    """
    import warnings

    labels = dataset.y.view(-1).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hashes = [nx.weisfeiler_lehman_graph_hash(g, iterations=iterations) for g in dataset.graphs()]
    seen: Dict[str, set] = {}
    for h, y in zip(hashes, labels):
        seen.setdefault(h, set()).add(y)
    return torch.tensor([len(seen[h]) > 1 for h in hashes])


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.2), seed: int = 0) -> List[torch.Tensor]:
    """A seeded random split of ``range(n)`` into parts of the given fractions (the last takes the rest)."""
    if not fractions or any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split_indices: fractions must be >= 0 and sum to at most 1, got {tuple(fractions)}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(f * n)) for f in fractions[:-1]]
    sizes.append(n - sum(sizes) if abs(sum(fractions) - 1) < 1e-9 else int(round(fractions[-1] * n)))
    out, start = [], 0
    for size in sizes:
        out.append(perm[start:start + size])
        start += size
    return out


def dense_graph_batch(batch, max_nodes: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Order-2 input of an IGN from a PyG ``Data``/``Batch``: ``x [B, 1 + F, n, n]`` and ``node_mask [B, n]``.

    Channel 0 is the adjacency matrix, channels ``1..F`` the node features on the diagonal; graphs are padded
    to ``n = max_nodes`` (default: the largest graph in the batch).
    """
    index = getattr(batch, "batch", None)
    if index is None:
        index = torch.zeros(batch.num_nodes, dtype=torch.long, device=batch.edge_index.device)
    feats, node_mask = to_dense_batch(batch.x.float(), index, max_num_nodes=max_nodes)  # [B, n, F]
    adj = to_dense_adj(batch.edge_index, index, max_num_nodes=feats.shape[1])  # [B, n, n]
    diag = torch.diag_embed(feats.transpose(1, 2))  # [B, F, n, n]
    return torch.cat([adj.unsqueeze(1), diag], 1), node_mask


def karate_club() -> Data:
    """PyG's ``KarateClub`` (hard-coded, 34 nodes, 4 classes, one training node per class) with a ``test_mask``."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    data.test_mask = ~data.train_mask
    return data


def sbm_node_task(block_sizes: Sequence[int] = (30, 30, 30), p_in: float = 0.25, p_out: float = 0.02,
                  num_features: int = 8, noise: float = 2.0, train_fraction: float = 0.3, seed: int = 0) -> Data:
    """Node classification on a generated stochastic block model: the class is the block.

    Features are the class's random mean vector plus ``N(0, noise²)`` noise, so single nodes are hard to
    classify and aggregating over neighbours (mostly of the same block) helps. Seeded; ``train_mask``/``test_mask``.
    """
    from torch_geometric.utils import stochastic_blockmodel_graph

    k = len(block_sizes)
    generator = torch.Generator().manual_seed(seed)
    probs = torch.full((k, k), float(p_out))
    probs.fill_diagonal_(float(p_in))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # stochastic_blockmodel_graph has no generator argument
    try:
        edge_index = stochastic_blockmodel_graph(torch.tensor(block_sizes), probs)
    finally:
        torch.random.set_rng_state(state)
    y = torch.repeat_interleave(torch.arange(k), torch.tensor(block_sizes))
    means = torch.randn(k, num_features, generator=generator)
    x = means[y] + noise * torch.randn(len(y), num_features, generator=generator)
    train = torch.zeros(len(y), dtype=torch.bool)
    train[split_indices(len(y), (train_fraction, 1 - train_fraction), seed)[0]] = True
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train, test_mask=~train, num_nodes=len(y))


_DATA_CLASSES = (Data, GlobalStorage, DataEdgeAttr, DataTensorAttr)  # what a torch.save-d list of Data holds


def load_graph_dataset(source: Union[str, "torch.utils.data.Dataset", Sequence[Data], Data]) -> List[Data]:
    """A user's own PyG data as a list of ``Data``: a PyG ``Dataset``, a list of ``Data``, one ``Data``, or a path
    to a file written with ``torch.save`` holding a list of ``Data`` or one ``Data``. A file is read as plain
    data: besides tensors and plain values only PyG's ``Data`` and its attribute storage (``GlobalStorage``,
    ``DataEdgeAttr``, ``DataTensorAttr``: containers of tensors) are accepted; a pickled dataset object is
    refused, since loading it could run code. Each graph must have ``x``, ``edge_index`` and ``y``; nothing is
    downloaded."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        source = load_plain(source, "load_graph_dataset", safe=_DATA_CLASSES)
    if isinstance(source, Data):
        source = [source]
    if isinstance(source, dict) or not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        raise ValueError(f"load_graph_dataset: expected a PyG Dataset, a list of Data or a Data, "
                         f"got {type(source).__name__}")
    graphs = [source[i] for i in range(len(source))]
    for i, g in enumerate(graphs):
        missing = [a for a in ("x", "edge_index", "y") if getattr(g, a, None) is None]
        if not isinstance(g, Data) or missing:
            raise ValueError(f"load_graph_dataset: graph {i} ({type(g).__name__}) lacks {missing or 'Data type'}")
        problem = _graph_problem(g)
        if problem:
            raise ValueError(f"load_graph_dataset: graph {i} {problem}")
    if not graphs:
        raise ValueError("load_graph_dataset: no graphs")
    return graphs


def _graph_problem(g: Data) -> Optional[str]:
    """What is wrong with a graph's nodes, edges or features (``None``: nothing)."""
    if not g.num_nodes:
        return "has no nodes"
    if not torch.is_tensor(g.edge_index) or g.edge_index.dim() != 2 or g.edge_index.shape[0] != 2 or \
            g.edge_index.is_floating_point():
        return f"has an edge_index that is not an integer tensor [2, E] ({getattr(g.edge_index, 'shape', None)})"
    if g.edge_index.numel() and int(g.edge_index.min()) < 0:
        return f"has an edge from node {int(g.edge_index.min())} (negative index)"
    if g.edge_index.numel() and int(g.edge_index.max()) >= g.num_nodes:
        return f"has an edge to node {int(g.edge_index.max())} but only {g.num_nodes} nodes"
    if g.x.is_floating_point() and not bool(torch.isfinite(g.x).all()):
        return "has NaN or infinite node features"
    return None


def _offline_pyg(directory, raw_names: Sequence[str], kind: str, make: Callable) -> list:
    """The items of PyG dataset ``make(root, name)`` for a directory ``root/name/raw/`` whose raw files are all
    there. PyG processes a copy of the raw files in a temporary directory: nothing is downloaded, nothing is
    written into the user's directory, and a ``processed/`` folder found there is never read (PyG may unpickle
    it)."""
    import shutil
    import tempfile
    from pathlib import Path

    directory = Path(directory)
    missing = [n for n in raw_names if not (directory / "raw" / n).is_file()]
    if missing:
        raise ValueError(f"{directory}: not a {kind} directory with its raw files: missing raw/{missing[0]} "
                         f"({len(missing)} of {len(raw_names)} missing). equislt never downloads: put the raw files "
                         "there first")
    with tempfile.TemporaryDirectory(prefix="equislt-pyg-") as scratch:
        raw = Path(scratch) / directory.name / "raw"
        raw.mkdir(parents=True)
        for file in (directory / "raw").iterdir():
            if file.is_file():
                shutil.copyfile(file, raw / file.name)
        with torch.serialization.safe_globals(list(_DATA_CLASSES)):  # PyG reads back its processed file as data
            dataset = make(scratch, directory.name)
        return [dataset[i] for i in range(len(dataset))]


def tu_directory(directory) -> List[Data]:
    """The graphs of a TUDataset already on disk, ``directory = root/NAME`` holding ``raw/NAME_A.txt``,
    ``raw/NAME_graph_indicator.txt`` etc. (text files, as PyG's ``TUDataset(root, NAME)`` downloads them).
    Graphs without node features get the constant feature 1 per node."""
    from pathlib import Path

    from torch_geometric.datasets import TUDataset

    name = Path(directory).name
    graphs = _offline_pyg(directory, [f"{name}_A.txt", f"{name}_graph_indicator.txt"], "TUDataset", TUDataset)
    for g in graphs:
        if g.x is None:
            g.x = torch.ones(g.num_nodes, 1)
    return load_graph_dataset(graphs)


PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def planetoid_directory(directory, trust: bool = False) -> Data:
    """A Planetoid graph (Cora, CiteSeer, PubMed) already on disk, ``directory = root/NAME`` holding
    ``raw/ind.name.x`` etc. (as PyG's ``Planetoid(root, NAME)`` downloads them), with its train/test masks.
    Planetoid's raw files are Python pickles that PyG unpickles (which can run code): ``trust=True`` says you
    trust them."""
    from pathlib import Path

    from torch_geometric.datasets import Planetoid

    if not trust:
        raise ValueError(f"{directory}: Planetoid's raw files are Python pickles, and reading them can run code; "
                         "if you trust them, pass trust=True (data option trust_pickles: true)")
    name = Path(directory).name
    names = [f"ind.{name.lower()}.{part}" for part in PLANETOID_FILES]
    return node_graph(_offline_pyg(directory, names, "Planetoid", Planetoid)[0], where=str(directory))


def node_graph(source, where: Optional[str] = None) -> Data:
    """One graph for node classification: ``x``, ``edge_index``, integer ``y`` per node, boolean ``train_mask``
    and ``test_mask`` (nodes in neither are not used); a ``Data`` or a ``torch.save``-d file holding one."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        where = where or str(source)
        source = load_plain(source, "node_graph", safe=_DATA_CLASSES)
    where = where or "node_graph"
    if not isinstance(source, Data):
        raise ValueError(f"{where}: node classification needs one PyG Data, got {type(source).__name__}")
    missing = [a for a in ("x", "edge_index", "y", "train_mask", "test_mask") if getattr(source, a, None) is None]
    if missing:
        raise ValueError(f"{where}: a node classification graph needs {missing}")
    problem = _graph_problem(source)
    if problem:
        raise ValueError(f"{where}: the graph {problem}")
    for mask in ("train_mask", "test_mask"):
        value = getattr(source, mask)
        if value.dtype != torch.bool or value.shape != (source.num_nodes,):
            raise ValueError(f"{where}: {mask} must be a bool tensor [num_nodes={source.num_nodes}], got "
                             f"{value.dtype} {tuple(value.shape)}")
    if source.y.shape[0] != source.num_nodes:
        raise ValueError(f"{where}: y must hold one label per node ({source.num_nodes}), got {tuple(source.y.shape)}")
    if not bool(source.train_mask.any()):
        raise ValueError(f"{where}: train_mask selects no node")
    return source


def graph_source(path, trust_pickles: bool = False) -> Tuple[str, Union[List[Data], Data]]:
    """What the graph data at ``path`` is: ``("node", graph)`` for a Planetoid directory (``trust_pickles``: see
    :func:`planetoid_directory`) or a file holding one ``Data`` with ``train_mask``/``test_mask``;
    ``("graph", graphs)`` for a TUDataset directory or a file holding graphs."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        name = path.name
        if (path / "raw" / f"ind.{name.lower()}.x").exists():
            return "node", planetoid_directory(path, trust=trust_pickles)
        return "graph", tu_directory(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file or directory")
    value = load_plain(path, "graph data", safe=_DATA_CLASSES)
    if isinstance(value, Data) and getattr(value, "train_mask", None) is not None:
        return "node", node_graph(value, where=str(path))
    return "graph", load_graph_dataset(value)

