"""Benchmark the provable construction: time per phase, peak memory, counts and residuals.

Targets (trained briefly on offline data; training time is not part of the construction):
  * mlp: Pensia et al.'s 784-500-10 MLP (397,000 weights + biases) on digits upsampled to 28x28;
  * c4 / d4: steerable CNNs over regular fields on rotated 17x17 digits (>= 100k coefficients for c4).
Writes benchmarks/results/construct.json. Pensia et al. needed 77,266 s on 36 cores for the MLP.

    python benchmarks/construct.py [--only mlp,c4,d4] [--tol 1e-3] [--n 16] [--policy widen|report]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch
from torch import nn

from equislt.construct import construct
from equislt.data import rotated_digits
from equislt.models import steerable_cnn, train_classifier

RESULTS = Path(__file__).resolve().parent / "results"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _digits(size):
    train, test = rotated_digits("train", size=size, rotations="c4"), rotated_digits("test", size=size, rotations="c4")
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    return loader, test


def _mlp_target():
    # rotated digits come in odd sizes (exact 90° rotations): crop 29x29 to 28x28 = 784 inputs
    train, test = rotated_digits("train", size=29), rotated_digits("test", size=29)
    crop = [torch.utils.data.TensorDataset(d.tensors[0][..., :28, :28].flatten(1), d.tensors[1]) for d in (train, test)]
    loader = torch.utils.data.DataLoader(crop[0], batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Linear(784, 500, bias=False), nn.ReLU(), nn.Linear(500, 10, bias=False))
    train_classifier(model, loader, epochs=3, lr=1e-3, progress=False)
    return model, crop[1]


def _steerable_target(group, channels, epochs):
    loader, test = _digits(17)
    model = steerable_cnn(group, channels=channels)
    train_classifier(model, loader, epochs=epochs, lr=1e-2, progress=False)
    return model, test


def run(name, tol, n, policy="widen"):
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if name == "mlp":
        target, test = _mlp_target()
    else:
        # c4: 32 -> 80 regular fields, >= 100k steerable coefficients; d4: the same design with (8, 16)
        target, test = _steerable_target(name, (32, 80) if name == "c4" else (8, 16), 1 if name == "c4" else 3)
    train_time = time.perf_counter() - t0
    x, y = test.tensors
    if name != "mlp":  # the random steerable networks are wide: trace and measure on 96 held-out images
        x, y = x[:96], y[:96]
    n_coefficients = sum(p.numel() for n, p in target.named_parameters() if "weight" in n and p.dim() != 1 or
                         n.endswith("weights"))
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    ticket = construct(target, x, tol=tol, n=n, policy=policy, input_nonnegative=True, progress=False)
    total = time.perf_counter() - t0
    cert = ticket.certificate
    with torch.no_grad():
        target.eval()
        f, g = target(x), ticket.network(x)
    return {
        "target": name,
        "policy": policy,
        "rows_over_tol": cert.rows_over_tol,
        "max_coefficient_residual": max(layer.coefficient_residual["max"] for layer in cert.layers),
        "target_weight_coefficients": n_coefficients,
        "target_accuracy": float((f.argmax(1) == y).float().mean()),
        "ticket_accuracy": float((g.argmax(1) == y).float().mean()),
        "prediction_agreement": float((f.argmax(1) == g.argmax(1)).float().mean()),
        "max_output_error": float((f - g).abs().max()),
        "certified_bound": cert.bound,
        "seconds": {**cert.seconds, "construct_excluding_evaluation": cert.seconds["build"] + cert.seconds["solve"],
                    "construct_total": total, "target_training": train_time},
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_before_construct": rss_before,
        "counts": {"target": cert.target_coefficients, "random": cert.random_coefficients,
                   "kept": cert.kept_coefficients, "lower_bound": cert.lower_bound,
                   "subset_sum_problems": sum(layer.n_problems for layer in cert.layers)},
        "layers": [{"path": layer.path, "N": layer.n, "widened_fields": layer.widened_fields,
                    "extra_copies": layer.copies_added,
                    "problems": layer.n_problems, "residual": layer.coefficient_residual,
                    "rows_over_tol": layer.rows_over_tol} for layer in cert.layers],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="mlp,c4,d4")
    parser.add_argument("--tol", type=float, default=1e-3, help="tolerance counted in the report")
    parser.add_argument("--n", type=int, default=16, help="summands per pool before widening")
    parser.add_argument("--policy", default="widen", choices=("widen", "report"),
                        help="rows over tol: widen the input fields that own them (default) or only report them")
    args = parser.parse_args()
    runs = []
    for name in args.only.split(","):
        result = run(name, args.tol, args.n, args.policy)
        print(json.dumps({k: result[k] for k in ("target", "policy", "target_weight_coefficients", "rows_over_tol",
                                                 "max_coefficient_residual", "prediction_agreement",
                                                 "max_output_error", "seconds", "peak_rss_mb", "counts")}))
        runs.append(result)
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": {"cores": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                           "loadavg_at_start": os.getloadavg()},
               "tol": args.tol, "n": args.n, "policy": args.policy, "runs": runs,
               "reference": {"pensia_2020_mlp_seconds": 77266, "pensia_2020_cores": 36}}
    (RESULTS / "construct.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {RESULTS / 'construct.json'}")


if __name__ == "__main__":
    main()
