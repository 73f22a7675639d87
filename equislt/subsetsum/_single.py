r"""The single-element approximation of Malach et al. (2020): each target ``t`` by the one value closest to it.

``S* = argmin_{|S| ≤ 1} |Σ_{i∈S} x_i − t|``: a Subset-Sum restricted to subsets of at most one element (the
empty subset, sum 0, included). With ``N`` i.i.d. values of density ``≥ p`` near ``t``, the closest is within
``ε`` with probability ``1 − (1 − 2pε)^N``, so ``N ∝ 1/ε`` values per target: the polynomial
over-parametrisation of Malach et al., against ``N ∝ log(1/ε)`` for subsets of any size (Lueker 1998). The cost
is ``O(N)`` per row, so ``N`` is not limited.
"""

from __future__ import annotations

from typing import Any

import torch

from ._inputs import finish, prepare
from ._report import SubsetSumResult

__all__ = ["closest_single"]


def closest_single(values: Any, targets: Any, valid: Any = None, *, tol: float | None = None,
                   device: Any = None) -> SubsetSumResult:
    """For each row ``p``: the one valid value ``x_{p,i}`` closest to ``t_p``, or none when ``|t_p|`` is closer.

    Same arguments and result as :func:`equislt.subsetsum.solve` (``values [P, N]`` with any ``N``, ``targets
    [P]``, ``valid [P, N]``); ``chosen`` has at most one element per row.
    """
    prob = prepare(values, targets, valid, tol=tol, device=device)
    v, t = prob.values, prob.targets
    p, n = v.shape
    chosen = torch.zeros((p, n), dtype=torch.bool, device=v.device)
    if p and n:
        distance = (v - t[:, None]).abs()
        if prob.valid is not None:
            distance = distance.masked_fill(~prob.valid, float("inf"))
        best, index = distance.min(dim=1)
        use = best < t.abs()
        chosen[torch.arange(p, device=v.device)[use], index[use]] = True
    return finish(prob, chosen, tol)
