"""Shared helpers of the paper-reproduction scripts (Ferbach et al., ICLR 2023): results folder, JSON with
machine info, certificate summaries, batched evaluation, statistics over seeds, image data (bundled or IDX),
plotting backend."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]


def run_arguments(parser) -> None:
    """``--seeds`` (each repeats the whole experiment) and ``--threads``, shared by every paper script."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)


def data_arguments(parser, what: str) -> None:
    """``--data`` (your data instead of the bundled set: ``what`` it must be) and ``--data-kwargs``: the data
    options every equislt data source shares (``equislt.search.DATA_OPTIONS``), as JSON."""
    import json

    parser.add_argument("--data", default=None, help=f"your data instead of the bundled set: {what}")
    parser.add_argument("--data-kwargs", type=json.loads, default={},
                        help="data options as JSON: train_limit, test_limit, rotations, test_fraction, seed")


def search_arguments(parser, sparsities, epochs: int, lr: float) -> None:
    """The supermask-search settings shared by the family scripts (their defaults differ per family)."""
    parser.add_argument("--search-sparsities", type=float, nargs="*", default=list(sparsities))
    parser.add_argument("--search-epochs", type=int, default=epochs)
    parser.add_argument("--search-lr", type=float, default=lr)


def setup(threads: int = 2, seed: int = 0) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def write_json(name: str, payload: dict, start: float) -> Path:
    """Write ``results/<name>.json`` with the command line, machine and wall time added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)  # as run from the repository root
    payload = {"command": "python " + " ".join([script] + sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "platform": platform.platform(), "torch": torch.__version__,
                           "loadavg_at_end": os.getloadavg()},
               "wall_seconds": time.perf_counter() - start, **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path} ({payload['wall_seconds']:.1f} s)")
    return path


def certificate_summary(cert) -> dict:
    """The numbers of a construction certificate that the paper tables report."""
    return {
        "certified_bound": cert.bound, "bound_note": cert.bound_note or None,
        "input_radius": cert.input_radius,
        "measured_max_error": cert.measured_max_error, "measured_relative_error": cert.measured_relative_error,
        "prediction_agreement_trace_inputs": cert.prediction_agreement,
        "rows_over_tol": cert.rows_over_tol,
        "max_coefficient_residual": max(c.coefficient_residual["max"] for c in cert.layers),
        "median_coefficient_residual": [c.coefficient_residual["median"] for c in cert.layers],
        "counts": {"target": cert.target_coefficients, "random": cert.random_coefficients,
                   "kept": cert.kept_coefficients, "lower_bound": cert.lower_bound,
                   "subset_sum_problems": sum(c.n_problems for c in cert.layers)},
        "seconds": cert.seconds,
        "layers": [{"path": c.path, "N": c.n, "extra_copies": c.copies_added, "problems": c.n_problems,
                    "pool_positive_mean": c.pool_positive_mean, "residual": c.coefficient_residual,
                    "rows_over_tol": c.rows_over_tol, "target": c.target_coefficients,
                    "random": c.random_coefficients, "kept": c.kept_coefficients, "lower_bound": c.lower_bound}
                   for c in cert.layers],
    }


def sweep_row(n: int, cert, f: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> dict:
    """One point of a construction sweep over N (policy "report": nothing widened): the pruned random network's
    logits ``g`` against the target's ``f`` on held-out data, and the certificate's counts."""
    return {"N": n, **compare(f, g, y), "certified_bound": cert.bound, "rows_over_tol": cert.rows_over_tol,
            "kept": cert.kept_coefficients, "random": cert.random_coefficients, "lower_bound": cert.lower_bound}


SWEEP_METRICS = ("ticket_accuracy", "prediction_agreement", "max_output_error", "certified_bound", "kept", "random",
                 "lower_bound")


@torch.no_grad()
def batched(model, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Eval-mode outputs of an image model in batches (the random networks are wide)."""
    was = model.training
    model.eval()
    try:
        out = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    out = [o.tensor if hasattr(o, "tensor") and hasattr(o, "type") else o for o in out]
    return torch.cat(out)


def compare(f: torch.Tensor, g: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
    """Target logits ``f`` vs ticket logits ``g`` (and labels ``y``)."""
    out = {"prediction_agreement": float((f.argmax(-1) == g.argmax(-1)).float().mean()),
           "max_output_error": float((f - g).abs().max()),
           "relative_output_error": float((f - g).abs().max() / f.abs().max().clamp(min=1e-12))}
    if y is not None:
        out["target_accuracy"] = float((f.argmax(-1) == y).float().mean())
        out["ticket_accuracy"] = float((g.argmax(-1) == y).float().mean())
    return out


def _get(row: dict, path: str):
    for key in path.split("."):
        row = row[key]
    return row


def stats(values) -> dict:
    """Mean, standard deviation (n − 1), min and max of the numbers over seeds."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values)}


def summarize(rows, key, metrics) -> list:
    """Rows of several seeds grouped by ``key(row)`` (a tuple of settings) → one row per key with
    :func:`stats` of each metric (dotted paths such as ``"counts.kept"``)."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [{"key": list(k), "seeds": len(rs), **{m: stats(_get(r, m) for r in rs) for m in metrics}}
            for k, rs in groups.items()]


def image_data(path: Optional[str], seed: int, options: Optional[dict] = None, size: int = 17):
    """Train/test sets, each a ``TensorDataset``: the bundled digits (``size``², rotated by multiples of 90° unless
    the options say otherwise), or your images at ``path`` (IDX files, class folders, ``.npz``), with the shared
    data ``options``."""
    from equislt.search import build_task

    options = {"rotations": "c4", "seed": seed, **(options or {})}
    task = build_task("rotated_digits", {"size": size, **options} if path is None else options, path)
    source = task.source if path else f"scikit-learn digits, {size}x{size}, rotated by multiples of 90°"
    return _tensor_dataset(task.train), _tensor_dataset(task.test), source


def _tensor_dataset(dataset) -> torch.utils.data.TensorDataset:
    """``(images, labels)`` of a data set as one ``TensorDataset`` (a limited split is a ``Subset``)."""
    if hasattr(dataset, "tensors"):
        return torch.utils.data.TensorDataset(*dataset.tensors[:2])
    images, labels = zip(*((sample[0], sample[1]) for sample in dataset))
    return torch.utils.data.TensorDataset(torch.stack(images), torch.stack([torch.as_tensor(y) for y in labels]))


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
