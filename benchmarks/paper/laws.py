"""The over-parametrisation laws of the three papers, measured: how many random coefficients each way of finding a
ticket needs to bring every target coefficient within a relative tolerance ε.

* Malach et al. (2020), weight subnetworks: every coefficient is one random product ``|u| v`` (``construct(...,
  method="malach")``), so a pool needs ``N ∝ 1/ε`` products: the random coefficients grow like a power of 1/ε
  (exponent 1 in theory, up to a log factor).
* Pensia et al. (2020) / Ferbach et al. (2023), Subset-Sum: every coefficient a subset sum of ``N ∝ log(1/ε)``
  products (Lueker 1998), so the random coefficients grow linearly in ``log2(1/ε)``; the theory's slope is
  ``κ`` random coefficients per summand (the random network has ``N·κ`` coefficients: ``2N`` copies of each input
  field with its lift and mix columns), one summand per halving of ε. Closest subsets and fewest elements within ε
  (Natale et al. 2024) need the same random network and keep different numbers of coefficients.
* The lower bound (Pensia et al. Thm 2, Ferbach et al.): any random network prunable to every target within ε has
  at least ``target · log2(1/(2ε))`` coefficients: slope 1 per bit and target coefficient.
* Malach et al.'s neuron subnetworks (``method="malach_neurons"``: whole hidden fields kept or dropped) are a
  random-features model: the error on a single ReLU neuron falls slowly with the width (fitted power law), far
  above a weight subnetwork of the same random network size.

Each run starts from a small pool (N = 2) and lets the construction widen the input fields that own a coefficient
over ε (4 copies per round for Subset-Sum, doubling for Malach), so the random coefficients are those needed. The
targets are small and randomly initialised (the coefficient statistics need no training): an MLP 16-32-10, a C4
steerable CNN (2, 4) on 9×9 inputs and a 2-IGN (hidden 4) on 6-node graphs. Writes ``results/laws.json`` and
``results/laws.png``.

    python benchmarks/paper/laws.py [--seeds 0 1 2] [--eps 1e-1 ... 1e-4] [--widths 2 4 ... 256]
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
from equislt.models import IGN, steerable_cnn

METHODS = {"malach": {"method": "malach"}, "subset_sum_closest": {"method": "subset_sum"},
           "subset_sum_fewest": {"method": "subset_sum", "fewest": True}}
LABELS = {"malach": "Malach: single products", "subset_sum_closest": "Subset-Sum, closest",
          "subset_sum_fewest": "Subset-Sum, fewest within ε", "lower_bound": "lower bound target·log2(1/(2ε))"}


def targets(seed: int):
    """``(name, target, inputs, input_nonnegative)`` of the three families, random init."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    c4 = steerable_cnn("c4", channels=(2, 4), kernel_size=3, input_size=9, num_classes=10).eval()
    ign = IGN(2, 4, 2, num_layers=1).eval()
    return [("MLP 16-32-10", mlp, torch.randn(64, 16), False),
            ("C4 steerable CNN (2, 4)", c4, torch.rand(32, 1, 9, 9), True),
            ("2-IGN (hidden 4)", ign, (torch.randn(32, 2, 6, 6), torch.rand(32, 6) < 0.8), False)]


def per_summand(target, inputs, nonneg: bool, seed: int) -> float:
    """``κ``: random coefficients per summand of every pool (the random network has ``N·κ``)."""
    cert = construct(target, inputs, tol=0.5, n=8, policy="report", input_nonnegative=nonneg, seed=seed,
                     progress=False).certificate
    return cert.random_coefficients / 8


def law(name: str, target, inputs, nonneg: bool, eps_grid, seed: int) -> dict:
    """Random and kept coefficients needed to reach every ε, per method, with the fitted growth."""
    runs = {}
    for key, options in METHODS.items():
        rows = []
        for eps in eps_grid:
            t0 = time.perf_counter()
            cert = construct(target, inputs, tol=eps, n=2, policy="widen", input_nonnegative=nonneg, seed=seed,
                             progress=False, **options).certificate
            rows.append({"eps": eps, "random": cert.random_coefficients, "kept": cert.kept_coefficients,
                         "rows_over_tol": cert.rows_over_tol, "relative_error": cert.measured_relative_error,
                         "agreement": cert.prediction_agreement, "seconds": time.perf_counter() - t0})
            print(f"[{name} seed {seed}] {key} ε={eps:.0e}: random {cert.random_coefficients:,}, kept "
                  f"{cert.kept_coefficients:,}, rows over ε {cert.rows_over_tol} ({rows[-1]['seconds']:.1f} s)",
                  flush=True)
        runs[key] = rows
    n_target = cert.target_coefficients
    bits = np.log2(1 / np.array(eps_grid))
    malach = np.array([r["random"] for r in runs["malach"]]) / n_target
    closest = np.array([r["random"] for r in runs["subset_sum_closest"]]) / n_target
    kappa = per_summand(target, inputs, nonneg, seed) / n_target
    return {"target": name, "seed": seed, "target_coefficients": n_target, "runs": runs,
            "lower_bound": [n_target * math.log2(1 / (2 * eps)) for eps in eps_grid],
            "fits": {
                "malach_exponent": float(np.polyfit(np.log10(1 / np.array(eps_grid)), np.log10(malach), 1)[0]),
                "malach_exponent_theory": 1.0,
                "subset_sum_slope_per_bit": float(np.polyfit(bits, closest, 1)[0]),
                "subset_sum_slope_per_bit_theory": kappa,
                "lower_bound_slope_per_bit": 1.0,
                "malach_over_subset_sum_at_smallest_eps": float(malach[-1] / closest[-1]),
                "kept_over_target": {key: [r["kept"] / n_target for r in rows] for key, rows in runs.items()}}}


def neurons(widths, seed: int, d: int = 4, fit: int = 2048, test: int = 4096) -> dict:
    """A single ReLU neuron ``σ(w·x + b)`` on ``x ~ N(0, I_d)``: neuron subnetworks of growing width against weight
    subnetworks (Malach's and Subset-Sum's), relative error on held-out inputs against random coefficients."""
    torch.manual_seed(seed)
    target = nn.Sequential(nn.Linear(d, 1), nn.ReLU()).eval()
    x, held_out = torch.randn(fit, d), torch.randn(test, d)
    with torch.no_grad():
        reference = target(held_out)

    def error(ticket) -> float:
        with torch.no_grad():
            return float((ticket(held_out) - reference).norm() / reference.norm())

    rows = []
    for n in widths:
        ticket = construct(target, x, n=n, method="malach_neurons", seed=seed, max_n=max(widths), progress=False)
        cert = ticket.certificate
        rows.append({"n": n, "hidden_width": 2 * n * d, "random": cert.random_coefficients,
                     "kept": cert.kept_coefficients, "relative_error": error(ticket),
                     "fit_relative_error": cert.layers[0].fit_relative_error})
        print(f"[neuron d={d} seed {seed}] hidden {2 * n * d}: error {rows[-1]['relative_error']:.3f}", flush=True)
    weights = {}
    for key in ("malach", "subset_sum_closest"):
        weights[key] = []
        for eps in (1e-1, 3e-2, 1e-2, 3e-3):
            ticket = construct(target, x, tol=eps, n=2, seed=seed, progress=False, **METHODS[key])
            weights[key].append({"eps": eps, "random": ticket.certificate.random_coefficients,
                                 "relative_error": error(ticket)})
    hidden = np.array([r["hidden_width"] for r in rows], dtype=float)
    slope = float(np.polyfit(np.log10(hidden), np.log10([r["relative_error"] for r in rows]), 1)[0])
    return {"d": d, "seed": seed, "fit_inputs": fit, "held_out_inputs": test, "neuron_subnetworks": rows,
            "weight_subnetworks": weights, "error_exponent_in_width": slope}


def plot(laws, neuron_runs, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 4, figsize=(19, 4.4))
    for ax, name in zip(axes[:3], dict.fromkeys(r["target"] for r in laws)):
        res = next(r for r in laws if r["target"] == name)
        inverse = [1 / r["eps"] for r in res["runs"]["malach"]]
        for key, style in (("malach", "o-"), ("subset_sum_closest", "s-"), ("subset_sum_fewest", "^:")):
            ax.loglog(inverse, [r["random"] / res["target_coefficients"] for r in res["runs"][key]], style,
                      label=f"{LABELS[key]}: random")
        ax.loglog(inverse, [r["kept"] / res["target_coefficients"] for r in res["runs"]["malach"]], "o--", color="C0",
                  alpha=0.5, label="Malach: kept")
        ax.loglog(inverse, [r["kept"] / res["target_coefficients"] for r in res["runs"]["subset_sum_fewest"]], "^--",
                  color="C2", alpha=0.5, label="Subset-Sum fewest: kept")
        ax.loglog(inverse, np.array(res["lower_bound"]) / res["target_coefficients"], "k--", label=LABELS["lower_bound"])
        f = res["fits"]
        ax.set(xlabel="1/ε", ylabel="coefficients / target coefficients",
               title=f"{name}\nMalach exponent {f['malach_exponent']:.2f} (theory 1); Subset-Sum "
                     f"{f['subset_sum_slope_per_bit']:.1f}/bit (theory {f['subset_sum_slope_per_bit_theory']:.1f})")
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=6)
    run = neuron_runs[0]
    axes[3].loglog([r["random"] for r in run["neuron_subnetworks"]],
                   [r["relative_error"] for r in run["neuron_subnetworks"]], "o-",
                   label=f"neuron subnetworks (error ∝ width^{run['error_exponent_in_width']:.2f})")
    for key, style in (("malach", "s-"), ("subset_sum_closest", "^-")):
        axes[3].loglog([r["random"] for r in run["weight_subnetworks"][key]],
                       [r["relative_error"] for r in run["weight_subnetworks"][key]], style,
                       label=f"weight subnetworks: {LABELS[key]}")
    axes[3].set(xlabel="random coefficients", ylabel="relative error (held out)",
                title=f"a single ReLU neuron, d = {run['d']}")
    axes[3].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
    parser.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128, 256],
                        help="neuron subnetworks: N (2N hidden fields per input)")
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    laws = [law(name, target, inputs, nonneg, args.eps, seed) for seed in args.seeds
            for name, target, inputs, nonneg in targets(seed)]
    neuron_runs = [neurons(args.widths, seed) for seed in args.seeds]
    summary = {}
    for name in dict.fromkeys(r["target"] for r in laws):
        mine = [r for r in laws if r["target"] == name]
        summary[name] = {
            "target_coefficients": mine[0]["target_coefficients"],
            **{key: stats(r["fits"][key] for r in mine)
               for key in ("malach_exponent", "subset_sum_slope_per_bit", "subset_sum_slope_per_bit_theory",
                           "malach_over_subset_sum_at_smallest_eps")},
            "kept_over_target_at_smallest_eps": {key: stats(r["fits"]["kept_over_target"][key][-1] for r in mine)
                                                 for key in METHODS}}
    summary["single ReLU neuron"] = {"error_exponent_in_width": stats(r["error_exponent_in_width"]
                                                                      for r in neuron_runs)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(laws, neuron_runs, RESULTS / "laws.png")
    write_json("laws", {"settings": vars(args), "summary": summary, "laws": laws, "neurons": neuron_runs},
               clock.start)


if __name__ == "__main__":
    main()
