"""Ferbach et al. (ICLR 2023), family 3: strong lottery tickets in message-passing networks (PyG GIN, GCN).

Targets: GIN and GCN(bias=False) graph classifiers (sum pooling + Linear head) on GraphAtlas tasks, and GIN /
GCN(bias=False) node classifiers on KarateClub (one labelled node per class). Tickets by construction
(``tol=1e-5``, policy "widen", and a sweep of N with policy "report"): held-out accuracy of the pruned random
network, agreement, max output error,
counts, node-permutation error (invariance for graph-level, equivariance for node-level outputs). The certified
bound is unavailable for PyG targets (the aggregations are glue the certificate cannot follow); it is recorded
as such. Tickets by supermask search: random GIN / GCN graph classifiers (wider; at sparsity 0.5 unless ``--search-sparsities``
lists more) on each graph task, with the same permutation check. Repeated for each seed, summarised as mean ± std. ``--data FILE``
replaces the atlas tasks by your own graphs (a ``torch.save``-d PyG dataset or list of ``Data``, graph
classification). Writes ``results/mpnn.json`` and ``results/mpnn.png``.

    python benchmarks/paper/mpnn.py [--seeds 0 1 2] [--tasks connected,triangles] [--hidden 32] [--epochs 100]
        [--tol 1e-5] [--ns 8 12 16] [--search-sparsities 0.5] [--search-hidden 64] [--search-epochs 30]
        [--data FILE]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from _common import (RESULTS, SWEEP_METRICS, Timer, certificate_summary, compare, data_arguments, plt,
                     run_arguments, search_arguments, setup, stats, summarize, sweep_row, write_json)
from equislt.construct import construct
from equislt.data import karate_club
from equislt.models import GraphClassifier, count_parameters, train_graph_model
from equislt.search import SearchConfig, Searcher, build_task


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


def ticket_row(name, target, inputs, y, eval_mask, args, train_seconds, seed) -> dict:
    target.eval()
    t0 = time.perf_counter()
    ticket = construct(target, inputs, tol=args.tol, policy="widen", seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        f, g = target(*inputs), ticket(*inputs)
    row = {"model": name, "seed": seed, "target_parameters": count_parameters(target), "target_seconds": train_seconds,
           "construct_seconds": seconds, **compare(f[eval_mask], g[eval_mask], y[eval_mask]),
           **certificate_summary(ticket.certificate),
           "permutation_error": {"ticket": permutation_error(ticket.compiled, *inputs, seed=seed),
                                 "target": permutation_error(target, *inputs, seed=seed)}, "sweep": []}
    for n in args.ns:
        swept = construct(target, inputs, tol=args.tol, n=n, policy="report", seed=seed, progress=False)
        with torch.no_grad():
            g = swept(*inputs)
        row["sweep"].append(sweep_row(n, swept.certificate, f[eval_mask], g[eval_mask], y[eval_mask]))
    print(f"[{name} seed {seed}] target acc {row['target_accuracy']:.3f}, ticket acc {row['ticket_accuracy']:.3f}, agree "
          f"{row['prediction_agreement']:.3f}, max err {row['max_output_error']:.2e}, kept "
          f"{row['counts']['kept']}/{row['counts']['random']} (target {row['counts']['target']}), perm err "
          f"{row['permutation_error']['ticket']:.1e} ({seconds:.1f} s); agreement for N = {args.ns}: "
          f"{[round(r['prediction_agreement'], 3) for r in row['sweep']]}", flush=True)
    return row


def graph_tasks(args) -> list:
    """``(name, data_kwargs, Task)`` per graph-classification task: the atlas tasks, or your file."""
    if args.data:
        kwargs = {"seed": 0, **args.data_kwargs}
        return [("yours", kwargs, build_task("graph_atlas", kwargs, args.data))]
    return [(f"atlas-{task}", kwargs, build_task("graph_atlas", kwargs))
            for task in args.tasks.split(",")
            for kwargs in [{"task": task, "features": "degree", "seed": 0, **args.data_kwargs}]]


def graph_rows(name, task, args, seed) -> list:
    from torch_geometric.loader import DataLoader

    loader = DataLoader(task.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    test = next(iter(DataLoader(task.test, batch_size=len(task.test), shuffle=False)))
    inputs = (test.x.float(), test.edge_index, test.batch)
    in_channels = inputs[0].shape[1]
    rows = []
    for kind in ("gin", "gcn"):
        torch.manual_seed(seed)
        target = GraphClassifier(pyg_model(kind, in_channels, args.hidden, args.layers), args.hidden,
                                 task.num_classes)
        t0 = time.perf_counter()
        train_graph_model(target, loader, epochs=args.epochs, lr=3e-3)
        rows.append(ticket_row(f"{kind.upper()} {name}", target, inputs, test.y.view(-1),
                               torch.ones(len(task.test), dtype=torch.bool), args, time.perf_counter() - t0, seed))
    return rows


def search_rows(name, data_kwargs, task, args, seed) -> list:
    from torch_geometric.loader import DataLoader

    test = next(iter(DataLoader(task.test, batch_size=len(task.test), shuffle=False)))
    inputs = (test.x.float(), test.edge_index, test.batch)
    rows = []
    for kind in ("gin", "gcn"):
        for sparsity in args.search_sparsities:
            t0 = time.perf_counter()
            config = SearchConfig(model=kind, model_kwargs={"hidden_channels": args.search_hidden,
                                                            "num_layers": args.layers},
                                  data="graph_atlas", data_kwargs=data_kwargs, data_path=args.data, sparsity=sparsity,
                                  epochs=args.search_epochs, lr=args.search_lr, optimizer="adam", seed=seed,
                                  out=None, progress=False)
            searcher = Searcher(config, log=lambda *_: None)
            try:
                result = searcher.run()
            finally:
                searcher.close()
            row = {"model": f"{kind.upper()} {name} (random, searched)", "seed": seed, "sparsity_requested": sparsity,
                   "sparsity": result["sparsity"], "test_accuracy": result["test_accuracy"],
                   "hidden": args.search_hidden, "coefficients_masked": result["coefficients_masked"],
                   "coefficients_kept": result["coefficients_kept"],
                   "permutation_error": permutation_error(searcher.ticket.compiled, *inputs, seed=seed),
                   "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"[{row['model']} seed {seed}] sparsity {row['sparsity']:.2f}: acc {row['test_accuracy']:.3f}, "
                  f"perm err {row['permutation_error']:.1e} ({row['seconds']:.1f} s)", flush=True)
    return rows


def karate_rows(args, seed) -> list:
    data = karate_club()
    rows = []
    for kind in ("gin", "gcn"):
        torch.manual_seed(seed)
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
                               args, time.perf_counter() - t0, seed))
    return rows


TICKET_METRICS = ("target_accuracy", "ticket_accuracy", "prediction_agreement", "max_output_error",
                  "relative_output_error", "permutation_error.ticket", "permutation_error.target", "counts.target",
                  "counts.random", "counts.kept", "counts.lower_bound", "construct_seconds")
SEARCH_METRICS = ("test_accuracy", "sparsity", "permutation_error", "coefficients_kept", "coefficients_masked",
                  "seconds")


def plot(summary, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(12, 4))
    rows = summary["tickets"]
    pos = list(range(len(rows)))
    names = [r["key"][0] for r in rows]
    for shift, metric, label in ((-0.2, "target_accuracy", "target"), (0.2, "ticket_accuracy", "constructed ticket")):
        axes[0].bar([p + shift for p in pos], [r[metric]["mean"] for r in rows], 0.4,
                    yerr=[r[metric]["std"] for r in rows], capsize=3, label=label)
    searched = {r["key"][0].replace(" (random, searched)", ""): r for r in summary["search"]}
    for p, name in zip(pos, names):
        if name in searched:
            axes[0].scatter([p + 0.2], [searched[name]["test_accuracy"]["mean"]], marker="*", s=80, color="C3",
                            label="searched ticket" if p == 0 else None, zorder=3)
    axes[0].set(xticks=pos, ylabel="held-out accuracy", title=f"accuracy (mean ± std over {rows[0]['seeds']} seeds)")
    axes[0].set_xticklabels(names, rotation=15, fontsize=8)
    axes[0].legend(fontsize=8)
    for key, marker in (("target", "o"), ("random", "s"), ("kept", "^"), ("lower_bound", "v")):
        axes[1].scatter(pos, [r[f"counts.{key}"]["mean"] for r in rows], marker=marker, label=key)
    axes[1].set(xticks=pos, yscale="log", ylabel="coefficients", title="counts", xlim=(-0.5, len(rows) - 0.5))
    axes[1].set_xticklabels(names, rotation=15, fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("MPNN tickets by construction (GIN, GCN without conv bias); stars: supermask search")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="connected,triangles", help="GraphAtlas tasks, comma-separated")
    data_arguments(parser, "graphs (a torch.save-d list of PyG Data, or a TUDataset directory)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--karate-epochs", type=int, default=200)
    parser.add_argument("--no-karate", action="store_true")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--ns", type=int, nargs="*", default=[8, 12, 16], help="construction sweep over N")
    parser.add_argument("--search-hidden", type=int, default=64)
    search_arguments(parser, sparsities=(0.5,), epochs=30, lr=0.01)
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    tasks = graph_tasks(args)
    tickets, search = [], []
    for seed in args.seeds:
        for name, data_kwargs, task in tasks:
            tickets += graph_rows(name, task, args, seed)
            search += search_rows(name, data_kwargs, task, args, seed)
        if not args.no_karate:
            tickets += karate_rows(args, seed)
    summary = {"tickets": summarize(tickets, lambda r: (r["model"],), TICKET_METRICS),
               "sweep": summarize([{"model": t["model"], **r} for t in tickets for r in t["sweep"]],
                                  lambda r: (r["model"], r["N"]), SWEEP_METRICS),
               "search": summarize(search, lambda r: (r["model"], r["sparsity_requested"]), SEARCH_METRICS),
               "min_agreement": stats(r["prediction_agreement"] for r in tickets)["min"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(summary, RESULTS / "mpnn.png")
    write_json("mpnn", {"settings": vars(args), "summary": summary, "tickets": tickets, "search": search},
               clock.start)


if __name__ == "__main__":
    main()
