"""Models for the demos: small steerable CNNs (escnn, imported lazily), plain CNNs, graph models (k-IGN, pooled
PyG MPNNs), training helpers, and the registry of architectures that tickets and checkpoints rebuild."""
from ._architecture import Architecture, import_factory, model_factory, register_model, registered_models
from ._calls import graph_arguments, graph_logits, image_arguments, image_logits
from ._graph import IGN, GraphClassifier, count_parameters, gcn_classifier, gin_classifier
from ._io import load_model, load_weights, save_model
from ._steerable import PlainCNN, SteerableCNN, c4_steerable_cnn, parse_group, plain_cnn, steerable_cnn
from ._train import accuracy, graph_accuracy, train_classifier, train_graph_model

__all__ = [
    "Architecture",
    "GraphClassifier",
    "IGN",
    "PlainCNN",
    "SteerableCNN",
    "accuracy",
    "c4_steerable_cnn",
    "count_parameters",
    "gcn_classifier",
    "gin_classifier",
    "graph_accuracy",
    "graph_arguments",
    "graph_logits",
    "image_arguments",
    "image_logits",
    "import_factory",
    "load_model",
    "load_weights",
    "model_factory",
    "parse_group",
    "plain_cnn",
    "register_model",
    "registered_models",
    "save_model",
    "steerable_cnn",
    "train_classifier",
    "train_graph_model",
]
