"""Result and report containers shared by the exact and reference solvers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["SubsetSumResult", "SubsetSumReport"]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass(frozen=True)
class SubsetSumReport:
    """Summary statistics of a batch of Subset-Sum solutions.

    Attributes
    ----------
    n_problems : int
        Number of rows ``P``.
    tol : float or None
        Tolerance used to count failures (``None``: nothing is counted).
    median, q90, q99, max : float
        Quantiles of ``|residual|`` (NaN when ``P == 0``).
    n_above_tol : int
        Rows with ``|residual| > tol``.
    frac_above_tol : float
        ``n_above_tol / P`` (0.0 when ``P == 0``).
    mean_size : float
        Mean number of chosen summands ``|S|``.
    """

    n_problems: int
    tol: float | None
    median: float
    q90: float
    q99: float
    max: float
    n_above_tol: int
    frac_above_tol: float
    mean_size: float

    @property
    def ok(self) -> bool:
        """``True`` when no row exceeds ``tol``."""
        return self.n_above_tol == 0

    def as_dict(self) -> dict[str, Any]:
        """Plain-``dict`` view (JSON serialisable)."""
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (
            f"SubsetSumReport(P={self.n_problems}, |r| median={self.median:.3g}, "
            f"90%={self.q90:.3g}, 99%={self.q99:.3g}, max={self.max:.3g}, "
            f"above tol={self.tol}: {self.n_above_tol} ({100 * self.frac_above_tol:.3g}%), "
            f"mean |S|={self.mean_size:.3g})"
        )


@dataclass(frozen=True)
class SubsetSumResult:
    """Solutions of a batch of Subset-Sum problems.

    Attributes
    ----------
    chosen : bool array/tensor [P, N]
        Chosen subset ``S`` per row (never contains invalid/padded entries).
    residual : float array/tensor [P]
        Signed residual ``sum_{i in S} x_i - t``.
    tol : float or None
        Tolerance the problem was solved with (default for :meth:`report`).
    """

    chosen: Any
    residual: Any
    tol: float | None = None

    @property
    def abs_residual(self) -> Any:
        """``|residual|`` in the same library/dtype as ``residual``."""
        return abs(self.residual)

    @property
    def size(self) -> Any:
        """Number of chosen summands per row, ``|S|``."""
        return self.chosen.sum(-1)

    def report(self, tol: float | None = None) -> SubsetSumReport:
        """Summarise residuals; never raises on failed rows.

        Parameters
        ----------
        tol : float, optional
            Failure threshold on ``|residual|``; defaults to ``self.tol``.
        """
        tol = self.tol if tol is None else float(tol)
        r = np.abs(_to_numpy(self.residual).astype(np.float64)).reshape(-1)
        chosen = _to_numpy(self.chosen)
        p = int(r.shape[0])
        if p == 0:
            nan = float("nan")
            return SubsetSumReport(0, tol, nan, nan, nan, nan, 0, 0.0, nan)
        med, q90, q99 = (float(q) for q in np.quantile(r, [0.5, 0.9, 0.99]))
        n_above = int(np.count_nonzero(r > tol)) if tol is not None else 0
        return SubsetSumReport(
            n_problems=p,
            tol=tol,
            median=med,
            q90=q90,
            q99=q99,
            max=float(r.max()),
            n_above_tol=n_above,
            frac_above_tol=n_above / p,
            mean_size=float(chosen.sum(-1).mean()) if chosen.size else 0.0,
        )
