"""Pensia et al. (NeurIPS 2020), Experiment 1, replicated with equislt's exact batched Subset-Sum solver.

Their protocol (acnagle/optimal-lottery-tickets, ``subset-sum/``): a trained 784-500-10 MLP without biases
(397,000 weights); every weight ``w`` is approximated **directly** by a subset sum of ``n = 3·round(log2(1/ε))``
random values (ε = 0.01 → n = 21) drawn from ``U[min w, max w]`` over all target weights, one fresh set of n
values per row of each weight matrix, shared by that row's entries; one Gurobi MIP per weight
(``|w − a·x| ≤ ε``, MIPGap 0.01). They report all weights within ε, 97.19 % accuracy for target and
approximation (MNIST), 8.34M random / 3.73M kept parameters (9.39× the target) and **77,266 s on 36 cores**.

Here: the same protocol on the bundled digits (upsampled to 28×28: MNIST is not shipped, so the accuracy is not
comparable; the Subset-Sum workload is the same size and distribution; ``--data DIR`` with MNIST's IDX files
reproduces their setting exactly), solved exactly by
``equislt.subsetsum.solve`` — the closest subset (``mode closest``) and the fewest-elements subset within ε
(``mode fewest``, the sparsest ticket the pools allow). Reports solve time, residuals, kept counts and the
accuracy / agreement of the approximated network. Writes ``results/pensia.json`` and ``results/pensia.png``.

    python benchmarks/paper/pensia.py [--seeds 0 1 2] [--eps 0.01] [--c 3] [--epochs 10] [--data MNIST_DIR]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from _common import RESULTS, Timer, compare, data_arguments, image_data, plt, run_arguments, setup, stats, write_json
from equislt.models import train_classifier
from equislt.subsetsum import solve

PENSIA = {"seconds": 77266, "cores": 36, "weights": 397000, "n": 21, "eps": 0.01, "random": 8337000,
          "kept": 3725871, "kept_over_target": 9.39, "accuracy": 0.9719, "solver": "Gurobi MIP per weight, MIPGap 0.01"}


def mnist_like(path=None, options=None):
    """784-pixel train/test sets: MNIST itself from ``--data`` (its IDX files, or any 28x28 image source), else the
    bundled digits upsampled to 29×29, not rotated, cropped to 28×28; ``options``: the shared data options."""
    train, test, _ = image_data(path, seed=0, options={"rotations": "none", **(options or {})}, size=29)
    if train.tensors[0].shape[-1] != 29 or train.tensors[0].shape[1] != 1:  # 28 is padded to 29 (odd side)
        raise SystemExit(f"{path}: the MLP needs 28x28 one-channel images (784 inputs), got "
                         f"{list(train.tensors[0].shape[1:])} once padded")
    return [torch.utils.data.TensorDataset(d.tensors[0][..., :28, :28].flatten(1), d.tensors[1]) for d in (train, test)]


def target_mlp(train, seed, epochs):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 500, bias=False), nn.ReLU(), nn.Linear(500, 10, bias=False))
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    # their training script's defaults: SGD, momentum 0.9, weight decay 5e-4, cosine schedule
    train_classifier(model, loader, epochs=epochs, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                     cosine=True, progress=False)
    return model.eval()


def approximate(model, eps, n, seed, fewest):
    """Replace every weight by its subset sum (the protocol above); returns the new model and statistics."""
    weights = [m.weight.detach().double() for m in model if isinstance(m, nn.Linear)]
    low = min(float(w.min()) for w in weights)
    high = max(float(w.max()) for w in weights)
    gen = torch.Generator().manual_seed(seed)
    approx = []
    kept, residuals, sizes, seconds = 0, [], [], 0.0
    for w in weights:
        pools = low + (high - low) * torch.rand(w.shape[0], n, generator=gen, dtype=torch.float64)  # one per row
        values = pools.repeat_interleave(w.shape[1], dim=0)  # [rows * cols, n]: row r's pool for each entry
        t0 = time.perf_counter()
        result = solve(values.numpy(), w.reshape(-1).numpy(), tol=eps, fewest=fewest)
        seconds += time.perf_counter() - t0
        chosen = np.asarray(result.chosen)
        kept += int(chosen.sum())
        residuals.append(np.abs(np.asarray(result.residual)))
        approx.append((values.numpy() * chosen).sum(1).reshape(tuple(w.shape)))
        sizes.append(chosen.sum(1))
    out = nn.Sequential(nn.Linear(784, 500, bias=False), nn.ReLU(), nn.Linear(500, 10, bias=False)).eval()
    with torch.no_grad():
        out[0].weight.copy_(torch.from_numpy(approx[0]))
        out[2].weight.copy_(torch.from_numpy(approx[1]))
    residual = np.concatenate(residuals)
    return out, {"residual_histogram": np.histogram(np.log10(np.maximum(residual, 1e-12)), bins=40,
                                                    range=(-12, -1))[0].tolist(),
                 "subset_size_histogram": np.bincount(np.concatenate(sizes), minlength=n + 1).tolist(),
                 "solve_seconds": seconds, "kept": kept, "random_counted_as_pensia": n * residual.size,
                 "random_drawn": int(sum(w.shape[0] for w in weights) * n), "weights": int(residual.size),
                 "kept_over_target": kept / residual.size, "max_residual": float(residual.max()),
                 "median_residual": float(np.median(residual)), "frac_within_eps": float((residual <= eps).mean()),
                 "pool_interval": [low, high]}


def plot(runs, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(14, 3.8))
    edges = np.linspace(-12, -1, 41)
    for mode, color in (("closest", "C0"), ("fewest", "C1")):
        run = next(r for r in runs if r["mode"] == mode)
        axes[0].stairs(run["residual_histogram"], edges, color=color, label=mode)
        axes[1].bar(np.arange(len(run["subset_size_histogram"])) + (0.2 if mode == "fewest" else -0.2),
                    run["subset_size_histogram"], 0.4, color=color, label=mode)
    axes[0].axvline(np.log10(runs[0]["eps"]), color="k", ls=":", label="ε")
    axes[0].set(xlabel="log10 |w − subset sum|", ylabel="weights", title="residuals (first seed)")
    axes[1].set(xlabel="summands kept per weight", ylabel="weights", title="subset sizes")
    times = [PENSIA["seconds"]] + [np.mean([r["solve_seconds"] for r in runs if r["mode"] == m])
                                   for m in ("closest", "fewest")]
    axes[2].bar(["Pensia et al.\n(36 cores, Gurobi)", "equislt closest\n(2 cores)", "equislt fewest\n(2 cores)"],
                times, color=["C7", "C0", "C1"])
    axes[2].set(yscale="log", ylabel="seconds", title=f"{runs[0]['weights']:,} Subset-Sum problems")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--c", type=int, default=3, help="n = c * round(log2(1/eps))")
    parser.add_argument("--epochs", type=int, default=10)
    data_arguments(parser, "28x28 images (MNIST's IDX files, class folders or a .npz)")
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    n = args.c * round(math.log2(1 / args.eps))
    train, test = mnist_like(args.data, args.data_kwargs)
    x, y = test.tensors
    runs = []
    for seed in args.seeds:
        target = target_mlp(train, seed, args.epochs)
        with torch.no_grad():
            f = target(x)
        for mode in ("closest", "fewest"):
            approx, info = approximate(target, args.eps, n, seed, fewest=(mode == "fewest"))
            with torch.no_grad():
                g = approx(x)
            row = {"seed": seed, "mode": mode, "n": n, "eps": args.eps, **info, **compare(f, g, y)}
            runs.append(row)
            print(f"[seed {seed} {mode}] {info['weights']:,} problems solved in {info['solve_seconds']:.1f} s; "
                  f"max residual {info['max_residual']:.1e} ({100 * info['frac_within_eps']:.2f}% within eps); "
                  f"kept {info['kept']:,} ({info['kept_over_target']:.2f}x the target); target acc "
                  f"{row['target_accuracy']:.4f}, approx acc {row['ticket_accuracy']:.4f}, agreement "
                  f"{row['prediction_agreement']:.4f}", flush=True)
    summary = {mode: {key: stats(r[key] for r in runs if r["mode"] == mode)
                      for key in ("solve_seconds", "kept", "kept_over_target", "max_residual", "median_residual",
                                  "frac_within_eps", "target_accuracy", "ticket_accuracy", "prediction_agreement")}
               for mode in ("closest", "fewest")}
    for mode, s in summary.items():
        s["speedup_vs_pensia_wall"] = PENSIA["seconds"] / s["solve_seconds"]["mean"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(runs, RESULTS / "pensia.png")
    write_json("pensia", {"settings": vars(args), "n": n, "pensia_2020": PENSIA,
                          "data": {"train": len(train), "test": len(test),
                                   "source": args.data or "scikit-learn digits upsampled to 28x28"},
                          "summary": summary, "runs": runs}, clock.start)


if __name__ == "__main__":
    main()
