r"""Compiled CPU kernel (numba) for exact batched Subset-Sum, Horowitz--Sahni style.

Per row, the valid summands are split into halves :math:`A` (the first
:math:`\lceil k/2 \rceil` valid ones) and :math:`B` (the rest; padded entries
take part in neither).  Each half's :math:`2^{h}` subset sums are generated
**already sorted** by repeated merging: start from ``[0]`` and for each element
``x`` merge the sorted list ``L`` with ``L + x`` (also sorted, since
floating-point addition of a constant is monotone) -- :math:`O(2^h)` per half,
no comparison sort.  The merges are branch-free and bidirectional (smallest
half front-to-back, largest half back-to-front), and both halves are merged in
the same loop: four independent dependency chains.

*Closest pair.*  With ``u = t - b`` sorted ascending, the closest cross pair
``min |a - u|`` is adjacent in the merged order of ``a`` and ``u``, and a
merge compares exactly those adjacent cross pairs as its two heads.  The merge
is cut at its midpoint (merge-path binary search) and each part is run from
both ends: a linear, exact scan in four chains (:func:`_closest`).

*Subset recovery.*  The plain path carries no bitmasks through the merges: the
winning half-sum values are looked up afterwards among the unsorted subset sums
regenerated with the very same floating-point additions in the same order
(``S_{b+1} = [S_b, S_b + x_b]``), so they match bitwise (:func:`_find_mask`).

*Fewest mode.*  The merges carry bitmasks.  For fixed ``i`` the partners with
``|f(i, j)| <= tol``, ``f = fl(fl(a_i + b_j) - t)`` (monotone in both indices),
form a contiguous window of the sorted ``b``; scanning ``i`` *descending* both
window ends move right, so the minimum popcount in the window is maintained by
a sliding-window minimum (monotonic deque): :math:`O(2^{h_A} + 2^{h_B})` per
row.  The answer :math:`\min_i \mathrm{pc}(a_i) + \min_{\mathrm{window}(i)}
\mathrm{pc}(b)` is exact over all pairs.  Among the pairs of that size the one
closest to ``t`` is then found (:func:`_closest_of_size`): the sorted ``b``
sums grouped by popcount (a stable counting sort keeps each group sorted) and,
for every ``i``, a binary search in the group of popcount
``size - pc(a_i)``: :math:`O(2^{h_B} + 2^{h_A} h_B)`.  Rows whose closest pair
is not within ``tol`` skip this and keep the minimum-residual pair.

*Small subsets first.*  In fewest mode most rows of a sparse construction are
met by at most four summands.  Those subsets are searched first
(:func:`_fewest_small`: the row sorted, every ascending choice of all but the
last summand and the last by binary search, :math:`O(k^3 \log k)`: about 25,000
steps at ``k = 28``, against the two :math:`2^{14}`-long sorted halves with
bitmasks); the closest subset of the smallest size within ``tol`` is the answer
the halves would give, and only rows needing five or more summands build them.

Rows are parallelised with ``numba.prange`` over many small chunks scheduled
dynamically; each chunk allocates its scratch buffers once (``O(2^{N/2})``).
``cache=True`` stores the compiled code next to this file in ``__pycache__``
(numba falls back to a user-wide cache directory, or ``NUMBA_CACHE_DIR``, when
that is not writable), so only the first process pays the JIT compile
(:func:`warm_up` triggers it).  Requires every subset sum to be finite (the
scans use ``+-inf`` sentinels); :func:`equislt.subsetsum.solve` checks this.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["num_threads", "solve", "solve_rows", "warm_up"]


@njit(cache=True, nogil=True)
def _popcount(m: int) -> int:
    m = m - ((m >> 1) & 0x55555555)
    m = (m & 0x33333333) + ((m >> 2) & 0x33333333)
    m = (m + (m >> 4)) & 0x0F0F0F0F
    return ((m * 0x01010101) & 0xFFFFFFFF) >> 24


@njit(cache=True, nogil=True)
def _merge_one(src, srcm, dst, dstm, sh, shm, size, xv, bit):
    """``dst[:2 size]`` = sorted merge of ``src[:size]`` and ``src[:size] + xv`` (with masks).

    Branch-free and bidirectional: the smallest ``size`` outputs are merged
    front-to-back and the largest ``size`` back-to-front, two independent
    dependency chains.  Ties put the unshifted element first in both directions,
    so the halves are consistent.
    """
    for q in range(size):  # shifted copy (vectorised)
        sh[q] = src[q] + xv
        shm[q] = srcm[q] | bit
    i = 0
    j = 0
    i2 = size - 1
    j2 = size - 1
    top = 2 * size - 1
    for k in range(size):
        a = src[i]
        c = sh[j]
        ta = a <= c
        dst[k] = a if ta else c
        dstm[k] = srcm[i] if ta else shm[j]
        i += ta
        j += 1 - ta
        a2 = src[i2]
        c2 = sh[j2]
        tb = a2 > c2
        dst[top - k] = a2 if tb else c2
        dstm[top - k] = srcm[i2] if tb else shm[j2]
        i2 -= tb
        j2 -= 1 - tb


@njit(cache=True, nogil=True)
def _merge_two(s, sm, d, dm, sh, shm, xs, bs, r, rm, e, em, rh, rhm, xr, br, size):
    """:func:`_merge_one` on two independent lists of equal ``size`` at once (4 chains)."""
    for q in range(size):
        sh[q] = s[q] + xs
        shm[q] = sm[q] | bs
        rh[q] = r[q] + xr
        rhm[q] = rm[q] | br
    i = 0
    j = 0
    i2 = size - 1
    j2 = size - 1
    p = 0
    u = 0
    p2 = size - 1
    u2 = size - 1
    top = 2 * size - 1
    for k in range(size):
        a = s[i]
        c = sh[j]
        ta = a <= c
        d[k] = a if ta else c
        dm[k] = sm[i] if ta else shm[j]
        i += ta
        j += 1 - ta
        a2 = s[i2]
        c2 = sh[j2]
        tb = a2 > c2
        d[top - k] = a2 if tb else c2
        dm[top - k] = sm[i2] if tb else shm[j2]
        i2 -= tb
        j2 -= 1 - tb
        f = r[p]
        g = rh[u]
        tc = f <= g
        e[k] = f if tc else g
        em[k] = rm[p] if tc else rhm[u]
        p += tc
        u += 1 - tc
        f2 = r[p2]
        g2 = rh[u2]
        td = f2 > g2
        e[top - k] = f2 if td else g2
        em[top - k] = rm[p2] if td else rhm[u2]
        p2 -= td
        u2 -= 1 - td


@njit(cache=True, nogil=True)
def _sorted_halves(x, idx, k, a0, am0, a1, am1, b0, bm0, b1, bm1, sh, shm, rh, rhm):
    """Sorted subset sums (with bitmasks) of both halves of the valid summands.

    Half A is ``x[idx[:h_a]]``, half B is ``x[idx[h_a:k]]`` with ``h_a = ceil(k/2)``;
    bit ``b`` of an A (B) mask stands for ``idx[b]`` (``idx[h_a + b]``).  The lists
    ping-pong between buffers 0 and 1; returns ``(which_a, which_b)``.
    """
    h_a = (k + 1) // 2
    h_b = k - h_a
    a0[0] = 0.0
    am0[0] = 0
    b0[0] = 0.0
    bm0[0] = 0
    size = 1
    cur = 0
    for b in range(h_b):  # both halves, one level each
        bit = np.int32(1 << b)
        xa = x[idx[b]]
        xb = x[idx[h_a + b]]
        if cur == 0:
            _merge_two(a0, am0, a1, am1, sh, shm, xa, bit, b0, bm0, b1, bm1, rh, rhm, xb, bit, size)
        else:
            _merge_two(a1, am1, a0, am0, sh, shm, xa, bit, b1, bm1, b0, bm0, rh, rhm, xb, bit, size)
        size *= 2
        cur = 1 - cur
    wa = cur
    if h_a > h_b:  # the extra element of half A
        bit = np.int32(1 << h_b)
        xa = x[idx[h_b]]
        if cur == 0:
            _merge_one(a0, am0, a1, am1, sh, shm, size, xa, bit)
        else:
            _merge_one(a1, am1, a0, am0, sh, shm, size, xa, bit)
        wa = 1 - cur
    return wa, cur


@njit(cache=True, nogil=True)
def _merge_one_v(src, dst, sh, size, xv):
    """Value-only :func:`_merge_one` (no bitmasks carried)."""
    for q in range(size):
        sh[q] = src[q] + xv
    i = 0
    j = 0
    i2 = size - 1
    j2 = size - 1
    top = 2 * size - 1
    for k in range(size):
        a = src[i]
        c = sh[j]
        ta = a <= c
        dst[k] = a if ta else c
        i += ta
        j += 1 - ta
        a2 = src[i2]
        c2 = sh[j2]
        tb = a2 > c2
        dst[top - k] = a2 if tb else c2
        i2 -= tb
        j2 -= 1 - tb


@njit(cache=True, nogil=True)
def _merge_two_v(s, d, sh, xs, r, e, rh, xr, size):
    """Value-only :func:`_merge_two` (4 chains, no bitmasks carried)."""
    for q in range(size):
        sh[q] = s[q] + xs
        rh[q] = r[q] + xr
    i = 0
    j = 0
    i2 = size - 1
    j2 = size - 1
    p = 0
    u = 0
    p2 = size - 1
    u2 = size - 1
    top = 2 * size - 1
    for k in range(size):
        a = s[i]
        c = sh[j]
        ta = a <= c
        d[k] = a if ta else c
        i += ta
        j += 1 - ta
        a2 = s[i2]
        c2 = sh[j2]
        tb = a2 > c2
        d[top - k] = a2 if tb else c2
        i2 -= tb
        j2 -= 1 - tb
        f = r[p]
        g = rh[u]
        tc = f <= g
        e[k] = f if tc else g
        p += tc
        u += 1 - tc
        f2 = r[p2]
        g2 = rh[u2]
        td = f2 > g2
        e[top - k] = f2 if td else g2
        p2 -= td
        u2 -= 1 - td


@njit(cache=True, nogil=True)
def _sorted_halves_v(x, idx, k, a0, a1, b0, b1, sh, rh):
    """Value-only :func:`_sorted_halves`; returns ``(which_a, which_b)``."""
    h_a = (k + 1) // 2
    h_b = k - h_a
    a0[0] = 0.0
    b0[0] = 0.0
    size = 1
    cur = 0
    for b in range(h_b):
        xa = x[idx[b]]
        xb = x[idx[h_a + b]]
        if cur == 0:
            _merge_two_v(a0, a1, sh, xa, b0, b1, rh, xb, size)
        else:
            _merge_two_v(a1, a0, sh, xa, b1, b0, rh, xb, size)
        size *= 2
        cur = 1 - cur
    wa = cur
    if h_a > h_b:
        xa = x[idx[h_b]]
        if cur == 0:
            _merge_one_v(a0, a1, sh, size, xa)
        else:
            _merge_one_v(a1, a0, sh, size, xa)
        wa = 1 - cur
    return wa, cur


@njit(cache=True, nogil=True)
def _find_mask(x, idx, lo, hi, target, buf):
    """A bitmask ``m`` over ``x[idx[lo:hi]]`` whose subset sum is bitwise equal to ``target``.

    The sums are regenerated unsorted (``S_{b+1} = [S_b, S_b + x_b]``) with the
    very same additions, in the same order, as the merges, so the value found
    by the scan occurs exactly; returns -1 if not (cannot happen).
    """
    buf[0] = 0.0
    w = 1
    for b in range(hi - lo):
        xv = x[idx[lo + b]]
        for q in range(w):
            buf[w + q] = buf[q] + xv
        w *= 2
    for q in range(w):
        if buf[q] == target:
            return q
    return -1


@njit(cache=True, nogil=True)
def _visit(a, u, i, j, best, bi, bj):
    g = abs(a[i] - u[j])
    if g < best:
        return g, i, j
    return best, bi, bj


@njit(cache=True, nogil=True)
def _closest(a, na, u, nu):
    r"""Indices ``(i, j)`` minimising ``|a[i] - u[j]|`` over two ascending lists.

    ``a`` and ``u`` hold their ``na`` / ``nu`` values at ``1..n`` with sentinels
    ``-inf`` at 0 and ``+inf`` at ``n + 1``; returned indices are in that layout.
    The closest cross pair is adjacent in the merged order, and a merge records
    every adjacent cross pair as the two heads it compares (at the emission of
    the pair's first element going forward, of its second going backward).  The
    merge is cut at its midpoint (merge-path binary search, ties: ``a`` first)
    and each part is merged from both ends: 4 independent chains, plus the one
    pair that straddles the cut.
    """
    total = na + nu
    half = total // 2
    lo = max(0, half - nu)
    hi = min(half, na)
    while lo < hi:  # number of a-values among the first `half` of the merge
        mid = (lo + hi) // 2
        if a[mid + 1] <= u[half - mid]:
            lo = mid + 1
        else:
            hi = mid
    ci = lo + 1  # first a / u index of the second part
    cj = half - lo + 1
    best = np.inf
    bi = 1
    bj = 1
    best, bi, bj = _visit(a, u, ci - 1, cj, best, bi, bj)  # straddling pairs
    best, bi, bj = _visit(a, u, ci, cj - 1, best, bi, bj)
    n1 = half // 2  # chain 1: forward from (1, 1)
    n2 = half - n1  # chain 2: backward from (ci - 1, cj - 1)
    n3 = (total - half) // 2  # chain 3: forward from (ci, cj)
    n4 = total - half - n3  # chain 4: backward from (na, nu)
    i1, j1 = 1, 1
    i2, j2 = ci - 1, cj - 1
    i3, j3 = ci, cj
    i4, j4 = na, nu
    g1 = g2 = g3 = g4 = np.inf
    p1 = p2 = p3 = p4 = 0  # i-index; the j-index is stored alongside
    q1 = q2 = q3 = q4 = 0
    for _ in range(n1):  # n1 <= n2, n3 <= n4, n1 <= n3
        x1 = a[i1]
        y1 = u[j1]
        d1 = abs(x1 - y1)
        if d1 < g1:
            g1, p1, q1 = d1, i1, j1
        t1 = x1 <= y1
        i1 += t1
        j1 += 1 - t1
        x2 = a[i2]
        y2 = u[j2]
        d2 = abs(x2 - y2)
        if d2 < g2:
            g2, p2, q2 = d2, i2, j2
        t2 = x2 > y2
        i2 -= t2
        j2 -= 1 - t2
        x3 = a[i3]
        y3 = u[j3]
        d3 = abs(x3 - y3)
        if d3 < g3:
            g3, p3, q3 = d3, i3, j3
        t3 = x3 <= y3
        i3 += t3
        j3 += 1 - t3
        x4 = a[i4]
        y4 = u[j4]
        d4 = abs(x4 - y4)
        if d4 < g4:
            g4, p4, q4 = d4, i4, j4
        t4 = x4 > y4
        i4 -= t4
        j4 -= 1 - t4
    for _ in range(n2 - n1):
        x2 = a[i2]
        y2 = u[j2]
        d2 = abs(x2 - y2)
        if d2 < g2:
            g2, p2, q2 = d2, i2, j2
        t2 = x2 > y2
        i2 -= t2
        j2 -= 1 - t2
    for _ in range(n3 - n1):
        x3 = a[i3]
        y3 = u[j3]
        d3 = abs(x3 - y3)
        if d3 < g3:
            g3, p3, q3 = d3, i3, j3
        t3 = x3 <= y3
        i3 += t3
        j3 += 1 - t3
    for _ in range(n4 - n1):
        x4 = a[i4]
        y4 = u[j4]
        d4 = abs(x4 - y4)
        if d4 < g4:
            g4, p4, q4 = d4, i4, j4
        t4 = x4 > y4
        i4 -= t4
        j4 -= 1 - t4
    if g1 < best:
        best, bi, bj = g1, p1, q1
    if g2 < best:
        best, bi, bj = g2, p2, q2
    if g3 < best:
        best, bi, bj = g3, p3, q3
    if g4 < best:
        best, bi, bj = g4, p4, q4
    return bi, bj


@njit(cache=True, nogil=True)
def _fewest(sa, ma, na, sb, mb, nb, t, tol, pcb, dq):
    """Pair ``(i, j)`` with ``|sa[i] + sb[j] - t| <= tol`` minimising the popcount sum.

    ``sa``, ``sb`` ascending (0-based).  Returns ``(i, j)`` or ``(-1, -1)`` when no
    pair is within ``tol``.
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


@njit(cache=True, nogil=True)
def _lower_bound(s, lo, hi, u):
    """The first index in ``[lo, hi)`` of ascending ``s`` with ``s[q] >= u`` (``hi`` when none)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if s[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _nearest(s, lo, hi, u):
    """Index in ``[lo, hi)`` of the value of ascending ``s`` closest to ``u`` (``lo < hi``)."""
    left = _lower_bound(s, lo, hi, u)
    if left == hi or (left > lo and u - s[left - 1] <= s[left] - u):
        return left - 1
    return left


@njit(cache=True, nogil=True)
def _fewest_small(x, idx, k, t, tol, chosen, r):
    """Fewest mode for a row whose answer has at most four summands: the closest subset of the smallest size
    with ``|sum - t| <= tol``. The row's values are sorted into ``s`` (positions in ``at``); a subset of size
    ``m + 1`` is ``m`` ascending positions (``pick``, advanced like an odometer) and a last one after them, the
    nearest to what is left (binary search). Marks the subset in ``chosen[r]`` and returns True, or returns
    False (nothing marked) when every subset within ``tol`` is larger."""
    if abs(0.0 - t) <= tol:
        return True
    s = np.empty(k, np.float64)
    at = np.empty(k, np.int64)
    pick = np.empty(4, np.int64)
    keep = np.empty(4, np.int64)  # the best subset of the current size: pick, then its last position
    for p in range(k):  # insertion sort: k <= 32
        v = x[idx[p]]
        q = p
        while q > 0 and s[q - 1] > v:
            s[q] = s[q - 1]
            at[q] = at[q - 1]
            q -= 1
        s[q] = v
        at[q] = idx[p]
    for m in range(min(4, k)):  # summands before the last
        for j in range(m):
            pick[j] = j
        best = np.inf
        while True:
            prefix = 0.0
            for j in range(m):
                prefix += s[pick[j]]
            last = _nearest(s, pick[m - 1] + 1 if m else 0, k, t - prefix)
            gap = abs((prefix + s[last]) - t)
            if gap < best:
                best = gap
                keep[:m] = pick[:m]
                keep[m] = last
            j = m - 1  # the next ascending choice, leaving room for the last summand
            while j >= 0 and pick[j] == k - 1 - (m - j):
                j -= 1
            if j < 0:
                break
            pick[j] += 1
            for i in range(j + 1, m):
                pick[i] = pick[i - 1] + 1
        if best <= tol:
            for j in range(m + 1):
                chosen[r, at[keep[j]]] = True
            return True
    return False


@njit(cache=True, nogil=True)
def _closest_of_size(sa, ma, na, sb, pcb, nb, h_b, t, size, bi, bj, gv, gj):
    """Among pairs ``(i, j)`` with ``pc(ma[i]) + pcb[j] == size``, the one minimising ``|sa[i] + sb[j] - t|``,
    starting from the pair ``(bi, bj)`` (of that size).  ``sa``, ``sb`` ascending; ``gv``/``gj`` scratch."""
    start = np.zeros(h_b + 2, np.int64)
    for j in range(nb):
        start[pcb[j] + 1] += 1
    for q in range(h_b + 1):
        start[q + 1] += start[q]
    cursor = start.copy()
    for j in range(nb):  # stable counting sort by popcount: each group stays ascending
        q = pcb[j]
        gv[cursor[q]] = sb[j]
        gj[cursor[q]] = j
        cursor[q] += 1
    best = abs((sa[bi] + sb[bj]) - t)
    for i in range(na):
        need = size - _popcount(ma[i])
        if need < 0 or need > h_b:
            continue
        lo = start[need]
        hi = start[need + 1]
        if lo == hi:
            continue
        a = sa[i]
        u = t - a
        left = _lower_bound(gv, lo, hi, u)
        for q in (left - 1, left):
            if lo <= q < hi:
                r = abs((a + gv[q]) - t)
                if r < best:
                    best = r
                    bi = i
                    bj = gj[q]
    return bi, bj


@njit(cache=True, nogil=True)
def _solve_chunk(values, targets, valid, tol, fewest, chosen, r0, r1):
    """Serial body of :func:`solve_rows` for rows ``r0:r1``; scratch allocated once."""
    n = values.shape[1]
    h_max = (min(n, 32) + 1) // 2
    m = (1 << h_max) + 2  # sums at 1..2^h, sentinels at 0 and 2^h + 1
    ra0 = np.empty(m, np.float64)
    ra1 = np.empty(m, np.float64)
    rb0 = np.empty(m, np.float64)
    rb1 = np.empty(m, np.float64)
    u = np.empty(m, np.float64)
    sh = np.empty(m, np.float64)
    rh = np.empty(m, np.float64)
    mm = m if fewest else 1  # bitmasks are carried through the merges only for `fewest`
    am0 = np.empty(mm, np.int32)
    am1 = np.empty(mm, np.int32)
    bm0 = np.empty(mm, np.int32)
    bm1 = np.empty(mm, np.int32)
    shm = np.empty(mm, np.int32)
    rhm = np.empty(mm, np.int32)
    pcb = np.empty(mm, np.int32)
    dq = np.empty(mm, np.int64)
    gv = np.empty(mm, np.float64)
    gj = np.empty(mm, np.int64)
    idx = np.empty(max(n, 1), np.int64)
    a0 = ra0[1:]
    a1 = ra1[1:]
    b0 = rb0[1:]
    b1 = rb1[1:]
    for r in range(r0, r1):
        x = values[r]
        k = 0
        for q in range(n):
            if valid[r, q]:
                idx[k] = q
                k += 1
        h_a = (k + 1) // 2
        na = 1 << h_a
        nb = 1 << (k - h_a)
        t = targets[r]
        if fewest and tol >= 0.0 and _fewest_small(x, idx, k, t, tol, chosen, r):
            continue
        if fewest:
            wa, wb = _sorted_halves(x, idx, k, a0, am0, a1, am1, b0, bm0, b1, bm1, sh, shm, rh, rhm)
        else:
            wa, wb = _sorted_halves_v(x, idx, k, a0, a1, b0, b1, sh, rh)
        ra = ra0 if wa == 0 else ra1
        sb = b0 if wb == 0 else b1
        ra[0] = -np.inf
        ra[na + 1] = np.inf
        u[0] = -np.inf
        u[nb + 1] = np.inf
        for q in range(nb):  # u = t - b, ascending
            u[q + 1] = t - sb[nb - 1 - q]
        i, j = _closest(ra, na, u, nb)
        i -= 1  # 0-based index into the sorted A sums
        j = nb - j  # 0-based index into the sorted B sums
        if fewest:
            ma = am0 if wa == 0 else am1
            mb = bm0 if wb == 0 else bm1
            gap = abs(ra[i + 1] - u[nb - j])
            slack = 1e-12 * (abs(ra[i + 1]) + abs(sb[j]) + abs(t))  # rounding of u = t - b
            if gap <= tol + slack:  # some pair may be within tol (else keep the closest)
                fi, fj = _fewest(ra[1:], ma, na, sb, mb, nb, t, tol, pcb, dq)
                if fi >= 0:
                    i, j = _closest_of_size(ra[1:], ma, na, sb, pcb, nb, k - h_a, t,
                                            _popcount(ma[fi]) + pcb[fj], fi, fj, gv, gj)
            mask_a = np.int64(ma[i])
            mask_b = np.int64(mb[j])
        else:
            mask_a = _find_mask(x, idx, 0, h_a, ra[i + 1], sh)
            mask_b = _find_mask(x, idx, h_a, k, sb[j], sh)
        for b in range(h_a):
            if (mask_a >> b) & 1:
                chosen[r, idx[b]] = True
        for b in range(k - h_a):
            if (mask_b >> b) & 1:
                chosen[r, idx[h_a + b]] = True


@njit(cache=True, nogil=True, parallel=True)
def solve_rows(values, targets, valid, tol, fewest, chosen, n_chunks):
    """Fill ``chosen`` [P, N] (bool, zero-initialised) with an exact solution per row.

    ``values`` [P, N] float64 (``sum |values| + |targets|`` finite per row),
    ``targets`` [P] float64, ``valid`` [P, N] bool; ``tol < 0`` means no
    tolerance.  With ``fewest`` (and ``tol >= 0``) the fewest-elements
    within-``tol`` subset is chosen where one exists.  Rows are split into
    ``n_chunks`` contiguous chunks run in parallel (``prange``), each with its
    own scratch buffers.
    """
    p = values.shape[0]
    per = (p + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        r0 = c * per
        r1 = min(p, r0 + per)
        if r0 < r1:
            _solve_chunk(values, targets, valid, tol, fewest, chosen, r0, r1)


def solve(values: np.ndarray, targets: np.ndarray, valid: np.ndarray, tol: float | None, fewest: bool) -> np.ndarray:
    """Run :func:`solve_rows` on contiguous float64/bool arrays; returns ``chosen`` [P, N].

    Rows go out in many small chunks scheduled dynamically (numba chunk size 1),
    so a thread that gets less CPU on a shared machine simply takes fewer chunks.
    """
    p, n = values.shape
    chosen = np.zeros((p, n), dtype=np.bool_)
    if p == 0:
        return chosen
    n_chunks = min(p, 32 * num_threads())
    old = numba.set_parallel_chunksize(1)
    try:
        solve_rows(values, targets, valid, -1.0 if tol is None else float(tol), bool(fewest), chosen, n_chunks)
    finally:
        numba.set_parallel_chunksize(old)
    return chosen


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
