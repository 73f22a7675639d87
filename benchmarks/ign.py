"""IGNLinear vs a dense basis-tensor reference: forward+backward time and peak memory; optional atlas study.

    python benchmarks/ign.py                 # timing/memory table -> benchmarks/results/ign.json
    python benchmarks/ign.py --atlas         # also: 2-IGN / 3-IGN vs GIN on atlas triangle counting

Each (layer, n, implementation) runs in a fresh subprocess; peak memory is the growth of the process's
maximum resident set size (``ru_maxrss``) during the measured forward+backward passes (CPU, 1 thread).
The dense reference materialises the ``[Bell(k+l), n^l, n^k]`` basis once (counted in its peak memory, not
in its time) and computes ``einsum('ocp,pyx,bcx->boy')``; it is skipped (recorded with its estimated size) above ``--dense-limit-gb``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BATCH, CHANNELS = 4, 8


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(k: int, l: int, n: int, impl: str, repeats: int) -> dict:
    """One measurement (run inside a fresh subprocess)."""
    from equislt.basis import ign_basis_tensor
    from equislt.nn import IGNLinear

    torch.set_num_threads(1)
    torch.manual_seed(0)
    layer = IGNLinear(k, l, CHANNELS, CHANNELS)
    x = torch.randn(BATCH, CHANNELS, *[n] * k, requires_grad=True)
    base = _rss_kb()
    if impl == "dense":
        basis = ign_basis_tensor(k, l, n, "mean", dtype=torch.float32)  # built once, outside the timed loop

        def run():
            return torch.einsum("ocp,pyx,bcx->boy", layer.weight, basis, x.reshape(BATCH, CHANNELS, -1))
    else:
        def run():
            return layer(x)
    run().sum().backward()  # warm-up (also the peak-memory pass)
    peak_mb = (_rss_kb() - base) / 1024
    times = []
    for _ in range(repeats):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        run().sum().backward()
        times.append(time.perf_counter() - start)
    return {"time_ms": 1e3 * sorted(times)[len(times) // 2], "peak_mb": peak_mb}


def _subprocess(k, l, n, impl, repeats):
    code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); sys.argv=['x']; import importlib.util as u; "
            f"s=u.spec_from_file_location('b', {os.path.abspath(__file__)!r}); m=u.module_from_spec(s); "
            f"s.loader.exec_module(m); print(json.dumps(m.measure({k}, {l}, {n}, {impl!r}, {repeats})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def timing_table(dense_limit_gb: float, repeats: int) -> list:
    from equislt.basis import bell_number

    rows = []
    for k, l in [(2, 2), (3, 3)]:
        for n in (8, 16, 32):
            dense_gb = bell_number(k + l) * n ** (k + l) * 4 / 1e9
            row = {"layer": f"{k}->{l}", "n": n, "n_basis": bell_number(k + l), "batch": BATCH,
                   "channels": CHANNELS, "dense_basis_gb": round(dense_gb, 4)}
            row["ign"] = _subprocess(k, l, n, "ign", repeats)
            if dense_gb <= dense_limit_gb:
                row["dense"] = _subprocess(k, l, n, "dense", repeats)
            else:
                row["dense"] = {"skipped": f"the dense basis needs {dense_gb:.1f} GB (limit {dense_limit_gb} GB)"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def atlas_study(epochs: int, seeds) -> dict:
    from torch_geometric.loader import DataLoader

    from equislt.data import GraphAtlas, split_indices, wl_ambiguous
    from equislt.models import IGN, count_parameters, gin_classifier, graph_accuracy, train_graph_model

    torch.set_num_threads(1)
    data = GraphAtlas("triangles")
    ambiguous = wl_ambiguous(data)
    models = {
        "2-IGN": lambda: IGN(2, 16, data.num_classes, num_layers=2, order=2),
        "GIN": lambda: gin_classifier(1, 32, data.num_classes, num_layers=3),
        "3-IGN": lambda: IGN(2, 8, data.num_classes, num_layers=2, order=3),
    }
    results = {name: [] for name in models}
    for seed in seeds:
        train, test = split_indices(len(data), (0.8, 0.2), seed)
        train_loader = DataLoader(data[train], batch_size=32, shuffle=True)
        test_loader = DataLoader(data[test], batch_size=256)
        hard_loader = DataLoader(data[test[ambiguous[test]]], batch_size=256)
        for name, make in models.items():
            torch.manual_seed(seed)
            model = make()
            start = time.time()
            train_graph_model(model, train_loader, epochs=epochs, lr=3e-3)
            entry = {"seed": seed, "parameters": count_parameters(model),
                     "train_acc": graph_accuracy(model, train_loader), "test_acc": graph_accuracy(model, test_loader),
                     "wl_ambiguous_test_acc": graph_accuracy(model, hard_loader),
                     "wl_ambiguous_test_graphs": int(ambiguous[test].sum()), "train_s": round(time.time() - start, 1)}
            results[name].append(entry)
            print(name, json.dumps(entry), flush=True)
    return {"task": "triangles (count capped at 9, 10 classes), x = 1", "epochs": epochs, "split": "80/20 random",
            "results": results}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "ign.json"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-limit-gb", type=float, default=4.0)
    parser.add_argument("--atlas", action="store_true", help="also train 2-IGN, 3-IGN and GIN on atlas triangles")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    report = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(), "threads": 1,
              "timing": timing_table(args.dense_limit_gb, args.repeats)}
    if args.atlas:
        report["atlas"] = atlas_study(args.epochs, args.seeds)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
