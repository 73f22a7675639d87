"""Supermask search: learn which random coefficients to keep (edge-popup) on the same coefficient layers."""
from ._train import recalibrate_batchnorm, train_scores

__all__ = ["recalibrate_batchnorm", "train_scores"]
