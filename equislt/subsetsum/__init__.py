"""Batched exact Subset-Sum for the provable strong-lottery-ticket construction.

Each target weight ``t`` is approximated by a subset sum of ``N`` random
coefficients ``x``: ``S* = argmin_S |sum_{i in S} x_i - t|``.  :func:`solve` does
this exactly for many rows at once with meet-in-the-middle (``N <= 32``);
:func:`closest_single` is Malach et al.'s single-element version (subsets of at most one value, any ``N``);
:mod:`equislt.subsetsum.reference` holds brute-force and MILP baselines.
"""

from ._mitm import MAX_N, solve
from ._single import closest_single
from ._report import SubsetSumReport, SubsetSumResult
from ._reference import brute_force, milp

__all__ = [
    "MAX_N",
    "SubsetSumReport",
    "SubsetSumResult",
    "brute_force",
    "closest_single",
    "milp",
    "solve",
]
