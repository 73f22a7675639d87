r"""Reference Subset-Sum solvers: exhaustive enumeration and a HiGHS MILP.

* :func:`brute_force` enumerates all :math:`2^N` subsets (``N <= 20``).
* :func:`milp` is the per-weight mixed-integer program of Pensia et al. (2020):

  .. math:: \min_{x \in \{0,1\}^N,\, z \ge 0} z
            \quad\text{s.t.}\quad -z \le \sum_i a_i x_i - t \le z,

  solved with :func:`scipy.optimize.milp` (HiGHS), one problem at a time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ._inputs import finish, prepare
from ._report import SubsetSumResult

__all__ = ["BRUTE_FORCE_MAX_N", "brute_force", "milp"]

BRUTE_FORCE_MAX_N = 20
"""Largest ``N`` accepted by :func:`brute_force`."""


def brute_force(
    values: Any,
    targets: Any,
    valid: Any = None,
    tol: float | None = None,
    fewest: bool = False,
    *,
    max_memory_bytes: int = 2**28,
) -> SubsetSumResult:
    """Exhaustive Subset-Sum over all ``2^N`` subsets (``N <= 20``).

    Same arguments and semantics as :func:`equislt.subsetsum.solve`; with
    ``fewest`` the smallest within-``tol`` subset is returned, ties broken by the
    smallest ``|residual|``.
    """
    prob = prepare(
        values, targets, valid, tol=tol, fewest=fewest, max_n=BRUTE_FORCE_MAX_N,
        max_n_reason="brute_force (2^N subsets per problem)",
    )
    v = prob.values.cpu().numpy()
    t = prob.targets.cpu().numpy()
    ok = None if prob.valid is None else prob.valid.cpu().numpy()
    p, n = v.shape
    k = np.arange(1 << n)
    bits = ((k[:, None] >> np.arange(n)) & 1).astype(np.float64)  # [2^N, N]
    size = bits.sum(1)
    rows = max(1, int(max_memory_bytes) // (32 * (1 << n)))
    best = np.zeros(p, dtype=np.int64)
    for s in range(0, p, rows):
        e = min(p, s + rows)
        err = np.abs(v[s:e] @ bits.T - t[s:e, None])  # [r, 2^N]
        if ok is not None:  # subsets touching an invalid entry are not allowed
            err[(~ok[s:e]).astype(np.float64) @ bits.T > 0] = np.inf
        idx = err.argmin(1)
        if fewest:
            within = err <= tol
            score = np.where(within, size[None, :] + err / (2.0 * (tol + 1e-300) + 1.0), np.inf)
            # size dominates (err/(2 tol + 1) < 1/2); among equal sizes, smaller err wins
            fidx = score.argmin(1)
            idx = np.where(within.any(1), fidx, idx)
        best[s:e] = idx
    chosen = torch.from_numpy(bits[best] > 0).to(prob.values.device)
    return finish(prob, chosen, tol)


def milp(
    values: Any,
    targets: Any,
    valid: Any = None,
    *,
    time_limit: float | None = None,
    mip_rel_gap: float | None = None,
    return_times: bool = False,
) -> SubsetSumResult | tuple[SubsetSumResult, np.ndarray]:
    """Pensia-style MILP baseline solved row by row with HiGHS.

    Parameters
    ----------
    values, targets, valid
        As in :func:`equislt.subsetsum.solve` (any ``N``).
    time_limit : float, optional
        Seconds allowed per problem; the incumbent is used when it is hit.
    mip_rel_gap : float, optional
        HiGHS relative MIP gap (its default when ``None``).
    return_times : bool
        Also return the wall time per problem in seconds, ``[P]``.

    Returns
    -------
    SubsetSumResult or (SubsetSumResult, ndarray)
        Rows where HiGHS returns no solution get the empty subset (never raises).
    """
    from scipy.optimize import Bounds, LinearConstraint
    from scipy.optimize import milp as _milp

    prob = prepare(values, targets, valid)
    v = prob.values.cpu().numpy()
    t = prob.targets.cpu().numpy()
    ok = np.ones_like(v, dtype=bool) if prob.valid is None else prob.valid.cpu().numpy()
    p, n = v.shape
    c = np.zeros(n + 1)
    c[-1] = 1.0
    integrality = np.r_[np.ones(n), 0.0]
    options: dict[str, Any] = {"disp": False}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    if mip_rel_gap is not None:
        options["mip_rel_gap"] = float(mip_rel_gap)
    chosen = np.zeros((p, n), dtype=bool)
    times = np.zeros(p)
    for i in range(p):
        # sum a x - z <= t  and  sum a x + z >= t
        a = np.vstack([np.r_[v[i], -1.0], np.r_[v[i], 1.0]])
        cons = LinearConstraint(a, [-np.inf, t[i]], [t[i], np.inf])
        bounds = Bounds(np.zeros(n + 1), np.r_[ok[i].astype(np.float64), np.inf])
        t0 = time.perf_counter()
        res = _milp(c, constraints=cons, integrality=integrality, bounds=bounds, options=options)
        times[i] = time.perf_counter() - t0
        if res.x is not None:
            chosen[i] = (res.x[:n] > 0.5) & ok[i]
    out = finish(prob, torch.from_numpy(chosen).to(prob.values.device), None)
    return (out, times) if return_times else out
