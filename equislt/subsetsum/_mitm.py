r"""Exact batched Subset-Sum by meet-in-the-middle (Horowitz--Sahni).

For one row with summands :math:`x \in \mathbb{R}^N` and target :math:`t`, split
the indices into halves :math:`A` (first :math:`h_1 = \lceil N/2 \rceil`) and
:math:`B`.  Every subset is :math:`S = S_A \cup S_B`, so

.. math::  \min_S \Big|\sum_{i\in S} x_i - t\Big|
           = \min_{a \in \Sigma_A,\; u \in U} |a - u|,
   \qquad \Sigma_A = \{\textstyle\sum_{S_A} x\},\quad U = \{t - \textstyle\sum_{S_B} x\}.

The closest pair between two finite sets of reals is adjacent in their sorted
union (any point strictly between them would form a closer cross pair), so one
sort of :math:`2^{h_1} + 2^{h_2}` numbers per row solves the row exactly:
:math:`O(2^{N/2} N)` time.  On CPU the default is the compiled numba kernel of
:mod:`._numba` (half sums generated already sorted by merging, then a linear
scan: :math:`O(2^{N/2})`, rows in parallel).  The fallbacks process rows in
memory-bounded chunks: batched torch ops (``torch.sort`` + labels) on
accelerators (``backend="torch"``), and on CPU a numpy value sort (set label in
the lowest mantissa bit) over threads (``backend="numpy"``: chosen explicitly,
or for rows whose sums overflow the numba kernel's sentinels).

*Fewest mode.*  With ``tol`` we look for a within-tolerance subset with the
fewest elements: :math:`\min\{|S_A| + |S_B| : |a - u| \le \mathrm{tol}\}`.  Sort
:math:`U`; for each :math:`a` the admissible partners form the contiguous window
:math:`[a-\mathrm{tol}, a+\mathrm{tol}]` of sorted :math:`U` (two searchsorted
calls) and the smallest popcount in that window is a range-minimum query,
answered in :math:`O(1)` from a sparse table.  This is exact, as it minimises
over all pairs.  Among the pairs of that fewest size the closest to ``t`` is
returned (ties in size broken by the residual, as the brute-force reference
does): per popcount ``q`` of the ``B`` half, a searchsorted of every ``a`` into
the sorted ``U`` of popcount ``q``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ._inputs import finish, prepare
from ._report import SubsetSumResult

__all__ = ["BACKENDS", "MAX_N", "solve"]

BACKENDS = ("numba", "numpy", "torch")
"""Kernels :func:`solve` can use (``backend=``)."""

MAX_N = 32
"""Largest ``N`` supported by :func:`solve` (2^16 half-sums per half and row)."""

_BIG = torch.iinfo(torch.int64).max // 4

_CPU_CHUNK_BYTES = 2**22  # per-thread working set of the numpy CPU path

def _numba_module() -> Any:
    """The compiled kernel module :mod:`._numba` (imported on first use: numba compiles its kernels then)."""
    from . import _numba

    return _numba


_bits_cache: dict[tuple[int, str], torch.Tensor] = {}


def _bits(h: int, device: torch.device) -> torch.Tensor:
    """``[2^h, h]`` float64 table whose row ``k`` holds the binary digits of ``k``."""
    key = (h, str(device))
    b = _bits_cache.get(key)
    if b is None:
        k = torch.arange(1 << h, device=device)
        b = ((k[:, None] >> torch.arange(h, device=device)) & 1).to(torch.float64)
        _bits_cache[key] = b
    return b


def _floor_log2(x: torch.Tensor) -> torch.Tensor:
    """Exact ``floor(log2(x))`` for positive int64 ``x`` (float estimate + fix-up)."""
    j = torch.floor(torch.log2(x.to(torch.float64))).to(torch.int64)
    j = j - ((1 << j) > x).to(torch.int64)
    return j + ((1 << (j + 1)) <= x).to(torch.int64)


def _row_bytes(m_a: int, m_b: int, n: int, fewest: bool) -> int:
    """Conservative peak bytes per row of one chunk."""
    b = 96 * (m_a + m_b) + 64 * n
    if fewest:
        levels = max(m_b.bit_length(), 1)
        b += 8 * m_b * (levels + 6) + 64 * m_a
    return b


def _closest(
    sa: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` minimising ``|sa[:, i] - u[:, j]|`` per row (union sort)."""
    m_a = sa.shape[1]
    z = torch.cat([sa, u], dim=1)
    zs, perm = torch.sort(z, dim=1)
    del z
    is_b = perm >= m_a
    gap = zs[:, 1:] - zs[:, :-1]
    gap.masked_fill_(is_b[:, 1:] == is_b[:, :-1], float("inf"))
    k = gap.argmin(dim=1, keepdim=True)
    p0 = perm.gather(1, k).squeeze(1)
    p1 = perm.gather(1, k + 1).squeeze(1)
    first_a = p0 < m_a
    ia = torch.where(first_a, p0, p1)
    jb = torch.where(first_a, p1, p0) - m_a
    return ia, jb


def _half_sums_np(x: np.ndarray) -> np.ndarray:
    """All ``2^h`` subset sums of the rows of ``x`` [r, h]; bit ``i`` of the column index = element ``i``."""
    r, h = x.shape
    s = np.empty((r, 1 << h))
    s[:, 0] = 0.0
    w = 1
    for i in range(h):  # S_{i+1} = [S_i, S_i + x_i]
        np.add(s[:, :w], x[:, i : i + 1], out=s[:, w : 2 * w])
        w *= 2
    return s


def _closest_np(v: np.ndarray, t: np.ndarray, h_a: int) -> tuple[np.ndarray, np.ndarray]:
    """CPU version of :func:`_closest` for one chunk, from the summands directly.

    The set label (A or U) is stored in the lowest mantissa bit, so a plain
    value sort (no index tracking) suffices; this perturbs each half sum by at
    most one ulp, and the closest pair is exact for the perturbed values.
    """
    sa = _half_sums_np(v[:, :h_a])
    m_a = sa.shape[1]
    z = np.concatenate([sa, t[:, None] - _half_sums_np(v[:, h_a:])], axis=1)
    zi = z.view(np.int64)
    zi[:, :m_a] &= ~np.int64(1)
    zi[:, m_a:] |= np.int64(1)
    zs = np.sort(z, axis=1)
    lab = zs.view(np.int64) & 1
    gap = np.diff(zs, axis=1)
    gap[lab[:, 1:] == lab[:, :-1]] = np.inf
    k = gap.argmin(axis=1)[:, None]
    z0 = np.take_along_axis(zs, k, 1)
    z1 = np.take_along_axis(zs, k + 1, 1)
    first_a = np.take_along_axis(lab, k, 1) == 0
    za = np.where(first_a, z0, z1)
    zu = np.where(first_a, z1, z0)
    ia = (z[:, :m_a] == za).argmax(axis=1)
    jb = (z[:, m_a:] == zu).argmax(axis=1)
    return ia, jb


def _fewest(
    sa: torch.Tensor, u: torch.Tensor, tol: float, h_a: int, h_b: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fewest-elements pair with ``|sa_i - u_j| <= tol``; returns ``(ok, i, j)``."""
    dev = sa.device
    r, m_b = u.shape
    us, uperm = torch.sort(u, dim=1)
    pc_a = _bits(h_a, dev).sum(1).to(torch.int64)  # popcount of A-index
    pc_b = _bits(h_b, dev).sum(1).to(torch.int64)
    pos = torch.arange(m_b, device=dev)
    # key = popcount * m_b + position: its minimum gives min popcount (leftmost).
    key = pc_b[uperm] * m_b + pos
    levels = [key]
    step = 1
    while 2 * step <= m_b:
        prev = levels[-1]
        nxt = prev.clone()
        nxt[:, : m_b - step] = torch.minimum(prev[:, : m_b - step], prev[:, step:])
        levels.append(nxt)
        step *= 2
    table = torch.stack(levels, dim=1).reshape(r, -1)  # [r, L * m_b]
    del levels
    lo = torch.searchsorted(us, sa - tol, side="left")
    hi = torch.searchsorted(us, sa + tol, side="right")
    length = hi - lo
    nonempty = length > 0
    j = _floor_log2(length.clamp(min=1))
    lo_c = lo.clamp(max=m_b - 1)
    right = (hi - (1 << j)).clamp(min=0, max=m_b - 1)
    q = torch.minimum(table.gather(1, j * m_b + lo_c), table.gather(1, j * m_b + right))
    del table
    total = torch.where(nonempty, pc_a + q // m_b, torch.full_like(q, _BIG))
    best, ia = total.min(dim=1)
    ok = best < _BIG
    qpos = (q.gather(1, ia[:, None]).squeeze(1) % m_b).clamp(min=0)
    jb = uperm.gather(1, qpos[:, None]).squeeze(1)
    return ok, ia, jb


def _closest_of_size(
    sa: torch.Tensor, u: torch.Tensor, ia: torch.Tensor, jb: torch.Tensor, h_a: int, h_b: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, among pairs as large as ``(ia, jb)`` (``pc(i) + pc(j)`` equal) the ``(i, j)`` minimising
    ``|sa_i - u_j|``."""
    dev = sa.device
    pc_a = _bits(h_a, dev).sum(1).to(torch.int64)
    pc_b = _bits(h_b, dev).sum(1).to(torch.int64)
    size = pc_a[ia] + pc_b[jb]
    best = (sa.gather(1, ia[:, None]) - u.gather(1, jb[:, None])).abs().squeeze(1)
    ia, jb = ia.clone(), jb.clone()
    for q in range(h_b + 1):
        columns = torch.nonzero(pc_b == q).squeeze(1)
        if columns.numel() == 0:
            continue
        us, order = torch.sort(u[:, columns], dim=1)
        right = torch.searchsorted(us, sa.contiguous())
        wanted = (size[:, None] - pc_a[None, :]) == q
        for k in (right - 1, right):
            inside = (k >= 0) & (k < columns.numel()) & wanted
            kc = k.clamp(0, columns.numel() - 1)
            gap = torch.where(inside, (sa - us.gather(1, kc)).abs(), torch.full_like(sa, float("inf")))
            value, i = gap.min(dim=1)
            better = value < best
            best = torch.where(better, value, best)
            j = columns[order.gather(1, kc.gather(1, i[:, None])).squeeze(1)]
            ia, jb = torch.where(better, i, ia), torch.where(better, j, jb)
    return ia, jb


def _pick_backend(backend: str | None, dev: torch.device, v: torch.Tensor, t: torch.Tensor) -> str:
    """Resolve ``backend=None`` and validate an explicit choice."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS} or None, got {backend!r}")
    if backend in ("numba", "numpy") and dev.type != "cpu":
        raise ValueError(f"`backend={backend!r}` runs on CPU only, got device {dev}")
    if backend is None:
        if dev.type != "cpu":
            return "torch"
        backend = "numba"
    if backend == "numba" and v.numel() > 0:
        # the compiled kernel uses +-inf sentinels: all subset sums must be finite
        vn, tn = v.numpy(), t.numpy()
        with np.errstate(over="ignore"):
            bound = np.abs(vn).sum(axis=1) + np.abs(tn)
        if not np.isfinite(bound).all():
            return "numpy"
    return backend


def _solve_numba(prob: Any, tol: float | None, fewest: bool) -> np.ndarray:
    """Run the compiled kernel on a validated CPU problem; returns ``chosen`` [P, N]."""
    valid = None if prob.valid is None else np.ascontiguousarray(prob.valid.numpy())
    v = prob.values.numpy()
    if valid is None:
        valid = np.ones(v.shape, dtype=np.bool_)
    return _numba_module().solve(v, prob.targets.numpy(), valid, tol, fewest)


def solve(
    values: Any,
    targets: Any,
    valid: Any = None,
    *,
    tol: float | None = None,
    fewest: bool = False,
    max_memory_bytes: int = 2**30,
    device: Any = None,
    backend: str | None = None,
) -> SubsetSumResult:
    r"""Solve ``P`` independent Subset-Sum problems exactly (meet-in-the-middle).

    For each row ``p`` find :math:`S \subseteq \{i : \mathrm{valid}_{p,i}\}`
    minimising :math:`|\sum_{i \in S} x_{p,i} - t_p|`; cost per row
    :math:`O(2^{N/2})` with the compiled kernel (default on CPU),
    :math:`O(2^{N/2} N)` with the sort-based ones.

    Parameters
    ----------
    values : array or tensor [P, N]
        Summands (float32/float64; computed in float64), ``N <= 32``.
    targets : array or tensor [P]
        Targets ``t``.
    valid : bool array or tensor [P, N], optional
        Which summands may be used (padding); invalid ones are never chosen.
    tol : float, optional
        Acceptable ``|residual|``.  Without ``fewest`` the minimum-residual subset
        is returned (within ``tol`` whenever any subset is); stored for reports.
    fewest : bool
        Among subsets with ``|residual| <= tol`` return one with the fewest
        elements (the closest to ``t`` among those); rows with none fall back to the minimum-residual subset.
    max_memory_bytes : int
        Peak working-memory budget of the sort-based backends; rows are
        processed in chunks to respect it (at least one row per chunk).  The
        numba kernel needs only ``O(threads * 2^(N/2))`` scratch besides the
        ``[P, N]`` in/outputs and ignores it.
    device : str or torch.device, optional
        Compute device (e.g. ``"cuda"``); defaults to the input's device.
    backend : {"numba", "numpy", "torch"}, optional
        Kernel (mainly for tests and benchmarks; see :data:`BACKENDS`).  Default:
        ``"numba"`` on CPU and ``"torch"`` on other devices.  ``"numba"``: compiled Horowitz--Sahni
        (half sums generated sorted by merging + linear closest-pair scan, rows
        in parallel with ``numba.prange``; see :mod:`._numba`); it needs every
        subset sum to be finite, so batches with ``sum |x| + |t|`` overflowing
        float64 go to ``"numpy"``.  ``"numpy"``: per-chunk value sort over
        threads (CPU).  ``"torch"``: batched ``torch.sort`` (any device).
        All give minimal ``|residual|`` (and, with ``fewest``, minimal size);
        ties may resolve to different subsets.

    Returns
    -------
    SubsetSumResult
        ``chosen`` [P, N] bool and signed ``residual`` [P] (``sum chosen - t``),
        numpy in -> numpy out, torch in -> torch out (input device and dtype).

    Raises
    ------
    ValueError
        Bad shapes, non-finite entries, ``N > 32``, bad ``tol``/``max_memory_bytes``,
        unknown ``backend`` or a CPU-only backend on another device.
    """
    if int(max_memory_bytes) <= 0:
        raise ValueError(f"`max_memory_bytes` must be positive, got {max_memory_bytes}")
    prob = prepare(
        values, targets, valid, tol=tol, fewest=fewest, device=device, max_n=MAX_N,
        max_n_reason="exact meet-in-the-middle (2^(N/2) half-sums per problem held in memory)",
    )
    tol = None if tol is None else float(tol)
    v, t = prob.values, prob.targets
    p, n = v.shape
    dev = v.device
    backend = _pick_backend(backend, dev, v, t)
    if backend == "numba":
        chosen = torch.zeros((p, n), dtype=torch.bool)
        if p > 0:
            chosen = torch.from_numpy(_solve_numba(prob, tol, fewest))
        return finish(prob, chosen, tol)
    return finish(prob, _solve_sorted(v, t, tol, fewest, backend, int(max_memory_bytes)), tol)


def _solve_sorted(v: torch.Tensor, t: torch.Tensor, tol: float | None, fewest: bool, backend: str,
                  max_memory_bytes: int) -> torch.Tensor:
    """The sort-based backends (``"numpy"``, ``"torch"``): ``chosen`` [P, N], rows in chunks within the memory
    budget."""
    p, n = v.shape
    dev = v.device
    h_a = (n + 1) // 2
    h_b = n - h_a
    bits_a, bits_b = _bits(h_a, dev), _bits(h_b, dev)
    m_a, m_b = bits_a.shape[0], bits_b.shape[0]
    rows = max(1, max_memory_bytes // _row_bytes(m_a, m_b, n, fewest))
    chosen = torch.zeros((p, n), dtype=torch.bool, device=dev)
    pair = _closest_pairs_numpy(v, t, h_a, rows, m_a, m_b) if backend == "numpy" and p > 0 else None
    with torch.no_grad():
        for s in range(0, p, rows):
            e = min(p, s + rows)
            if pair is not None:
                ia, jb = pair[0][s:e], pair[1][s:e]
            if pair is None or fewest:
                sa = v[s:e, :h_a] @ bits_a.T  # [r, 2^h_a] half sums
                u = t[s:e, None] - v[s:e, h_a:] @ bits_b.T  # [r, 2^h_b] t - half sums
                if pair is None:
                    ia, jb = _closest(sa, u)
                if fewest:
                    assert tol is not None
                    ok, fa, fb = _fewest(sa, u, tol, h_a, h_b)
                    if bool(ok.any()):
                        fa, fb = _closest_of_size(sa, u, fa, fb, h_a, h_b)
                    ia = torch.where(ok, fa, ia)
                    jb = torch.where(ok, fb, jb)
                del sa, u
            chosen[s:e, :h_a] = bits_a[ia] > 0
            chosen[s:e, h_a:] = bits_b[jb] > 0
    return chosen


def _closest_pairs_numpy(v: torch.Tensor, t: torch.Tensor, h_a: int, rows: int, m_a: int,
                         m_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ia, jb)`` of the closest pair for every row with numpy value sorts (about twice as fast as
    ``torch.sort`` with indices on CPU): small chunks stay in cache, threads use all cores (numpy drops the GIL)."""
    p, n = v.shape
    threads = max(1, torch.get_num_threads())
    cache_rows = _CPU_CHUNK_BYTES // _row_bytes(m_a, m_b, n, False)
    step = max(1, min(rows // threads, cache_rows))
    spans = [(s, min(p, s + step)) for s in range(0, p, step)]
    v_np, t_np = v.numpy(), t.numpy()
    with ThreadPoolExecutor(min(threads, len(spans))) as ex:
        parts = list(ex.map(lambda se: _closest_np(v_np[se[0] : se[1]], t_np[se[0] : se[1]], h_a), spans))
    return (torch.from_numpy(np.concatenate([a for a, _ in parts])),
            torch.from_numpy(np.concatenate([b for _, b in parts])))
