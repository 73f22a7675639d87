"""The scaling the theory predicts (Lueker / Pensia et al., lifted by Ferbach et al. 2023): with N random summands
per Subset-Sum pool the median coefficient residual falls like ``2^{-N}`` (slope ``-ln 2 ≈ -0.69`` of its natural
log per summand), and the kept coefficients track the lower bound ``n_in·n_out·|B|·log2(1/ε)``.

Sweeps N (policy "report": nothing widened) for a C4 steerable CNN (random init; the residual statistics do not
depend on training) and a plain MLP, fits ``ln(median residual)`` against N (per target and per layer, and
against the mean positive pool size), and compares the kept coefficients with the lower bound
(``target · log2(1/(2ε))`` with ε the max residual, as in the certificate, and with ε the median residual).
The counting bound (Pensia et al. 2020, Thm 2) bounds the size of the *random* network needed to approximate
every target within ε; the kept count is shown beside it (it can fall below it).
Repeated for each seed (random target and random network); the slopes are summarised as mean ± std.
Writes ``results/scaling.json`` and ``results/scaling.png`` (the first seed's sweep).

    python benchmarks/paper/scaling.py [--seeds 0 1 2] [--ns 6 8 10 12 14 16 18 20 22] [--channels 4 8]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from _common import RESULTS, Timer, plt, run_arguments, setup, stats, write_json
from equislt.construct import construct
from equislt.data import rotated_digits
from equislt.models import steerable_cnn


def targets(args, seed):
    torch.manual_seed(seed)
    c4 = steerable_cnn("c4", channels=tuple(args.channels)).eval()
    x = rotated_digits("test", size=17).tensors[0][:32]
    mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    return [("c4_steerable", c4, x, True), ("mlp", mlp, torch.randn(64, 64), False)]


def sweep(name, target, x, nonneg, args, seed) -> dict:
    rows = []
    for n in args.ns:
        t0 = time.perf_counter()
        cert = construct(target, x, tol=args.tol, n=n, policy="report", input_nonnegative=nonneg, seed=seed,
                         progress=False).certificate
        layers = [{"path": c.path, "median": c.coefficient_residual["median"], "max": c.coefficient_residual["max"],
                   "pool_positive_mean": c.pool_positive_mean, "target": c.target_coefficients,
                   "kept": c.kept_coefficients, "random": c.random_coefficients, "lower_bound": c.lower_bound}
                  for c in cert.layers]
        total_target = cert.target_coefficients
        median = float(np.exp(sum(l["target"] * math.log(l["median"]) for l in layers) / total_target))
        rows.append({"N": n, "median_residual_geomean": median, "layers": layers,
                     "kept": cert.kept_coefficients, "random": cert.random_coefficients, "target": total_target,
                     "lower_bound_max_eps": cert.lower_bound,
                     "lower_bound_median_eps": sum(l["target"] * math.log2(1 / (2 * l["median"])) for l in layers),
                     "measured_max_error": cert.measured_max_error, "certified_bound": cert.bound,
                     "seconds": time.perf_counter() - t0})
        print(f"[{name} seed {seed}] N={n}: median residual {median:.2e}, kept {cert.kept_coefficients}, lower bound "
              f"{cert.lower_bound:.0f}, ({rows[-1]['seconds']:.1f} s)", flush=True)
    ns = np.array(args.ns, dtype=float)
    fit = np.polyfit(ns, np.log([r["median_residual_geomean"] for r in rows]), 1)
    per_layer = {}
    for i, layer in enumerate(rows[0]["layers"]):
        meds = np.log([r["layers"][i]["median"] for r in rows])
        pools = np.array([r["layers"][i]["pool_positive_mean"] for r in rows])
        per_layer[layer["path"]] = {"slope_per_N": float(np.polyfit(ns, meds, 1)[0]),
                                    "slope_per_pool_summand": float(np.polyfit(pools, meds, 1)[0])}
    ratio = [r["kept"] / r["lower_bound_max_eps"] for r in rows if r["lower_bound_max_eps"] > 0]
    random_ratio = [r["random"] / r["lower_bound_max_eps"] for r in rows if r["lower_bound_max_eps"] > 0]
    return {"target": name, "seed": seed, "sweep": rows, "slope_per_N": float(fit[0]), "intercept": float(fit[1]),
            "per_layer_slopes": per_layer, "kept_over_lower_bound": ratio, "random_over_lower_bound": random_ratio,
            "expected_slope": -math.log(2)}


def plot(results, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for res, color in zip(results, ("C0", "C1", "C2")):
        ns = [r["N"] for r in res["sweep"]]
        med = [r["median_residual_geomean"] for r in res["sweep"]]
        axes[0].semilogy(ns, med, "o", color=color, label=f"{res['target']} (slope {res['slope_per_N']:.3f})")
        axes[0].semilogy(ns, np.exp(res["intercept"] + res["slope_per_N"] * np.array(ns)), "-", color=color, alpha=0.6)
        for key, style, label in (("kept", "o-", "kept"), ("random", "s:", "random"),
                                  ("lower_bound_max_eps", "^--", "lower bound, ε = max residual"),
                                  ("lower_bound_median_eps", "v-.", "n_target·log2(1/(2ε)), ε = median residual")):
            axes[1].semilogy(ns, [r[key] for r in res["sweep"]], style, color=color, alpha=0.8,
                             label=f"{res['target']}: {label}")
    ns = np.array([r["N"] for r in results[0]["sweep"]])
    ref = results[0]["sweep"][0]["median_residual_geomean"] * 2.0 ** (-(ns - ns[0]))
    axes[0].semilogy(ns, ref, "k:", label="2^-N (slope -0.693)")
    axes[0].set(xlabel="N (summands per pool)", ylabel="median |residual| (geo. mean over layers)",
                title="residual vs N")
    axes[1].set(xlabel="N (summands per pool)", ylabel="coefficients", title="kept / random vs lower bound")
    axes[0].legend(fontsize=7)
    axes[1].set_ylim(top=axes[1].get_ylim()[1] * 30)  # room for the legend above the curves
    axes[1].legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[6, 8, 10, 12, 14, 16, 18, 20, 22])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--tol", type=float, default=1e-6, help="only counted (policy report)")
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    results = [sweep(name, target, x, nonneg, args, seed) for seed in args.seeds
               for name, target, x, nonneg in targets(args, seed)]
    names = list(dict.fromkeys(r["target"] for r in results))
    summary = {name: {"slope_per_N": stats(r["slope_per_N"] for r in results if r["target"] == name),
                      "kept_over_lower_bound_at_max_N": stats(r["kept_over_lower_bound"][-1] for r in results
                                                              if r["target"] == name),
                      "expected_slope": -math.log(2)} for name in names}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot([r for r in results if r["seed"] == args.seeds[0]], RESULTS / "scaling.png")
    write_json("scaling", {"settings": vars(args), "summary": summary, "results": results}, clock.start)


if __name__ == "__main__":
    main()
