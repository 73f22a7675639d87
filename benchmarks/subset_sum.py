"""Benchmark the exact batched Subset-Sum solver against brute force and HiGHS MILP.

For each N, draws a batch of product-distribution instances (x = u*v, u~U[0,1],
v~U[-1,1]; t~U[-1,1]), times :func:`equislt.subsetsum.solve` on the whole batch
and the reference solvers on the first few rows of the *same* batch, and writes
``benchmarks/results/subset_sum.json`` plus ``subset_sum.png``.

Example::

    python benchmarks/subset_sum.py --ns 12 16 20 24 28 --milp-sample 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from equislt.subsetsum import brute_force, milp, solve  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_BATCH = {12: 200_000, 16: 100_000, 20: 40_000, 24: 4_000, 28: 400, 32: 40}


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
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    return info


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in args.ns:
        p = args.batch if args.batch else DEFAULT_BATCH.get(n, 1000)
        v = rng.uniform(0, 1, (p, n)) * rng.uniform(-1, 1, (p, n))
        t = rng.uniform(-1, 1, p)
        solve(v[:64], t[:64], device=args.device)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = solve(v, t, device=args.device)
            best = min(best, time.perf_counter() - t0)
        exact_abs = np.abs(res.residual)
        row: dict[str, object] = {
            "N": n,
            "batch": p,
            "exact_seconds": best,
            "exact_problems_per_s": p / best,
            "exact_s_per_problem": best / p,
            "exact_residual": _quantiles(exact_abs),
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
    return {"machine": _machine(), "args": params, "results": rows}


def plot(data: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["results"]
    ns = [r["N"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.semilogy(ns, [r["exact_problems_per_s"] for r in rows], "o-", label="exact MITM (batched)")
    bf = [(r["N"], 1 / r["brute_force"]["s_per_problem"]) for r in rows if "brute_force" in r]
    if bf:
        ax1.semilogy(*zip(*bf), "s--", label="brute force")
    mi = [(r["N"], 1 / r["milp"]["s_per_problem_mean"]) for r in rows if "milp" in r]
    if mi:
        ax1.semilogy(*zip(*mi), "^:", label="HiGHS MILP")
    ax1.set_xlabel("N (summands)")
    ax1.set_ylabel("problems / s")
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    for key, style in (("median", "o-"), ("q99", "o--")):
        ax2.semilogy(ns, [r["exact_residual"][key] for r in rows], style, label=f"exact {key}")
    if mi:
        ax2.semilogy([r["N"] for r in rows if "milp" in r],
                     [max(r["milp"]["residual"]["median"], 1e-18) for r in rows if "milp" in r], "^:", label="MILP median")
    ax2.set_xlabel("N (summands)")
    ax2.set_ylabel("|residual|")
    ax2.legend()
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle("Batched exact Subset-Sum (product distribution, t ~ U[-1,1])")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=int, nargs="+", default=[12, 16, 20, 24, 28])
    ap.add_argument("--batch", type=int, default=0, help="rows per N (0: per-N defaults)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--brute-sample", type=int, default=20)
    ap.add_argument("--milp-sample", type=int, default=10)
    ap.add_argument("--milp-time-limit", type=float, default=10.0)
    ap.add_argument("--device", default=None)
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
