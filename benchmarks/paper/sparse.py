"""Sparse tickets: kept / target coefficients at prediction agreement >= 0.999, per family.

Pensia et al. (2020) kept 9.39× their target's weights (closest subsets of 21 random values per weight). Fewest
elements within a tolerance from larger pools (Natale et al. 2024) keep fewer, but a per-coefficient tolerance
lets errors add up; ``equislt.construct.construct_sparse`` picks the tolerance of every layer from the certificate,
solves with error feedback (each residual folded into the coefficients still to solve, so that residuals cancel in
the layer's output; ``--no-feedback`` turns it off), keeps nothing of features silent on the selection inputs
(a ReLU channel that never fires there, a sign half never taken; ``--keep-silent`` solves them too), lowers a
common level until the ticket agrees with its target on the selection inputs, then doubles each layer's tolerance
while it still agrees (``--no-refine`` skips this). This script trains the targets of the family scripts (same
settings and seeds: C4 and D4 steerable CNNs (8, 16) and an MLP 289-64-10 on rotated digits, a 2-IGN, GIN and GCN
on atlas triangle counting; every input is non-negative), constructs the closest-subset ticket (the family
scripts' default, tol 1e-5) and the sparse one, and reports kept / target for both with the agreement on held-out
inputs the selection never saw: for images, fresh continuous rotations of the test digits (4 per digit); for
graphs, the test split. The selection inputs come from the targets' training data (the training digits at
continuous rotations, the targets having seen them at multiples of 90°; the training graphs): ``construct_sparse``
advises inputs the target was not trained on, but the training set is the largest there is, and the held-out
agreement says what the selection's is worth. Writes ``results/sparse.json`` and ``results/sparse.png``.

    python benchmarks/paper/sparse.py [--seeds 0 1 2] [--n 32] [--agreement 0.999] [--no-feedback] [--keep-silent]
        [--no-refine]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from _common import RESULTS, Timer, plt, run_arguments, setup, stats, write_json
from equislt.construct import construct, construct_sparse, margin_agreement
from equislt.data import dense_graph_batch, rotated_digits
from equislt.subsetsum import MAX_N
from equislt.models import IGN, GraphClassifier, steerable_cnn, train_classifier, train_graph_model
from mpnn import pyg_model
from equislt.search import build_task


class _MLP(nn.Sequential):
    def __init__(self, size: int):
        super().__init__(nn.Flatten(), nn.Linear(size * size, 64), nn.ReLU(), nn.Linear(64, 10))


def _images(seed: int):
    train = rotated_digits("train", size=17, rotations="continuous", seed=0)
    test = torch.cat([rotated_digits("test", size=17, rotations="continuous", seed=s).tensors[0]
                      for s in range(1, 5)])
    return train, test


def image_targets(seed: int, epochs: int):
    train, held_out = _images(seed)
    loader = torch.utils.data.DataLoader(rotated_digits("train", size=17, seed=0), batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    out = []
    for name, make in (("steerable CNN C4 (8, 16)", lambda: steerable_cnn("c4", channels=(8, 16), input_size=17)),
                       ("steerable CNN D4 (8, 16)", lambda: steerable_cnn("d4", channels=(8, 16), input_size=17)),
                       ("MLP 289-64-10", lambda: _MLP(17))):
        torch.manual_seed(seed)
        target = make()
        train_classifier(target, loader, epochs=10, lr=1e-2, progress=False)
        out.append((name, target.eval(), train.tensors[0], held_out, True))
    return out


def graph_targets(seed: int, epochs: int):
    from torch_geometric.data import Batch
    from torch_geometric.loader import DataLoader

    task = build_task("graph_atlas", {"task": "triangles", "features": "ones", "seed": 0}, None)
    train, test = list(task.train), list(task.test)
    n = max(g.num_nodes for g in train + test)
    dense = {}
    for split, graphs in (("train", train), ("test", test)):
        x, mask = dense_graph_batch(Batch.from_data_list(graphs), max_nodes=n)
        dense[split] = (x, mask)
    loader = DataLoader(task.train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    out = []
    torch.manual_seed(seed)
    ign = IGN(dense["train"][0].shape[1], 16, task.num_classes, num_layers=2, order=2)
    train_graph_model(ign, loader, epochs=epochs, lr=3e-3)
    out.append(("2-IGN atlas-triangles", ign.eval(), dense["train"], dense["test"], True))  # ones, 0/1 adjacency
    features = build_task("graph_atlas", {"task": "triangles", "features": "degree", "seed": 0}, None)
    whole = {split: Batch.from_data_list(list(graphs)) for split, graphs in (("train", features.train),
                                                                              ("test", features.test))}
    for kind in ("gin", "gcn"):  # as in mpnn.py: degree features, batches of 64
        torch.manual_seed(seed)
        model = GraphClassifier(pyg_model(kind, features.train[0].x.shape[1], 32, 3), 32, features.num_classes)
        train_graph_model(model, DataLoader(features.train, batch_size=64, shuffle=True,
                                            generator=torch.Generator().manual_seed(seed)), epochs=epochs, lr=3e-3)
        out.append((f"{kind.upper()} atlas-triangles", model.eval(),
                    (whole["train"].x.float(), whole["train"].edge_index, whole["train"].batch),
                    (whole["test"].x.float(), whole["test"].edge_index, whole["test"].batch), True))  # one-hots
    return out


@torch.no_grad()
def _logits(model, inputs) -> torch.Tensor:
    """``model(inputs)`` (``model(*inputs)`` for a tuple) as a tensor."""
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return getattr(out, "tensor", out)


@torch.no_grad()
def _agreement(target, ticket, inputs) -> float:
    f, g = _logits(target, inputs), _logits(ticket.compiled, inputs)
    return float((f.argmax(1) == g.argmax(1)).float().mean())


@torch.no_grad()
def _smallest_margins(target, inputs, count: int = 4) -> list:
    """The ``count`` smallest gaps between the target's top two logits on ``inputs``, over its largest |logit|."""
    f = _logits(target, inputs)
    top = f.topk(2, dim=1).values
    return ((top[:, 0] - top[:, 1]) / f.abs().max()).sort().values[:count].tolist()


def run(name, target, selection, held_out, nonneg, args, seed) -> dict:
    t0 = time.perf_counter()
    closest = construct(target, selection, tol=1e-5, seed=seed, input_nonnegative=nonneg, progress=False)
    closest_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    sparse = construct_sparse(target, selection, agreement=args.agreement, n=args.n, seed=seed,
                              input_nonnegative=nonneg, feedback=not args.no_feedback,
                              prune_silent=not (args.no_feedback or args.keep_silent), refine=not args.no_refine,
                              progress=False,
                              log=lambda line: print(f"  {line}"))
    sparse_seconds = time.perf_counter() - t0
    cert, reference = sparse.certificate, closest.certificate
    row = {"target": name, "seed": seed, "target_coefficients": cert.target_coefficients,
           "closest": {"kept": reference.kept_coefficients, "random": reference.random_coefficients,
                       "kept_over_target": reference.kept_coefficients / reference.target_coefficients,
                       "held_out_agreement": _agreement(target, closest, held_out), "seconds": closest_seconds},
           "sparse": {"kept": cert.kept_coefficients, "random": cert.random_coefficients,
                      "kept_over_target": cert.kept_coefficients / cert.target_coefficients,
                      "selection_agreement": cert.prediction_agreement,
                      "held_out_agreement": _agreement(target, sparse, held_out),
                      "held_out_margin_agreement": margin_agreement(target, sparse.compiled, held_out),
                      "layer_tolerances": {layer.path: layer.tol for layer in cert.layers},
                      "layer_kept_over_target": {layer.path: layer.kept_coefficients / layer.target_coefficients
                                                 for layer in cert.layers},
                      "silent_rows": cert.silent_rows, "problems": sum(layer.n_problems for layer in cert.layers),
                      "target_smallest_margins": _smallest_margins(target, selection),
                      "seconds": sparse_seconds}}
    print(f"[{name} seed {seed}] kept/target: closest {row['closest']['kept_over_target']:.2f}, sparse "
          f"{row['sparse']['kept_over_target']:.2f}; held-out agreement {row['sparse']['held_out_agreement']:.4f} "
          f"({sparse_seconds:.0f} s)", flush=True)
    return row


def plot(rows, path):
    pyplot = plt()
    names = list(dict.fromkeys(r["target"] for r in rows))
    fig, ax = pyplot.subplots(figsize=(9, 4))
    for k, (key, label) in enumerate((("closest", "closest subsets, tol 1e-5"), ("sparse", "construct_sparse"))):
        values = [stats(r[key]["kept_over_target"] for r in rows if r["target"] == name) for name in names]
        ax.bar([i + 0.4 * k for i in range(len(names))], [v["mean"] for v in values], 0.4,
               yerr=[v["std"] for v in values], label=label)
    ax.axhline(9.39, color="k", ls=":", label="Pensia et al. 2020 (9.39)")
    ax.axhline(3, color="C3", ls="--", label="goal (3)")
    ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=20, ha="right", fontsize=7)
    ax.set(ylabel="kept / target coefficients", ylim=(0, 15))
    ax.legend(fontsize=7, loc="upper center", ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=MAX_N, help="summands per pool of the sparse construction (default: "
                        "the exact solver's largest, as in construct_sparse)")
    parser.add_argument("--agreement", type=float, default=0.999)
    parser.add_argument("--graph-epochs", type=int, default=100)
    parser.add_argument("--no-feedback", action="store_true", help="construct_sparse without error feedback")
    parser.add_argument("--keep-silent", action="store_true", help="solve the problems of features silent on the "
                        "selection inputs too (construct_sparse's prune_silent=False)")
    parser.add_argument("--no-refine", action="store_true", help="keep the bisection's tolerances (construct_sparse's "
                        "refine=False)")
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    rows = []
    for seed in args.seeds:
        for targets in (graph_targets(seed, args.graph_epochs), image_targets(seed, 10)):
            for name, target, selection, held_out, nonneg in targets:
                rows.append(run(name, target, selection, held_out, nonneg, args, seed))
    summary = {}
    for name in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == name]
        summary[name] = {"target_coefficients": mine[0]["target_coefficients"],
                         **{f"{key}.{metric}": stats(r[key][metric] for r in mine)
                            for key in ("closest", "sparse") for metric in ("kept_over_target", "held_out_agreement")},
                         "sparse.selection_agreement": stats(r["sparse"]["selection_agreement"] for r in mine)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "sparse.png")
    write_json("sparse", {"settings": vars(args), "summary": summary, "runs": rows}, clock.start)


if __name__ == "__main__":
    main()
