"""Benchmark the provable construction at the scale of real models: time per phase, peak memory, agreement.

Targets (each constructed in a fresh process, so that its peak memory is its own):
  * c8: a C8 steerable CNN, regular fields (16, 32, 32, 64), kernel 5, batch norm, pooling, group pooling, linear
    head, for 29x29 images (316,362 coefficients); random He init, batch-norm statistics from 2 batches;
  * mlp: Pensia et al.'s 784-500-10 MLP, *trained* on the bundled digits (28x28): the accuracy check;
  * resnet18_w16: a ResNet-18 for 3x32x32 images at width 16 (701,466 coefficients), random He init;
  * mnist_rot: escnn's MNIST-rot example architecture (C8; regular fields 24, 48, 48, 96, 96, 64; kernels 7, 5, 5,
    5, 5, 5; batch norm, two max-pools, group pooling, a Linear-BN-ReLU-Linear head): 2.07M coefficients;
  * resnet18: the ResNet-18 at width 64 (11.2M coefficients; residual adds, batch norm).
Agreement and the largest output error are measured on 1,024 inputs (held-out rotated digits first for the models
made for digits, uniform random images for the ResNets); the ticket runs in its compact form, whose forward time
on 128 inputs (best of 3) is compared with the target's. Writes benchmarks/results/construct.json and construct.png (log-log time and peak
memory against target coefficients, with the fitted slopes).

    python benchmarks/construct.py [--only c8,mlp,...] [--tol 1e-3] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ("c8", "mlp", "resnet18_w16", "mnist_rot", "resnet18")
PROBES = 64  # inputs the construction traces and measures on (the benchmark measures on >= 1,000 more)
EVALUATE = 1024  # inputs for the agreement and the largest output error


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- targets ------------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 for 3x32x32 images (a 3x3 stem, four stages of two basic blocks, global average pooling)."""

    def __init__(self, width=64, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            for j in range(2):
                blocks.append(BasicBlock(c, width * mult, 2 if (i and not j) else 1))
                c = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


def mnist_rot_c8():
    """escnn's MNIST-rot example architecture (C8), with max pools and a ReLU head."""
    from escnn import gspaces
    from escnn import nn as enn

    class MnistRotC8(nn.Module):
        def __init__(self):
            super().__init__()
            g = gspaces.rot2dOnR2(8)
            self.in_type = field = enn.FieldType(g, [g.trivial_repr])
            layers = []
            for spec in [(24, 7, 1), (48, 5, 2), "pool", (48, 5, 2), (96, 5, 2), "pool", (96, 5, 2), (64, 5, 1)]:
                if spec == "pool":
                    layers.append(enn.PointwiseMaxPool2D(field, 3, 2, 1))
                    continue
                channels, kernel, padding = spec
                out = enn.FieldType(g, channels * [g.regular_repr])
                layers += [enn.R2Conv(field, out, kernel, padding=padding), enn.InnerBatchNorm(out),
                           enn.ReLU(out, inplace=True)]
                field = out
            layers.append(enn.GroupPooling(field))
            self.features = enn.SequentialModule(*layers)
            self.head = nn.Sequential(nn.Linear(layers[-1].out_type.size, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                      nn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.features(enn.GeometricTensor(x, self.in_type)).tensor.mean(dim=(-2, -1)))

    return MnistRotC8()


def _digits(size, crop=None):
    from equislt.data import rotated_digits

    train, test = rotated_digits("train", size=size, rotations="c4"), rotated_digits("test", size=size, rotations="c4")
    xs = [d.tensors[0] if crop is None else d.tensors[0][..., :crop, :crop].flatten(1) for d in (train, test)]
    return (xs[0], train.tensors[1]), (xs[1], test.tensors[1])


def _warm_batchnorm(model, batches):
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    return model.eval()


def make_target(name):
    """``(target, probes, inputs, labelled test set or None, input_nonnegative)``."""
    torch.manual_seed(0)
    if name == "mlp":
        from equislt.models import train_classifier

        (x, y), (xt, yt) = _digits(29, crop=28)
        model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        train_classifier(model, loader, epochs=5, lr=1e-3, progress=False)
        return model.eval(), x[:PROBES], torch.cat([xt, x])[:EVALUATE], (xt, yt), True
    if name in ("c8", "mnist_rot"):
        from equislt.models import steerable_cnn

        (x, _), (xt, _) = _digits(29)
        model = (steerable_cnn("c8", channels=(16, 32, 32, 64), kernel_size=5, input_size=29) if name == "c8"
                 else mnist_rot_c8())
        _warm_batchnorm(model, [x[:32], x[32:64]])
        return model, x[:PROBES], torch.cat([xt, x])[:EVALUATE], None, True
    width = 16 if name == "resnet18_w16" else 64
    model = _warm_batchnorm(ResNet18(width), [torch.rand(32, 3, 32, 32) for _ in range(2)])
    inputs = torch.rand(EVALUATE + PROBES, 3, 32, 32)
    return model, inputs[:PROBES], inputs[PROBES:], None, True


def _coefficients(model) -> int:
    """Coefficients of the target's linear layers (weights and biases; batch norms fold into them)."""
    from equislt.basis import blocks
    from equislt.construct import family_of

    return sum(b.numel for m in model.modules() if family_of(m) is not None for b in blocks(m))


@torch.no_grad()
def _batched(model, x, size=256):
    return torch.cat([model(chunk) for chunk in x.split(size)])


@torch.no_grad()
def _forward_seconds(model, x, repeats=3):
    model(x[:8])
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        _batched(model, x)
        best = min(best, time.perf_counter() - start)
    return best


def child(name, tol, seed):
    from equislt.construct import construct

    start = time.perf_counter()
    target, probes, inputs, test, nonnegative = make_target(name)
    setup = time.perf_counter() - start
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    ticket = construct(target, probes, tol=tol, seed=seed, input_nonnegative=nonnegative, progress=False)
    construct_seconds = time.perf_counter() - start
    rss_construct = _peak_rss_mb()
    cert = ticket.certificate
    start = time.perf_counter()
    f, g = _batched(target, inputs), _batched(ticket, inputs)
    evaluate = time.perf_counter() - start
    speed = inputs[:128]
    result = {
        "target": name, "target_coefficients": _coefficients(target), "seconds": {
            **{k: round(v, 3) for k, v in cert.seconds.items()}, "construct_total": construct_seconds,
            f"evaluate_{len(inputs)}_inputs": evaluate, "target_setup": setup},
        "peak_rss_mb": _peak_rss_mb(), "peak_rss_mb_after_construct": rss_construct,
        "peak_rss_mb_before_construct": rss_before,
        "inputs_measured": len(inputs),
        "prediction_agreement": float((f.argmax(1) == g.argmax(1)).float().mean()),
        "max_output_error": float((f - g).abs().max()),
        "relative_output_error": float((f - g).abs().max() / f.abs().max()),
        "forward_seconds_128": {"target": _forward_seconds(target, speed), "ticket": _forward_seconds(ticket, speed)},
        "rows_over_tol": cert.rows_over_tol,
        "counts": {"target": cert.target_coefficients, "random": cert.random_coefficients,
                   "kept": cert.kept_coefficients, "lower_bound": cert.lower_bound,
                   "subset_sum_problems": sum(layer.n_problems for layer in cert.layers)},
        "layers": [{"path": layer.path, "N": layer.n, "widened_fields": layer.widened_fields,
                    "extra_copies": layer.copies_added, "problems": layer.n_problems,
                    "max_residual": layer.coefficient_residual["max"], "rows_over_tol": layer.rows_over_tol}
                   for layer in cert.layers],
    }
    times = result["forward_seconds_128"]
    result["ticket_forward_vs_target"] = times["ticket"] / times["target"]
    if test is not None:
        xt, yt = test
        result["target_accuracy"] = float((_batched(target, xt).argmax(1) == yt).float().mean())
        result["ticket_accuracy"] = float((_batched(ticket, xt).argmax(1) == yt).float().mean())
    return result


def _slope(xs, ys):
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _plot(runs, fits, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    xs = [r["target_coefficients"] for r in runs]
    for ax, key, label in ((axes[0], "time", "construction time (s)"), (axes[1], "memory", "peak memory (MB)")):
        ys = [r["seconds"]["construct_total"] if key == "time" else r["peak_rss_mb"] for r in runs]
        ax.loglog(xs, ys, "o")
        for x, y, r in zip(xs, ys, runs):
            ax.annotate(r["target"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        fit = fits[key]
        line = [math.exp(fit["intercept"]) * x ** fit["slope"] for x in (min(xs), max(xs))]
        ax.loglog([min(xs), max(xs)], line, "--", label=f"fitted slope {fit['slope']:.2f}")
        ax.set_xlabel("target coefficients")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return str(path.relative_to(RESULTS.parent.parent))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ORDER))
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.tol, args.seed)))
        return
    names = [n for n in ORDER if n in args.only.split(",")]
    runs = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--tol", str(args.tol), "--seed",
                              str(args.seed), "--threads", str(args.threads)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(f"{name}: {r['target_coefficients']:,} coefficients, {r['seconds']['construct_total']:.1f} s "
              f"(draw {r['seconds']['draw']:.1f}, solve {r['seconds']['solve']:.1f}), peak {r['peak_rss_mb']:.0f} MB, "
              f"agreement {r['prediction_agreement']:.4f} on {r['inputs_measured']}, ticket forward "
              f"{r['ticket_forward_vs_target']:.2f}x the target's", flush=True)
    runs.sort(key=lambda r: r["target_coefficients"])
    xs = [r["target_coefficients"] for r in runs]
    fits = {}
    for key, ys in (("time", [r["seconds"]["construct_total"] for r in runs]),
                    ("memory", [r["peak_rss_mb"] for r in runs])):
        slope = _slope(xs, ys) if len(runs) > 1 else float("nan")
        mx, my = (sum(math.log(v) for v in xs) / len(xs), sum(math.log(v) for v in ys) / len(ys))
        fits[key] = {"slope": slope, "intercept": my - slope * mx,
                     "slope_smallest_to_largest": (math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])
                                                   if len(runs) > 1 else float("nan"))}
    RESULTS.mkdir(exist_ok=True)
    data = {
        "command": "python benchmarks/construct.py" + ("" if args.only == ",".join(ORDER) else f" --only {args.only}"),
        "machine": {"cores": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                    "torch": torch.__version__},
        "tol": args.tol, "seed": args.seed, "probes": PROBES, "runs": runs, "fits": fits,
        "targets": {"c8_seconds": 20, "c8_peak_mb": 1536, "large_seconds": 600, "large_peak_mb": 8192,
                    "agreement": 0.999, "ticket_forward_vs_target": 2.5, "time_slope": 1.1},
        "reference": {"pensia_2020_mlp_seconds": 77266, "pensia_2020_cores": 36},
    }
    data["plot"] = _plot(runs, fits, RESULTS / "construct.png")
    (RESULTS / "construct.json").write_text(json.dumps(data, indent=2))
    print(f"time slope {fits['time']['slope']:.2f} (smallest to largest {fits['time']['slope_smallest_to_largest']:.2f}), "
          f"memory slope {fits['memory']['slope']:.2f}; wrote {RESULTS / 'construct.json'}")


if __name__ == "__main__":
    main()
