"""Supermask search on rotated digits: a C4-steerable random network searched at several sparsities vs the
trained dense target of the same architecture, and vs a plain-CNN ticket (same feature width); wall time per
epoch; and the training-step time of one masked escnn layer vs the plain escnn layer.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/search.py --epochs 20 --target-epochs 20 --lr 0.05
        # writes benchmarks/results/search.{json,png} (the committed results came from this command)
    .venv/bin/python benchmarks/search.py --epochs 2 --target-epochs 2 --out /tmp/search.json   # quick

Timings: this sandbox runs the first seconds of every process much slower (about 25x), so a warm-up loop runs
first and step times are medians of interleaved repetitions; epoch times exclude the first epoch of each run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from equislt.search import SearchConfig, run_search
from equislt.search._plots import plot_accuracy_vs_sparsity


def warm_up(seconds: float = 12.0) -> None:
    from equislt.models import steerable_cnn

    model = steerable_cnn("c4", channels=(8, 16))
    x, y = torch.randn(64, 1, 17, 17), torch.randint(0, 10, (64,))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        torch.nn.functional.cross_entropy(model(x), y).backward()


def train_dense(model_name: str, channels, epochs: int, lr: float, seed: int) -> dict:
    from equislt.data import rotated_digits_loaders
    from equislt.models import accuracy, plain_cnn, steerable_cnn, train_classifier

    torch.manual_seed(seed)
    train, test = rotated_digits_loaders(batch_size=64, seed=seed, rotations="c4", test_batch_size=256)
    model = steerable_cnn("c4", channels=channels) if model_name == "steerable_cnn" else plain_cnn(channels=channels)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_classifier(model, train, epochs=1, lr=lr, progress=False)  # constant lr (Adam), as the demo
        seconds.append(time.perf_counter() - start)
    return {"model": model_name, "channels": list(channels), "epochs": epochs, "test_accuracy": accuracy(model, test),
            "trained_parameters": sum(p.numel() for p in model.parameters()),
            "epoch_seconds": seconds, "median_epoch_seconds": statistics.median(seconds[1:] or seconds)}


def search(model_name: str, channels, sparsity: float, args) -> dict:
    config = SearchConfig(model=model_name, model_kwargs={"channels": list(channels)}, sparsity=sparsity,
                          scope=args.scope, ramp=args.ramp, epochs=args.epochs, batch_size=64, lr=args.lr,
                          optimizer="adam", seed=args.seed, out=None, progress=False)
    start = time.perf_counter()
    result = run_search(config, log=lambda *_: None)
    seconds = [t for t in result["epoch_seconds"] if t is not None]
    return {"model": model_name, "channels": list(channels), "sparsity_requested": sparsity,
            "sparsity": result["sparsity"], "test_accuracy": result["test_accuracy"],
            "accuracy_per_epoch": [h["test_accuracy"] for h in result["history"]],
            "coefficients_masked": result["coefficients_masked"], "coefficients_kept": result["coefficients_kept"],
            "epoch_seconds": seconds, "median_epoch_seconds": statistics.median(seconds[1:] or seconds),
            "total_seconds": time.perf_counter() - start}


def layer_step_times(repeats: int, scope: str) -> dict:
    """Median training-step time (forward, backward, SGD step) of one R2Conv vs its supermask version."""
    from escnn import gspaces, nn as enn

    from equislt.nn import score_parameters, supermask

    gs = gspaces.rot2dOnR2(4)
    t_in, t_out = enn.FieldType(gs, 8 * [gs.regular_repr]), enn.FieldType(gs, 16 * [gs.regular_repr])
    torch.manual_seed(0)
    plain = enn.R2Conv(t_in, t_out, kernel_size=5, padding=2)
    masked = supermask(enn.R2Conv(t_in, t_out, kernel_size=5, padding=2), sparsity=0.5, scope=scope)
    x = enn.GeometricTensor(torch.randn(64, t_in.size, 9, 9), t_in)
    setups = {"plain": (plain, torch.optim.SGD(plain.parameters(), lr=0.01)),
              "masked": (masked, torch.optim.SGD(score_parameters(masked), lr=0.01))}

    def step(name):
        layer, opt = setups[name]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        layer(x).tensor.square().mean().backward()
        opt.step()
        return time.perf_counter() - start

    times = {"plain": [], "masked": []}
    for name in times:
        for _ in range(5):
            step(name)
    for i in range(repeats):
        for name in (("plain", "masked") if i % 2 == 0 else ("masked", "plain")):
            times[name].append(step(name))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"layer": "R2Conv C4 8 regular -> 16 regular, kernel 5, input 64x32x9x9", "scope": scope,
            "coefficients": int(plain.weights.numel()), "repeats": repeats,
            "plain_step_ms": 1e3 * medians["plain"], "masked_step_ms": 1e3 * medians["masked"],
            "ratio": medians["masked"] / medians["plain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16], help="regular fields per stage")
    parser.add_argument("--epochs", type=int, default=15, help="search epochs per sparsity")
    parser.add_argument("--target-epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--scope", choices=("layer", "global"), default="layer")
    parser.add_argument("--ramp", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "search.json"))
    args = parser.parse_args()

    warm_up()
    plain_channels = [4 * c for c in args.channels]  # |C4| = 4: the same feature width as the steerable network
    report = {
        "benchmark": "supermask search on rotated digits (C4), equislt.search.run_search",
        "command": "OMP_NUM_THREADS=%s python benchmarks/search.py %s" % (os.environ.get("OMP_NUM_THREADS", "?"),
                                                                         " ".join(sys.argv[1:])),
        "settings": {**vars(args), "batch_size": 64, "optimizer": "adam", "torch_threads": torch.get_num_threads()},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count()},
        "layer_step": [layer_step_times(args.repeats, "layer"), layer_step_times(args.repeats, "global")],
        "dense_targets": [train_dense("steerable_cnn", args.channels, args.target_epochs, 1e-2, args.seed),
                          train_dense("plain_cnn", plain_channels, args.target_epochs, 1e-2, args.seed)],
        "steerable_tickets": [], "plain_tickets": [],
    }
    for s in args.sparsities:
        report["steerable_tickets"].append(search("steerable_cnn", args.channels, s, args))
        report["plain_tickets"].append(search("plain_cnn", plain_channels, s, args))
        print(f"sparsity {s}: C4 ticket {report['steerable_tickets'][-1]['test_accuracy']:.4f}, "
              f"plain ticket {report['plain_tickets'][-1]['test_accuracy']:.4f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    dense = {f"trained dense {d['model']} ({d['test_accuracy']:.3f})": d["test_accuracy"]
             for d in report["dense_targets"]}
    plot_accuracy_vs_sparsity(
        {"C4-steerable ticket (search)": [(r["sparsity"], r["test_accuracy"]) for r in report["steerable_tickets"]],
         "plain-CNN ticket (search)": [(r["sparsity"], r["test_accuracy"]) for r in report["plain_tickets"]]},
        out.with_suffix(".png"), references=dense, title="rotated digits (C4): tickets vs trained dense targets")
    for row in report["layer_step"]:
        print(f"layer step ({row['scope']}): plain {row['plain_step_ms']:.2f} ms, "
              f"masked {row['masked_step_ms']:.2f} ms, ratio {row['ratio']:.3f}")
    for d in report["dense_targets"]:
        print(f"dense {d['model']}: {d['test_accuracy']:.4f}, {d['median_epoch_seconds']:.2f} s/epoch")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
