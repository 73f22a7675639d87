"""Ferbach et al. (ICLR 2023), family 3: strong lottery tickets in message-passing networks (PyG GIN, GCN).

Targets: GIN and GCN(bias=False) graph classifiers (sum pooling + Linear head) on GraphAtlas tasks, and GIN /
GCN(bias=False) node classifiers on KarateClub (one labelled node per class). Tickets by construction
(``tol=1e-4``, policy "widen"): held-out accuracy of the pruned random network, agreement, max output error,
counts, node-permutation error (invariance for graph-level, equivariance for node-level outputs). The certified
bound is unavailable for PyG targets (the aggregations are glue the certificate cannot follow); it is recorded
as such. Writes ``results/mpnn.json`` and ``results/mpnn.png``.

    python benchmarks/paper/mpnn.py [--tasks connected,triangles] [--hidden 32] [--epochs 100] [--tol 1e-4]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from _common import RESULTS, Timer, certificate_summary, compare, plt, setup, write_json
from equislt.construct import construct
from equislt.data import GraphAtlas, karate_club, split_indices
from equislt.models import GraphClassifier, count_parameters, train_graph_model


def pyg_model(kind, in_channels, hidden, layers, out_channels=None):
    from torch_geometric.nn.models import GCN, GIN

    if kind == "gin":
        return GIN(in_channels, hidden, layers, out_channels=out_channels)
    return GCN(in_channels, hidden, layers, out_channels=out_channels, bias=False)


@torch.no_grad()
def permutation_error(model, x, edge_index, batch=None, n_perms=4, seed=0) -> float:
    """Max relative error ``|f(P·G) − P·f(G)|`` over random node relabellings of the whole (batched) graph;
    graph-level outputs (``batch`` given) must be invariant, node-level ones equivariant."""
    model.eval()
    call = (lambda a, b, c: model(a, b, c)) if batch is not None else (lambda a, b, c: model(a, b))
    y = call(x, edge_index, batch)
    scale = float(y.abs().max()) + 1e-12
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(n_perms):
        perm = torch.randperm(x.shape[0], generator=gen)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(len(perm))
        y2 = call(x[perm], inv[edge_index], None if batch is None else batch[perm])
        ref = y if batch is not None else y[perm]
        worst = max(worst, float((y2 - ref).abs().max()) / scale)
    return worst


def ticket_row(name, target, inputs, y, eval_mask, args, train_seconds) -> dict:
    target.eval()
    t0 = time.perf_counter()
    ticket = construct(target, inputs, tol=args.tol, policy="widen", seed=args.seed, progress=False)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        f, g = target(*inputs), ticket.network.eval()(*inputs)
    row = {"model": name, "target_parameters": count_parameters(target), "target_seconds": train_seconds,
           "construct_seconds": seconds, **compare(f[eval_mask], g[eval_mask], y[eval_mask]),
           **certificate_summary(ticket.certificate),
           "permutation_error": {"ticket": permutation_error(ticket.network, *inputs, seed=args.seed),
                                 "target": permutation_error(target, *inputs, seed=args.seed)}}
    print(f"[{name}] target acc {row['target_accuracy']:.3f}, ticket acc {row['ticket_accuracy']:.3f}, agree "
          f"{row['prediction_agreement']:.3f}, max err {row['max_output_error']:.2e}, kept "
          f"{row['counts']['kept']}/{row['counts']['random']} (target {row['counts']['target']}), perm err "
          f"{row['permutation_error']['ticket']:.1e} ({seconds:.1f} s)", flush=True)
    return row


def atlas_rows(task, args) -> list:
    from torch_geometric.loader import DataLoader

    dataset = GraphAtlas(task, min_nodes=1, max_nodes=7, features="degree")
    train_idx, test_idx = split_indices(len(dataset), (0.8, 0.2), seed=args.seed)
    loader = DataLoader(dataset[train_idx], batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    test = next(iter(DataLoader(dataset[test_idx], batch_size=len(test_idx), shuffle=False)))
    inputs = (test.x.float(), test.edge_index, test.batch)
    rows = []
    for kind in ("gin", "gcn"):
        torch.manual_seed(args.seed)
        target = GraphClassifier(pyg_model(kind, dataset.num_features, args.hidden, args.layers), args.hidden,
                                 dataset.num_classes)
        t0 = time.perf_counter()
        train_graph_model(target, loader, epochs=args.epochs, lr=3e-3)
        rows.append(ticket_row(f"{kind.upper()} atlas-{task}", target, inputs, test.y.view(-1),
                               torch.ones(len(test_idx), dtype=torch.bool), args, time.perf_counter() - t0))
    return rows


def karate_rows(args) -> list:
    data = karate_club()
    rows = []
    for kind in ("gin", "gcn"):
        torch.manual_seed(args.seed)
        target = pyg_model(kind, data.num_features, args.hidden, 2, out_channels=4)
        optimizer = torch.optim.Adam(target.parameters(), lr=1e-2, weight_decay=5e-4)
        t0 = time.perf_counter()
        target.train()
        for _ in range(args.karate_epochs):
            optimizer.zero_grad()
            out = target(data.x, data.edge_index)
            loss = nn.functional.cross_entropy(out[data.train_mask], data.y[data.train_mask])
            loss.backward()
            optimizer.step()
        rows.append(ticket_row(f"{kind.upper()} karate", target, (data.x, data.edge_index), data.y, data.test_mask,
                               args, time.perf_counter() - t0))
    return rows


def plot(rows, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(12, 4))
    pos = list(range(len(rows)))
    names = [r["model"] for r in rows]
    axes[0].bar([p - 0.2 for p in pos], [r["target_accuracy"] for r in rows], 0.4, label="target")
    axes[0].bar([p + 0.2 for p in pos], [r["ticket_accuracy"] for r in rows], 0.4, label="constructed ticket")
    axes[0].set(xticks=pos, ylabel="held-out accuracy", title="accuracy")
    axes[0].set_xticklabels(names, rotation=15, fontsize=8)
    axes[0].legend(fontsize=8)
    for key, marker in (("target", "o"), ("random", "s"), ("kept", "^"), ("lower_bound", "v")):
        axes[1].scatter(pos, [r["counts"][key] for r in rows], marker=marker, label=key)
    axes[1].set(xticks=pos, yscale="log", ylabel="coefficients", title="counts", xlim=(-0.5, len(rows) - 0.5))
    axes[1].set_xticklabels(names, rotation=15, fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("MPNN tickets by construction (GIN, GCN without conv bias)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="connected,triangles", help="GraphAtlas tasks, comma-separated")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--karate-epochs", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seed)
    rows = [row for task in args.tasks.split(",") for row in atlas_rows(task, args)] + karate_rows(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "mpnn.png")
    write_json("mpnn", {"settings": vars(args), "tickets": rows}, clock.start)


if __name__ == "__main__":
    main()
