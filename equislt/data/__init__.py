"""Offline datasets: rotated scikit-learn digits, your own IDX images, and graphs (networkx atlas, KarateClub, generated, your own).

The graph names need torch_geometric and are imported on first use.
"""
from ._digits import ROTATIONS, SPLITS, RotatedDigits, rotate_images, rotated_digits, rotated_digits_loaders
from ._idx import IDX_FILES, idx_images, read_idx, write_idx

_GRAPH_NAMES = ("ATLAS_TASKS", "GraphAtlas", "atlas_label", "dense_graph_batch", "karate_club", "load_graph_dataset",
                "sbm_node_task", "split_indices", "wl_ambiguous")

__all__ = [
    "IDX_FILES",
    "RotatedDigits",
    "idx_images",
    "read_idx",
    "rotated_digits",
    "rotated_digits_loaders",
    "rotate_images",
    "ROTATIONS",
    "SPLITS",
    "write_idx",
    *_GRAPH_NAMES,
]


def __getattr__(name):  # torch_geometric is imported on first use
    if name in _GRAPH_NAMES:
        from . import _graphs

        return getattr(_graphs, name)
    raise AttributeError(f"module 'equislt.data' has no attribute {name!r}")
