"""Models for the demos: small steerable CNNs (escnn, imported lazily), plain CNNs and training helpers."""
from ._steerable import PlainCNN, SteerableCNN, c4_steerable_cnn, parse_group, plain_cnn, steerable_cnn
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
]
