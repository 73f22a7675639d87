"""Reference solvers (brute force, HiGHS MILP) for validating :func:`equislt.subsetsum.solve`."""

from ._reference import BRUTE_FORCE_MAX_N, brute_force, milp

__all__ = ["BRUTE_FORCE_MAX_N", "brute_force", "milp"]
