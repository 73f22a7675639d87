r"""Compiled CPU kernel (numba) for exact batched Subset-Sum, Horowitz--Sahni style.

Per row, the valid summands are split into halves :math:`A` (the first
:math:`\lceil k/2 \rceil` valid ones) and :math:`B` (the rest; padded entries
take part in neither).  Each half's :math:`2^{h}` subset sums are generated
**already sorted** by repeated merging: start from ``[0]`` and for each element
``x`` merge the sorted list ``L`` with ``L + x`` (also sorted, since
floating-point addition of a constant is monotone), carrying the subset bitmask
alongside -- :math:`O(2^h)` per half, no comparison sort.

*Closest pair.*  With ``f(i, j) = fl(fl(a_i + b_j) - t)`` monotone in both
indices, a two-pointer scan (``i`` ascending over ``a``, ``j`` descending over
``b``; advance ``i`` while ``f < 0``, else retreat ``j``) visits the minimiser of
``|f|``: every discarded pair is dominated by a visited one.  Exact for the
computed half sums.

*Fewest mode.*  For fixed ``i`` the partners with ``|f(i, j)| <= tol`` form a
contiguous window of the sorted ``b``; scanning ``i`` *descending* both window
ends move right, so the minimum popcount in the window is maintained by a
sliding-window minimum (monotonic deque): :math:`O(2^{h_A} + 2^{h_B})` per row.
The answer is :math:`\min_i \mathrm{pc}(a_i) + \min_{\mathrm{window}(i)}
\mathrm{pc}(b)`, i.e. exact over all pairs.  Rows without any within-``tol``
pair keep the minimum-residual pair.

Rows are parallelised with ``numba.prange`` over chunks; each chunk allocates its
scratch buffers once.  ``cache=True`` stores the compiled code in the package's
``__pycache__`` (or numba's fallback cache directory when that is not
writable), so only the first process pays the JIT compile.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["solve_rows", "warm_up"]


@njit(cache=True, nogil=True, inline="always")
def _popcount(m: int) -> int:
    m = m - ((m >> 1) & 0x55555555)
    m = (m & 0x33333333) + ((m >> 2) & 0x33333333)
    m = (m + (m >> 4)) & 0x0F0F0F0F
    return ((m * 0x01010101) & 0xFFFFFFFF) >> 24


@njit(cache=True, nogil=True)
def _sorted_sums(x, idx, lo, hi, s0, m0, s1, m1):
    """All subset sums of ``x[idx[lo:hi]]`` in ascending order with their bitmasks.

    Bit ``b`` of a mask stands for element ``idx[lo + b]``.  Ping-pongs between
    the buffers ``(s0, m0)`` and ``(s1, m1)``; returns ``(which, size)`` where
    ``which`` is 0 or 1 naming the buffer that holds the result.
    """
    s0[0] = 0.0
    m0[0] = 0
    size = 1
    cur = 0
    for b in range(hi - lo):
        xv = x[idx[lo + b]]
        bit = np.int32(1 << b)
        if cur == 0:
            src, srcm, dst, dstm = s0, m0, s1, m1
        else:
            src, srcm, dst, dstm = s1, m1, s0, m0
        src[size] = 0.0  # readable slot past the end; never selected
        srcm[size] = 0
        i = 0
        j = 0
        for k in range(2 * size):  # branch-free merge of src and src + xv
            a = src[i]
            c = src[j] + xv
            take_a = (i < size) & ((j >= size) | (a <= c))
            dst[k] = a if take_a else c
            dstm[k] = srcm[i] if take_a else (srcm[j] | bit)
            i += take_a
            j += 1 - take_a
        size *= 2
        cur = 1 - cur
    return cur, size


@njit(cache=True, nogil=True)
def _closest(sa, na, sb, nb, t):
    """Two-pointer minimiser of ``|sa[i] + sb[j] - t|`` over sorted ``sa``, ``sb``."""
    i = 0
    j = nb - 1
    bi = 0
    bj = nb - 1
    best = np.inf
    while i < na and j >= 0:
        f = (sa[i] + sb[j]) - t
        af = abs(f)
        if af < best:
            best = af
            bi = i
            bj = j
            if af == 0.0:
                break
        step = f < 0.0
        i += step
        j -= 1 - step
    return bi, bj


@njit(cache=True, nogil=True)
def _fewest(sa, ma, na, sb, mb, nb, t, tol, pcb, dq):
    """Pair ``(i, j)`` with ``|sa[i] + sb[j] - t| <= tol`` minimising the popcount sum.

    Returns ``(i, j)`` or ``(-1, -1)`` when no pair is within ``tol``.
    """
    for j in range(nb):
        pcb[j] = _popcount(mb[j])
    lo = 0  # first j with f(i, j) >= -tol
    hi = 0  # one past the last j with f(i, j) <= tol
    head = 0
    tail = 0  # deque dq[head:tail] of indices with increasing pcb
    best = 1 << 30
    bi = -1
    bj = -1
    for i in range(na - 1, -1, -1):
        a = sa[i]
        while lo < nb and (a + sb[lo]) - t < -tol:
            lo += 1
        while hi < nb and (a + sb[hi]) - t <= tol:
            p = pcb[hi]
            while tail > head and pcb[dq[tail - 1]] >= p:
                tail -= 1
            dq[tail] = hi
            tail += 1
            hi += 1
        while tail > head and dq[head] < lo:
            head += 1
        if tail > head:
            tot = _popcount(ma[i]) + pcb[dq[head]]
            if tot < best:
                best = tot
                bi = i
                bj = dq[head]
                if tot == 0:
                    break
    return bi, bj


@njit(cache=True, nogil=True, parallel=True)
def solve_rows(values, targets, valid, tol, fewest, chosen, n_chunks):
    """Fill ``chosen`` [P, N] (bool, zero-initialised) with an exact solution per row.

    ``values`` [P, N] float64, ``targets`` [P] float64, ``valid`` [P, N] bool;
    ``tol < 0`` means no tolerance.  With ``fewest`` (and ``tol >= 0``) the
    fewest-elements within-``tol`` subset is chosen where one exists.
    """
    p, n = values.shape
    k_max = min(n, 32)
    h_max = (k_max + 1) // 2
    m_max = (1 << h_max) + 1  # + 1 slot read past the end by the merge
    per = (p + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        r0 = c * per
        r1 = min(p, r0 + per)
        if r0 >= r1:
            continue
        sa0 = np.empty(m_max, np.float64)
        sa1 = np.empty(m_max, np.float64)
        ma0 = np.empty(m_max, np.int32)
        ma1 = np.empty(m_max, np.int32)
        sb0 = np.empty(m_max, np.float64)
        sb1 = np.empty(m_max, np.float64)
        mb0 = np.empty(m_max, np.int32)
        mb1 = np.empty(m_max, np.int32)
        pcb = np.empty(m_max if fewest else 1, np.int32)
        dq = np.empty(m_max if fewest else 1, np.int64)
        idx = np.empty(n, np.int64)
        for r in range(r0, r1):
            k = 0
            for q in range(n):
                if valid[r, q]:
                    idx[k] = q
                    k += 1
            h_a = (k + 1) // 2
            x = values[r]
            t = targets[r]
            wa, na = _sorted_sums(x, idx, 0, h_a, sa0, ma0, sa1, ma1)
            wb, nb = _sorted_sums(x, idx, h_a, k, sb0, mb0, sb1, mb1)
            sa = sa0 if wa == 0 else sa1
            ma = ma0 if wa == 0 else ma1
            sb = sb0 if wb == 0 else sb1
            mb = mb0 if wb == 0 else mb1
            i, j = _closest(sa, na, sb, nb, t)
            if fewest:
                fi, fj = _fewest(sa, ma, na, sb, mb, nb, t, tol, pcb, dq)
                if fi >= 0:
                    i = fi
                    j = fj
            mask_a = ma[i]
            mask_b = mb[j]
            for b in range(h_a):
                if (mask_a >> b) & 1:
                    chosen[r, idx[b]] = True
            for b in range(k - h_a):
                if (mask_b >> b) & 1:
                    chosen[r, idx[h_a + b]] = True


def warm_up() -> float:
    """Compile (or load from the on-disk cache) the kernel; returns seconds taken."""
    import time

    t0 = time.perf_counter()
    v = np.zeros((1, 2))
    chosen = np.zeros((1, 2), dtype=np.bool_)
    solve_rows(v, np.zeros(1), np.ones((1, 2), dtype=np.bool_), 0.0, True, chosen, 1)
    return time.perf_counter() - t0


def num_threads() -> int:
    """Threads numba's ``prange`` uses."""
    return int(numba.get_num_threads())
