"""Tests for equislt.subsetsum: exact MITM vs brute force, tolerance/fewest modes, MILP."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equislt import subsetsum as ss
from equislt.subsetsum import _mitm
from equislt.subsetsum.reference import brute_force, milp

# every kernel explicitly: the compiled one (default on CPU; numba is a dependency) and both fallbacks
BACKENDS = ["numba", "numpy", "torch"]


def _instances(rng: np.random.Generator, dist: str, p: int, n: int):
    if dist == "uniform":
        v = rng.uniform(-1, 1, (p, n))
    else:  # product u*v, u~U[0,1], v~U[-1,1]
        v = rng.uniform(0, 1, (p, n)) * rng.uniform(-1, 1, (p, n))
    return v, rng.uniform(-1, 1, p)


@functools.lru_cache(maxsize=None)
def _exact_case(dist: str, n: int):
    """Instances and brute-force answer, shared by the per-backend test cases."""
    rng = np.random.default_rng(n + 100 * (dist == "product"))
    p = 400 if n <= 13 else 120
    v, t = _instances(rng, dist, p, n)
    return v, t, brute_force(v, t)


@functools.lru_cache(maxsize=None)
def _fewest_case(dist: str, n: int, tol: float):
    rng = np.random.default_rng(n)
    p = 200 if n <= 10 else 80
    v, t = _instances(rng, dist, p, n)
    valid = rng.random((p, n)) < 0.85
    return v, t, valid, brute_force(v, t, valid, tol=tol, fewest=True)


def _check_sums(values, targets, res, valid=None):
    values, chosen = np.asarray(values, dtype=np.float64), np.asarray(res.chosen)
    if valid is not None:
        assert not (chosen & ~valid).any()
    np.testing.assert_allclose((values * chosen).sum(1) - targets, res.residual, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dist", ["uniform", "product"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 13, 16, 18])
def test_exact_matches_brute_force(dist, n, backend):
    v, t, ref = _exact_case(dist, n)
    p = v.shape[0]
    res = ss.solve(v, t, backend=backend)
    np.testing.assert_allclose(np.abs(res.residual), np.abs(ref.residual), atol=1e-12, rtol=0)
    _check_sums(v, t, res)
    assert isinstance(res.chosen, np.ndarray) and res.chosen.dtype == bool and res.chosen.shape == (p, n)


def test_torch_closest_path_matches_brute_force():
    """The torch kernel (used on GPUs) agrees with brute force on CPU too."""
    rng = np.random.default_rng(1)
    for n in (1, 5, 12, 15):
        v, t = _instances(rng, "product", 300, n)
        vt, tt = torch.from_numpy(v), torch.from_numpy(t)
        h_a = (n + 1) // 2
        sa = vt[:, :h_a] @ _mitm._bits(h_a, vt.device).T
        u = tt[:, None] - vt[:, h_a:] @ _mitm._bits(n - h_a, vt.device).T
        ia, jb = _mitm._closest(sa, u)
        r = sa.gather(1, ia[:, None]).squeeze(1) - u.gather(1, jb[:, None]).squeeze(1)
        np.testing.assert_allclose(r.abs().numpy(), np.abs(brute_force(v, t).residual), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [4, 9, 14])
def test_padded_rows_with_valid(n, backend):
    rng = np.random.default_rng(7 + n)
    p = 300
    v, t = _instances(rng, "product", p, n)
    valid = rng.random((p, n)) < 0.7
    valid[:10] = False  # rows with nothing valid
    v_pad = np.where(valid, v, rng.uniform(-5, 5, (p, n)))  # garbage in padding
    res, ref = ss.solve(v_pad, t, valid, backend=backend), brute_force(v_pad, t, valid)
    np.testing.assert_allclose(np.abs(res.residual), np.abs(ref.residual), atol=1e-12)
    _check_sums(np.where(valid, v_pad, 0), t, res, valid)
    np.testing.assert_allclose(res.residual[:10], -t[:10])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dist", ["uniform", "product"])
@pytest.mark.parametrize("n,tol", [(6, 0.05), (10, 0.01), (14, 1e-3), (16, 1e-2)])
def test_tolerance_and_fewest_match_brute_force(dist, n, tol, backend):
    v, t, valid, ref = _fewest_case(dist, n, tol)
    feasible = np.abs(ref.residual) <= tol
    plain = ss.solve(v, t, valid, tol=tol, backend=backend)
    assert (np.abs(plain.residual)[feasible] <= tol).all()
    res = ss.solve(v, t, valid, tol=tol, fewest=True, backend=backend)
    _check_sums(np.where(valid, v, 0), t, res, valid)
    assert (np.abs(res.residual)[feasible] <= tol + 1e-12).all()
    np.testing.assert_array_equal(res.chosen.sum(1)[feasible], ref.chosen.sum(1)[feasible])
    # among the subsets of that fewest size, the closest (the reference breaks ties in size by the residual)
    np.testing.assert_allclose(np.abs(res.residual)[feasible], np.abs(ref.residual)[feasible], atol=1e-12)
    # infeasible rows fall back to the minimum residual
    np.testing.assert_allclose(np.abs(res.residual)[~feasible], np.abs(ref.residual)[~feasible], atol=1e-12)


def test_fewest_answers_of_every_size_match_brute_force():
    """The compiled kernel searches subsets of at most four summands first and builds the sorted halves only for
    larger answers: both kinds of row give brute force's fewest size and residual."""
    rng = np.random.default_rng(11)
    v, t = _instances(rng, "product", 150, 16)
    valid = rng.random((150, 16)) < 0.9
    sizes = []
    for tol in (3e-3, 1e-5):
        ref = brute_force(v, t, valid, tol=tol, fewest=True)
        res = ss.solve(v, t, valid, tol=tol, fewest=True, backend="numba")
        feasible = np.abs(ref.residual) <= tol
        np.testing.assert_array_equal(res.chosen.sum(1)[feasible], ref.chosen.sum(1)[feasible])
        np.testing.assert_allclose(np.abs(res.residual), np.abs(ref.residual), atol=1e-12)
        sizes.append(ref.chosen.sum(1)[feasible])
    sizes = np.concatenate(sizes)
    assert (sizes <= 4).sum() > 20 and (sizes > 4).sum() > 20  # both paths were taken


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 12),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    tol=st.sampled_from([None, 1e-3, 0.1]),
    pad=st.booleans(),
    backend=st.sampled_from(BACKENDS),
)
def test_property_against_brute_force(n, seed, scale, tol, pad, backend):
    rng = np.random.default_rng(seed)
    p = 20
    v = rng.uniform(-1, 1, (p, n)) * scale
    t = rng.uniform(-1, 1, p) * scale * rng.uniform(0, 3)
    valid = rng.random((p, n)) < 0.6 if pad else None
    tol_s = None if tol is None else tol * scale
    res = ss.solve(v, t, valid, tol=tol_s, fewest=tol_s is not None, backend=backend)
    ref = brute_force(v, t, valid, tol=tol_s, fewest=tol_s is not None)
    _check_sums(v if valid is None else np.where(valid, v, 0), t, res, valid)
    if tol_s is None:
        np.testing.assert_allclose(np.abs(res.residual), np.abs(ref.residual), atol=1e-12 * scale)
    else:
        feas = np.abs(ref.residual) <= tol_s
        np.testing.assert_array_equal(res.chosen.sum(1)[feas], ref.chosen.sum(1)[feas])
        assert (np.abs(res.residual)[feas] <= tol_s * (1 + 1e-9)).all()
        np.testing.assert_allclose(np.abs(res.residual)[feas], np.abs(ref.residual)[feas], atol=1e-12 * scale)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=0, max_size=10), t=st.floats(-20, 20))
def test_property_single_row(values, t):
    v = np.array([values], dtype=np.float64).reshape(1, len(values))
    res, ref = ss.solve(v, np.array([t])), brute_force(v, np.array([t]))
    assert abs(abs(res.residual[0]) - abs(ref.residual[0])) <= 1e-12 * (1 + np.abs(v).sum() + abs(t))


def test_float32_torch_and_numpy_io():
    rng = np.random.default_rng(3)
    v, t = _instances(rng, "product", 200, 12)
    ref = np.abs(brute_force(v, t).residual)
    r32 = ss.solve(v.astype(np.float32), t.astype(np.float32))
    assert isinstance(r32.residual, np.ndarray) and r32.residual.dtype == np.float32
    ref32 = np.abs(brute_force(v.astype(np.float32), t.astype(np.float32)).residual)
    np.testing.assert_allclose(np.abs(r32.residual), ref32, atol=1e-6)
    rt = ss.solve(torch.from_numpy(v), torch.from_numpy(t))
    assert isinstance(rt.residual, torch.Tensor) and rt.residual.dtype == torch.float64
    assert isinstance(rt.chosen, torch.Tensor) and rt.chosen.dtype == torch.bool
    np.testing.assert_allclose(rt.abs_residual.numpy(), ref, atol=1e-12)
    rt32 = ss.solve(torch.from_numpy(v).float(), torch.from_numpy(t).float(), device="cpu")
    assert rt32.residual.dtype == torch.float32
    bt = brute_force(torch.from_numpy(v), torch.from_numpy(t))
    assert isinstance(bt.residual, torch.Tensor)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fewest", [False, True])
def test_chunking_gives_identical_results(fewest, backend):
    rng = np.random.default_rng(5)
    v, t = _instances(rng, "product", 300, 14)
    a = ss.solve(v, t, tol=1e-3, fewest=fewest, backend=backend)
    b = ss.solve(v, t, tol=1e-3, fewest=fewest, max_memory_bytes=1, backend=backend)
    c = ss.solve(v, t, tol=1e-3, fewest=fewest, max_memory_bytes=50_000, backend=backend)
    for other in (b, c):
        np.testing.assert_array_equal(a.chosen, other.chosen)
        np.testing.assert_array_equal(a.residual, other.residual)


@pytest.mark.parametrize("dist", ["exact_ties", "product"])
def test_backends_agree_with_ties_and_zero_tol(dist):
    """Integer data (many equal subset sums, tol=0): every backend matches brute force."""
    rng = np.random.default_rng(8)
    p, n = 200, 11
    if dist == "exact_ties":
        v, t = rng.integers(-3, 4, (p, n)).astype(float), rng.integers(-6, 7, p).astype(float)
    else:
        v, t = _instances(rng, dist, p, n)
    valid = rng.random((p, n)) < 0.8
    for tol in (None, 0.0, 0.5):
        ref = brute_force(v, t, valid, tol=tol, fewest=tol is not None)
        for backend in _mitm.BACKENDS:
            res = ss.solve(v, t, valid, tol=tol, fewest=tol is not None, backend=backend)
            _check_sums(np.where(valid, v, 0), t, res, valid)
            r, r_ref = np.abs(res.residual), np.abs(ref.residual)
            if tol is None:
                np.testing.assert_allclose(r, r_ref, atol=1e-12)
                continue
            feas = r_ref <= tol
            assert feas.any() or dist != "exact_ties"
            assert (r[feas] <= tol + 1e-12).all()
            np.testing.assert_array_equal(res.chosen.sum(1)[feas], ref.chosen.sum(1)[feas])
            np.testing.assert_allclose(r[~feas], r_ref[~feas], atol=1e-12)


@pytest.mark.parametrize("n", [21, 25, 32])
def test_numba_matches_sort_backend_beyond_brute_force(n):
    """N > 20 (halves up to 16 elements): compiled kernel == numpy sort path."""
    rng = np.random.default_rng(n)
    p = 24 if n < 32 else 6
    v, t = _instances(rng, "product", p, n)
    valid = rng.random((p, n)) < 0.9
    valid[0] = True
    a = ss.solve(v, t, valid, backend="numba")
    b = ss.solve(v, t, valid, backend="numpy")
    _check_sums(np.where(valid, v, 0), t, a, valid)
    np.testing.assert_allclose(np.abs(a.residual), np.abs(b.residual), atol=1e-15)
    if n < 32:  # keep the torch fewest reference (sparse table over 2^16) cheap
        fa = ss.solve(v, t, valid, tol=1e-4, fewest=True, backend="numba")
        fb = ss.solve(v, t, valid, tol=1e-4, fewest=True, backend="torch")
        np.testing.assert_array_equal(fa.chosen.sum(1), fb.chosen.sum(1))


def test_backend_selection():
    v, t = np.array([[0.5, 0.25]]), np.array([0.75])
    vt, tt = torch.from_numpy(v), torch.from_numpy(t)
    cpu = torch.device("cpu")
    assert _mitm._pick_backend(None, cpu, vt, tt) == "numba"
    assert _mitm._pick_backend("torch", cpu, vt, tt) == "torch"
    with pytest.raises(ValueError, match="backend"):
        ss.solve(v, t, backend="cuda")
    # sums that overflow float64 are routed away from the compiled kernel (inf sentinels)
    big = torch.tensor([[1e308, 1e308]], dtype=torch.float64)
    assert _mitm._pick_backend(None, cpu, big, tt) == "numpy"
    assert ss.solve(v, t, backend="numpy").residual[0] == 0.0


def test_numba_warm_up_and_threads():
    from equislt.subsetsum import _numba

    assert _numba.warm_up() >= 0.0 and _numba.num_threads() >= 1
    # a single-row call (one chunk) and many chunks give the same answer
    rng = np.random.default_rng(0)
    v, t = _instances(rng, "product", 50, 9)
    valid = np.ones(v.shape, dtype=bool)
    outs = []
    for n_chunks in (1, 7, 50):
        chosen = np.zeros(v.shape, dtype=bool)
        _numba.solve_rows(v, t, valid, -1.0, False, chosen, n_chunks)
        outs.append(chosen)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_larger_n_runs_and_is_accurate():
    rng = np.random.default_rng(11)
    v, t = _instances(rng, "product", 20, 26)
    res = ss.solve(v, t)
    _check_sums(v, t, res)
    assert np.median(np.abs(res.residual)) < 1e-5


def test_report():
    rng = np.random.default_rng(2)
    v, t = _instances(rng, "product", 500, 8)
    res = ss.solve(v, t, tol=1e-3)
    rep = res.report()
    r = np.abs(res.residual)
    assert rep.n_problems == 500 and rep.tol == 1e-3
    assert rep.n_above_tol == int((r > 1e-3).sum()) > 0 and not rep.ok
    assert rep.frac_above_tol == pytest.approx(rep.n_above_tol / 500)
    assert rep.median == pytest.approx(np.median(r)) and rep.max == pytest.approx(r.max())
    assert rep.median <= rep.q90 <= rep.q99 <= rep.max
    assert rep.mean_size == pytest.approx(res.chosen.sum(1).mean())
    assert res.report(10.0).ok and "P=500" in str(rep) and rep.as_dict()["n_problems"] == 500
    empty = ss.solve(np.zeros((0, 4)), np.zeros(0)).report(0.1)
    assert empty.n_problems == 0 and empty.n_above_tol == 0


def test_milp_agrees_with_exact():
    rng = np.random.default_rng(4)
    v, t = _instances(rng, "product", 5, 10)
    valid = np.ones_like(v, dtype=bool)
    valid[0, :3] = False
    exact = ss.solve(v, t, valid)
    res, times = milp(v, t, valid, time_limit=20.0, return_times=True)
    assert times.shape == (5,) and (times > 0).all()
    _check_sums(np.where(valid, v, 0), t, res, valid)
    assert (np.abs(res.residual) <= np.abs(exact.residual) + 1e-5).all()
    assert (np.abs(exact.residual) <= np.abs(res.residual) + 1e-12).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(values=np.zeros(3), targets=np.zeros(3)), "values"),
        (dict(values=np.zeros((3, 4)), targets=np.zeros(2)), "targets"),
        (dict(values=np.zeros((3, 4)), targets=np.zeros((3, 1))), "targets"),
        (dict(values=np.zeros((2, 33)), targets=np.zeros(2)), "N <= 32"),
        (dict(values=np.full((2, 3), np.nan), targets=np.zeros(2)), "values"),
        (dict(values=np.zeros((2, 3)), targets=np.array([0.0, np.inf])), "targets"),
        (dict(values=np.zeros((2, 3)), targets=np.zeros(2), valid=np.ones((2, 2), bool)), "valid"),
        (dict(values=np.zeros((2, 3)), targets=np.zeros(2), fewest=True), "tol"),
        (dict(values=np.zeros((2, 3)), targets=np.zeros(2), tol=-1.0), "tol"),
        (dict(values=np.zeros((2, 3)), targets=np.zeros(2), max_memory_bytes=0), "max_memory_bytes"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ss.solve(**kwargs)


def test_brute_force_limits():
    with pytest.raises(ValueError, match="N <= 20"):
        brute_force(np.zeros((1, 21)), np.zeros(1))


def test_public_api():
    assert set(ss.__all__) >= {"solve", "SubsetSumResult", "SubsetSumReport", "brute_force", "milp", "MAX_N"}
    for name in ss.__all__:
        assert hasattr(ss, name)
