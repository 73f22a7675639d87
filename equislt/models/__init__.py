"""Models for the demos: small steerable CNNs (escnn, imported lazily), plain CNNs, graph models (k-IGN, pooled
PyG MPNNs) and training helpers."""
from ._graph import IGN, GraphClassifier, count_parameters, gcn_classifier, gin_classifier, graph_accuracy, train_graph_model
from ._steerable import PlainCNN, SteerableCNN, c4_steerable_cnn, parse_group, plain_cnn, steerable_cnn
from ._io import load_model, save_model
from ._train import accuracy, train_classifier

__all__ = [
    "SteerableCNN",
    "PlainCNN",
    "steerable_cnn",
    "c4_steerable_cnn",
    "plain_cnn",
    "parse_group",
    "train_classifier",
    "accuracy",
    "IGN",
    "GraphClassifier",
    "gcn_classifier",
    "gin_classifier",
    "train_graph_model",
    "graph_accuracy",
    "count_parameters",
    "load_model",
    "save_model",
]
