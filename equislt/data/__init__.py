"""Offline datasets: rotated scikit-learn digits, your own images (IDX files, image folders, .npz), and graphs
(networkx atlas, KarateClub, generated, your own files and PyG dataset directories on disk).

The graph names need torch_geometric and are imported on first use.
"""
from ._digits import ROTATIONS, SPLITS, RotatedDigits, rotate_images, rotated_digits, rotated_digits_loaders
from ._idx import IDX_FILES, idx_images, read_idx, write_idx
from ._images import IMAGE_SUFFIXES, image_dataset, image_folder, npz_images
from ._prepare import prepare_images

_GRAPH_NAMES = ("ATLAS_TASKS", "GraphAtlas", "PLANETOID_FILES", "atlas_label", "dense_graph_batch", "graph_source",
                "karate_club", "load_graph_dataset", "node_graph", "planetoid_directory", "sbm_node_task",
                "split_indices", "tu_directory", "wl_ambiguous")

__all__ = [
    "IDX_FILES",
    "IMAGE_SUFFIXES",
    "RotatedDigits",
    "idx_images",
    "image_dataset",
    "image_folder",
    "npz_images",
    "prepare_images",
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
