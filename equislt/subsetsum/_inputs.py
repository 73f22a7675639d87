"""Input validation and library/dtype round-tripping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._report import SubsetSumResult

__all__ = ["Problem", "prepare", "finish"]


@dataclass
class Problem:
    """Validated batch in float64 torch tensors (``values`` zeroed where invalid)."""

    values: torch.Tensor  # [P, N] float64
    targets: torch.Tensor  # [P] float64
    valid: torch.Tensor | None  # [P, N] bool
    as_torch: bool
    out_dtype: torch.dtype
    out_device: torch.device


_NUMPY_DTYPES = {torch.float16, torch.float32, torch.float64, torch.int8, torch.int16,
                 torch.int32, torch.int64, torch.uint8}


def _numpy_ok(x: torch.Tensor) -> bool:
    """CPU tensor whose dtype numpy represents exactly (shares memory via ``.numpy()``)."""
    return x.device.type == "cpu" and x.dtype in _NUMPY_DTYPES


def _as_tensor(x: Any, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x.detach(), True
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"`{name}` must be array-like, got {type(x).__name__}") from exc
    if arr.dtype == object:
        raise ValueError(f"`{name}` must be a numeric array, got dtype=object")
    return torch.from_numpy(np.ascontiguousarray(arr)), False


def prepare(
    values: Any,
    targets: Any,
    valid: Any = None,
    *,
    tol: float | None = None,
    fewest: bool = False,
    device: Any = None,
    max_n: int | None = None,
    max_n_reason: str = "exact meet-in-the-middle",
) -> Problem:
    """Validate inputs and convert them to float64 tensors on the compute device.

    Raises
    ------
    ValueError
        Naming the offending argument for bad shapes, dtypes, non-finite
        entries, mismatched lengths, ``N > max_n`` or a bad ``tol``.
    """
    v, as_torch = _as_tensor(values, "values")
    t, _ = _as_tensor(targets, "targets")
    if v.ndim != 2:
        raise ValueError(f"`values` must have shape [P, N], got shape {tuple(v.shape)}")
    if t.ndim != 1:
        raise ValueError(f"`targets` must have shape [P], got shape {tuple(t.shape)}")
    p, n = v.shape
    if t.shape[0] != p:
        raise ValueError(f"`targets` has length {t.shape[0]} but `values` has P={p} rows")
    for name, x in (("values", v), ("targets", t)):
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"`{name}` must be real floating point, got {x.dtype}")
    if max_n is not None and n > max_n:
        raise ValueError(
            f"`values` has N={n} summands per row; {max_n_reason} supports N <= {max_n}"
        )
    out_dtype = v.dtype if v.is_floating_point() else torch.float64
    out_device = v.device
    dev = torch.device(device) if device is not None else v.device
    m: torch.Tensor | None = None
    if valid is not None:
        m, _ = _as_tensor(valid, "valid")
        if tuple(m.shape) != (p, n):
            raise ValueError(f"`valid` must have shape {(p, n)} like `values`, got {tuple(m.shape)}")
        if m.dtype != torch.bool:
            if m.is_floating_point() or m.is_complex():
                raise ValueError(f"`valid` must be boolean, got {m.dtype}")
            m = m != 0
        m = m.to(dev)
    if dev.type == "cpu" and _numpy_ok(v) and _numpy_ok(t) and (m is None or m.device.type == "cpu"):
        # same checks and conversions in (single-threaded) numpy: torch's intra-op
        # threads add large fixed latencies per op on a busy machine
        v64n = np.array(v.numpy(), dtype=np.float64, order="C")
        t64n = np.array(t.numpy(), dtype=np.float64, order="C")
        if not np.isfinite(v64n).all():
            raise ValueError("`values` contains NaN or infinite entries")
        if not np.isfinite(t64n).all():
            raise ValueError("`targets` contains NaN or infinite entries")
        if m is not None:
            v64n[~m.numpy()] = 0.0
        v64, t64 = torch.from_numpy(v64n), torch.from_numpy(t64n)
    else:
        v64 = v.to(device=dev, dtype=torch.float64)
        t64 = t.to(device=dev, dtype=torch.float64)
        if not bool(torch.isfinite(v64).all()):
            raise ValueError("`values` contains NaN or infinite entries")
        if not bool(torch.isfinite(t64).all()):
            raise ValueError("`targets` contains NaN or infinite entries")
        if m is not None:
            v64 = torch.where(m, v64, torch.zeros((), dtype=torch.float64, device=dev))
    if tol is not None:
        tol = float(tol)
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"`tol` must be a finite number >= 0, got {tol}")
    if fewest and tol is None:
        raise ValueError("`fewest=True` requires a tolerance `tol`")
    return Problem(v64.contiguous(), t64.contiguous(), m, as_torch, out_dtype, out_device)


def finish(prob: Problem, chosen: torch.Tensor, tol: float | None) -> SubsetSumResult:
    """Recompute residuals from ``chosen`` and convert back to the caller's library."""
    if prob.values.device.type == "cpu" and chosen.device.type == "cpu":
        ch = chosen.numpy()
        if prob.valid is not None:
            ch = ch & prob.valid.numpy()
        # values are zeroed where invalid: a masked row sum (single-threaded numpy)
        res_np = np.where(ch, prob.values.numpy(), 0.0).sum(axis=1) - prob.targets.numpy()
        chosen, residual = torch.from_numpy(ch), torch.from_numpy(res_np)
    else:
        if prob.valid is not None:
            chosen = chosen & prob.valid
        residual = (prob.values * chosen).sum(dim=1) - prob.targets
    chosen = chosen.to(prob.out_device)
    residual = residual.to(device=prob.out_device, dtype=prob.out_dtype)
    if not prob.as_torch:
        chosen = chosen.cpu().numpy()
        residual = residual.cpu().numpy()
    return SubsetSumResult(chosen=chosen, residual=residual, tol=tol)
