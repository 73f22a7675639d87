"""Benchmark the exact batched Subset-Sum solver against brute force and HiGHS MILP.

For each N, draws a batch of product-distribution instances (x = u*v, u~U[0,1],
v~U[-1,1]; t~U[-1,1]), times :func:`equislt.subsetsum.solve` on the whole batch
(best of ``--repeats``; wall and process CPU time, so the effective number of
cores is visible on a shared machine) and the reference solvers on the first
few rows of the *same* batch, and writes ``benchmarks/results/subset_sum.json``
plus ``subset_sum.png``.

Recorded besides the timings: the backend that ran (``numba`` compiled kernel
by default on CPU, else ``numpy``/``torch``), the numba JIT compile time --
measured cold in a subprocess with an empty ``NUMBA_CACHE_DIR`` and as the
cached first call in this process, never inside a timed solve -- and the
machine load average (at start and around each timed solve).

Example::

    python benchmarks/subset_sum.py --ns 12 16 20 24 28 --milp-sample 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from equislt.subsetsum import _mitm, brute_force, milp, solve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_BATCH = {12: 400_000, 16: 200_000, 20: 100_000, 24: 20_000, 28: 2_000, 32: 200}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _numba_compile() -> dict[str, object]:
    """JIT compile time of the numba kernel, kept out of every timed solve.

    ``cold_s``: first call in a fresh interpreter whose ``NUMBA_CACHE_DIR`` is an
    empty temporary folder (full compile, the package cache untouched);
    ``cached_s``: first call in this process (loads the on-disk cache, or
    compiles and writes it when there is none yet).
    """
    from equislt.subsetsum import _numba

    code = "from equislt.subsetsum import _numba; print(_numba.warm_up())"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x)
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp, PYTHONPATH=path)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cold = float(out.stdout.strip().splitlines()[-1])
    cached = _numba.warm_up()
    import numba

    return {
        "cold_s": cold,
        "cached_s": cached,
        "threads": _numba.num_threads(),
        "threading_layer": numba.threading_layer(),
        "loadavg": _loadavg(),
    }


def _quantiles(r: np.ndarray) -> dict[str, float]:
    r = np.abs(np.asarray(r, dtype=np.float64))
    q = np.quantile(r, [0.5, 0.9, 0.99]) if r.size else [float("nan")] * 3
    return {"median": float(q[0]), "q90": float(q[1]), "q99": float(q[2]), "max": float(r.max()) if r.size else float("nan")}


def _machine() -> dict[str, object]:
    info: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        info["scipy"] = None
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
        info["numba_threading_layer"] = numba.config.THREADING_LAYER
    except ImportError:  # pragma: no cover
        info["numba"] = None
    info["loadavg_at_start"] = _loadavg()
    return info


def _timed(fn, repeats: int) -> tuple[float, float, object, list[list[float] | None]]:
    """Best-of-``repeats`` wall time, the CPU time of that run, its result, load averages."""
    best, cpu, res, loads = float("inf"), float("nan"), None, []
    for _ in range(repeats):
        loads.append(_loadavg())
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < best:
            best, cpu, res = w, c, out
    loads.append(_loadavg())
    return best, cpu, res, loads


def run(args: argparse.Namespace) -> dict[str, object]:
    machine = _machine()  # load average before any work
    compile_info = _numba_compile() if args.device in (None, "cpu") else None
    if compile_info:
        print(f"numba compile: {json.dumps(compile_info)}", flush=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in args.ns:
        p = args.batch if args.batch else DEFAULT_BATCH.get(n, 1000)
        v = rng.uniform(0, 1, (p, n)) * rng.uniform(-1, 1, (p, n))
        t = rng.uniform(-1, 1, p)
        vt = torch.from_numpy(v).to(args.device or "cpu")
        backend = _mitm._pick_backend(args.backend, vt.device, vt[:1], torch.from_numpy(t[:1]))
        kw = dict(device=args.device, backend=args.backend)
        solve(v[:64], t[:64], **kw)  # warm-up (compile/cache load happened above)
        solve(v[:64], t[:64], tol=args.fewest_tol, fewest=True, **kw)
        best, cpu, res, loads = _timed(lambda: solve(v, t, **kw), args.repeats)
        exact_abs = np.abs(res.residual)
        row: dict[str, object] = {
            "N": n,
            "batch": p,
            "backend": backend,
            "exact_seconds": best,
            "exact_problems_per_s": p / best,
            "exact_s_per_problem": best / p,
            "exact_cpu_seconds": cpu,
            "exact_problems_per_cpu_s": p / cpu,
            "cores_used": cpu / best,
            "loadavg_during": loads,
            "exact_residual": _quantiles(exact_abs),
        }
        if args.fewest_tol > 0:
            fbest, fcpu, fres, _ = _timed(
                lambda: solve(v, t, tol=args.fewest_tol, fewest=True, **kw), max(1, args.repeats - 1)
            )
            row["fewest"] = {
                "tol": args.fewest_tol,
                "seconds": fbest,
                "problems_per_s": p / fbest,
                "problems_per_cpu_s": p / fcpu,
                "frac_within_tol": float(np.mean(np.abs(fres.residual) <= args.fewest_tol)),
                "mean_size": float(fres.chosen.sum(1).mean()),
                "mean_size_min_residual": float(res.chosen.sum(1).mean()),
            }
        k = min(args.brute_sample, p)
        if n <= 20 and k > 0:
            t0 = time.perf_counter()
            bf = brute_force(v[:k], t[:k])
            dt = time.perf_counter() - t0
            row["brute_force"] = {
                "sample": k,
                "s_per_problem": dt / k,
                "residual": _quantiles(bf.residual),
                "max_abs_diff_vs_exact": float(np.max(np.abs(np.abs(bf.residual) - exact_abs[:k]))),
            }
        k = min(args.milp_sample, p)
        if k > 0:
            mres, times = milp(v[:k], t[:k], time_limit=args.milp_time_limit, return_times=True)
            m_abs = np.abs(mres.residual)
            row["milp"] = {
                "sample": k,
                "time_limit_s": args.milp_time_limit,
                "s_per_problem_mean": float(times.mean()),
                "s_per_problem_median": float(np.median(times)),
                "residual": _quantiles(m_abs),
                "exact_residual_same_rows": _quantiles(exact_abs[:k]),
                "frac_exact_le_milp": float(np.mean(exact_abs[:k] <= m_abs + 1e-15)),
                "speedup_exact_vs_milp": float(times.mean() / (best / p)),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    params = {k: (str(x) if isinstance(x, Path) else x) for k, x in vars(args).items()}
    machine["loadavg_at_end"] = _loadavg()
    return {
        "machine": machine,
        "numba_compile": compile_info,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": params,
        "results": rows,
    }


def plot(data: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["results"]
    ns = [r["N"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    backends = sorted({r.get("backend", "?") for r in rows})
    ax1.semilogy(ns, [r["exact_problems_per_s"] for r in rows], "o-", label=f"exact MITM ({'/'.join(backends)})")
    if all("exact_problems_per_cpu_s" in r for r in rows):
        ax1.semilogy(ns, [r["exact_problems_per_cpu_s"] for r in rows], "o", mfc="none", color="C0", alpha=0.6,
                     label="exact, per CPU-second")
    fw = [(r["N"], r["fewest"]["problems_per_s"]) for r in rows if "fewest" in r]
    if fw:
        ax1.semilogy(*zip(*fw), "d-.", label=f"exact fewest (tol={rows[0]['fewest']['tol']:g})")
    bf = [(r["N"], 1 / r["brute_force"]["s_per_problem"]) for r in rows if "brute_force" in r]
    if bf:
        ax1.semilogy(*zip(*bf), "s--", label="brute force")
    mi = [(r["N"], 1 / r["milp"]["s_per_problem_mean"]) for r in rows if "milp" in r]
    if mi:
        ax1.semilogy(*zip(*mi), "^:", label="HiGHS MILP")
    ax1.set_xlabel("N (summands)")
    ax1.set_ylabel("problems / s")
    ax1.legend(fontsize=8, loc="upper right")
    ax1.grid(True, which="both", alpha=0.3)
    for key, style in (("median", "o-"), ("q99", "o--")):
        ax2.semilogy(ns, [r["exact_residual"][key] for r in rows], style, label=f"exact {key}")
    if mi:
        ax2.semilogy([r["N"] for r in rows if "milp" in r],
                     [max(r["milp"]["residual"]["median"], 1e-18) for r in rows if "milp" in r], "^:", label="MILP median")
    ax2.set_xlabel("N (summands)")
    ax2.set_ylabel("|residual|")
    ax2.legend(fontsize=8)
    ax2.grid(True, which="both", alpha=0.3)
    m = data.get("machine", {})
    fig.suptitle(
        "Batched exact Subset-Sum (product distribution, t ~ U[-1,1]); "
        f"{m.get('cpu_count')} CPUs, load avg at start {m.get('loadavg_at_start')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=int, nargs="+", default=[12, 16, 20, 24, 28])
    ap.add_argument("--batch", type=int, default=0, help="rows per N (0: per-N defaults)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--brute-sample", type=int, default=20)
    ap.add_argument("--milp-sample", type=int, default=10)
    ap.add_argument("--milp-time-limit", type=float, default=10.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--backend", default=None, choices=list(_mitm.BACKENDS),
                    help="solve() kernel (default: numba on CPU when installed)")
    ap.add_argument("--fewest-tol", type=float, default=1e-3,
                    help="also time fewest mode with this tol (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "subset_sum.json")
    args = ap.parse_args(argv)
    data = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    plot(data, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
