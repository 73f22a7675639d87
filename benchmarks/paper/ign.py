"""Ferbach et al. (ICLR 2023), family 2: strong lottery tickets in k-IGNs (Maron et al. 2019) on atlas graphs.

A 2-IGN and a small 3-IGN target are trained briefly on a GraphAtlas task (padded dense batches: adjacency + node
features on the diagonal; the same 80/20 split as ``equislt.search``'s ``graph_atlas``; x = 1, batch 32, 100
epochs (the 3-IGN 50: it takes five times as long per epoch), 2-IGN 16 x 2 layers, 3-IGN 8 x 2 layers as in
``benchmarks/ign.py --atlas``; Adam at lr 3e-3, but 1e-3 for the 3-IGN, whose training collapses to a constant
prediction for some seeds at 3e-3). Tickets by construction
(``tol=1e-5``, policy "widen", and a sweep of N with policy "report"): held-out accuracy of the pruned random
network, agreement with the target, max output error, certified bound (valid for graphs of at most the traced
size), counts, invariance error under node relabellings. Supermask-search tickets of a wider random 2-IGN (at sparsity
0.5 unless ``--search-sparsities`` lists more), with the same invariance check. Repeated for each seed (target initialisation and data order, random
network, search), summarised as mean ± std. ``--data FILE`` replaces the atlas by your own graphs: a
``torch.save``-d PyG dataset or list of ``Data`` (graph classification; ``--task``/``--features`` then do not
apply). Writes ``results/ign.json`` and ``results/ign.png``.

    python benchmarks/paper/ign.py [--seeds 0 1 2] [--task triangles] [--features ones] [--epochs 100]
        [--tol 1e-5] [--ns 8 12 16] [--epochs-3ign 50] [--search-sparsities 0.5] [--search-epochs 60] [--no-3ign] [--data FILE]
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import (RESULTS, SWEEP_METRICS, Timer, certificate_summary, compare, data_arguments, plt,
                     run_arguments, search_arguments, setup, stats, summarize, sweep_row, write_json)
from equislt.construct import construct
from equislt.data import dense_graph_batch
from equislt.models import IGN, count_parameters, train_graph_model
from equislt.search import SearchConfig, Searcher, build_task
from equislt.testing import index_permutation_error


def graph_data(args):
    """The task (atlas or your file, split 80/20 with seed 0) and its dense padded train/test tensors."""
    from torch_geometric.data import Batch

    data_kwargs = {"seed": 0} if args.data else {"task": args.task, "features": args.features, "seed": 0}
    data_kwargs.update(args.data_kwargs)
    task = build_task("graph_atlas", data_kwargs, args.data)
    train, test = list(task.train), list(task.test)
    n = max(g.num_nodes for g in train + test)
    dense = {}
    for split, graphs in (("train", train), ("test", test)):
        batch = Batch.from_data_list(graphs)
        x, mask = dense_graph_batch(batch, max_nodes=n)
        dense[split] = (x, mask, batch.y.view(-1))
    description = (f"{args.data} (your graphs)" if args.data else
                   f"GraphAtlas {args.task}: {getattr(task.train, 'description', '')}")
    return {"task": task, "data_kwargs": data_kwargs, "dense": dense, "max_nodes": n, "description": description}


@torch.no_grad()
def logits(model, x, mask, batch_size=256):
    model.eval()
    return torch.cat([model(x[i:i + batch_size], mask[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def invariance(model, x, mask, graphs, seed) -> float:
    """Max relative error of the graph-level logits under 4 random node relabellings (eval mode)."""
    return index_permutation_error(model, x[:graphs], 2, 0, node_mask=mask[:graphs], n_perms=4, modes=("eval",),
                                   generator=torch.Generator().manual_seed(seed)).max()


def run_target(name, order, hidden, layers, lr, epochs, args, data, seed) -> dict:
    from torch_geometric.loader import DataLoader

    x_train, m_train, _ = data["dense"]["train"]
    xt, mt, yt = data["dense"]["test"]
    loader = DataLoader(data["task"].train, batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    target = IGN(xt.shape[1], hidden, data["task"].num_classes, num_layers=layers, order=order)
    t0 = time.perf_counter()
    train_graph_model(target, loader, epochs=epochs, lr=lr)
    train_seconds = time.perf_counter() - t0
    target.eval()
    f = logits(target, xt, mt)
    # every graph of the task lies within the certified ball
    radius = float(torch.cat([x_train, xt]).flatten(1).norm(dim=1).max())
    t0 = time.perf_counter()
    ticket = construct(target, (x_train[: args.trace], m_train[: args.trace]), tol=args.tol, policy="widen",
                       seed=seed, input_radius=radius, progress=False)
    construct_seconds = time.perf_counter() - t0
    g = logits(ticket.compiled, xt, mt)
    row = {"model": name, "seed": seed, "order": order, "hidden": hidden, "layers": layers, "lr": lr,
           "target_parameters": count_parameters(target), "target_seconds": train_seconds,
           "construct_seconds": construct_seconds, **compare(f, g, yt), **certificate_summary(ticket.certificate),
           "max_test_error_within_bound": (float((f - g).abs().max()) <= ticket.certificate.bound)
           if ticket.certificate.bound is not None else None,
           "permutation_invariance_error": {"ticket": invariance(ticket.compiled, xt, mt, args.equiv_graphs, seed),
                                            "target": invariance(target, xt, mt, args.equiv_graphs, seed)},
           "sweep": []}
    for n in args.ns:
        swept = construct(target, (x_train[: args.trace], m_train[: args.trace]), tol=args.tol, n=n, policy="report",
                          seed=seed, input_radius=radius, progress=False)
        row["sweep"].append(sweep_row(n, swept.certificate, f, logits(swept.compiled, xt, mt), yt))
    print(f"[{name} seed {seed}] target acc {row['target_accuracy']:.3f}, ticket acc {row['ticket_accuracy']:.3f}, "
          f"agree {row['prediction_agreement']:.3f}, max err {row['max_output_error']:.2e}, bound "
          f"{row['certified_bound']}, kept {row['counts']['kept']}/{row['counts']['random']} "
          f"({construct_seconds:.1f} s); agreement for N = {args.ns}: "
          f"{[round(r['prediction_agreement'], 3) for r in row['sweep']]}", flush=True)
    return row


def run_search_tickets(args, data, seed) -> list:
    xt, mt, _ = data["dense"]["test"]
    rows = []
    for sparsity in args.search_sparsities:
        t0 = time.perf_counter()
        config = SearchConfig(model="ign", model_kwargs={"hidden_channels": args.search_hidden, "num_layers": 2},
                              data="graph_atlas", data_kwargs=data["data_kwargs"], data_path=args.data,
                              sparsity=sparsity, epochs=args.search_epochs, lr=args.search_lr, optimizer="adam",
                              seed=seed, out=None, progress=False)
        searcher = Searcher(config, log=lambda *_: None)
        try:
            result = searcher.run()
        finally:
            searcher.close()
        row = {"model": "2-IGN (random, searched)", "seed": seed, "hidden": args.search_hidden,
               "sparsity_requested": sparsity, "sparsity": result["sparsity"], "test_accuracy": result["test_accuracy"],
               "permutation_invariance_error": invariance(searcher.ticket.compiled, xt, mt, args.equiv_graphs, seed),
               "coefficients_masked": result["coefficients_masked"], "coefficients_kept": result["coefficients_kept"],
               "epochs": args.search_epochs, "accuracy_per_epoch": [h.get("test_accuracy") for h in result["history"]],
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"[search seed {seed}] sparsity {row['sparsity']:.2f}: acc {row['test_accuracy']:.3f}, invariance err "
              f"{row['permutation_invariance_error']:.1e} ({row['seconds']:.1f} s)", flush=True)
    return rows


TARGET_METRICS = ("target_accuracy", "ticket_accuracy", "prediction_agreement", "max_output_error",
                  "relative_output_error", "certified_bound", "permutation_invariance_error.ticket",
                  "permutation_invariance_error.target", "counts.target", "counts.random", "counts.kept",
                  "counts.lower_bound", "construct_seconds", "target_seconds")
SEARCH_METRICS = ("test_accuracy", "sparsity", "permutation_invariance_error", "coefficients_kept",
                  "coefficients_masked", "seconds")


def plot(summary, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4))
    rows = summary["targets"]
    names = [r["key"][0] for r in rows]
    pos = range(len(rows))
    for shift, metric, label in ((-0.2, "target_accuracy", "target"), (0.2, "ticket_accuracy", "constructed ticket")):
        axes[0].bar([p + shift for p in pos], [r[metric]["mean"] for r in rows], 0.4,
                    yerr=[r[metric]["std"] for r in rows], capsize=3, label=label)
    for s, color in zip(summary["search"], ("C3", "C4", "C5")):
        axes[0].axhline(s["test_accuracy"]["mean"], color=color, ls="--",
                        label=f"searched 2-IGN ticket (s={s['key'][0]:.2f})")
    axes[0].set(xticks=list(pos), xticklabels=names, ylabel="held-out accuracy",
                title=f"accuracy (mean ± std over {rows[0]['seeds']} seeds)")
    axes[0].legend(fontsize=8)
    for key, marker in (("target", "o"), ("random", "s"), ("kept", "^"), ("lower_bound", "v")):
        axes[1].scatter(list(pos), [r[f"counts.{key}"]["mean"] for r in rows], marker=marker, label=key)
    axes[1].set(xticks=list(pos), xticklabels=names, yscale="log", ylabel="coefficients", title="counts",
                xlim=(-0.5, len(rows) - 0.5))
    axes[1].legend(fontsize=8)
    fig.suptitle("IGN tickets on graphs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="triangles")
    parser.add_argument("--features", default="ones", choices=("ones", "degree"),
                        help="node features (ones: the model must count from the adjacency alone)")
    data_arguments(parser, "graphs (a torch.save-d list of PyG Data, or a TUDataset directory)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs-3ign", type=int, default=50)
    parser.add_argument("--lr-3ign", type=float, default=1e-3)
    parser.add_argument("--hidden-3ign", type=int, default=8)
    parser.add_argument("--layers-3ign", type=int, default=2)
    parser.add_argument("--no-3ign", action="store_true")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--ns", type=int, nargs="*", default=[8, 12, 16], help="construction sweep over N")
    parser.add_argument("--trace", type=int, default=128)
    parser.add_argument("--equiv-graphs", type=int, default=64)
    parser.add_argument("--search-hidden", type=int, default=64)
    search_arguments(parser, sparsities=(0.5,), epochs=60, lr=0.01)
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    data = graph_data(args)
    targets, search = [], []
    for seed in args.seeds:
        targets.append(run_target("2-IGN", 2, args.hidden, 2, args.lr, args.epochs, args, data, seed))
        if not args.no_3ign:
            targets.append(run_target("3-IGN", 3, args.hidden_3ign, args.layers_3ign, args.lr_3ign, args.epochs_3ign,
                                      args, data, seed))
        search += run_search_tickets(args, data, seed)
    summary = {"targets": summarize(targets, lambda r: (r["model"],), TARGET_METRICS),
               "sweep": summarize([{"model": t["model"], **r} for t in targets for r in t["sweep"]],
                                  lambda r: (r["model"], r["N"]), SWEEP_METRICS),
               "search": summarize(search, lambda r: (r["sparsity_requested"],), SEARCH_METRICS),
               "min_agreement": stats(r["prediction_agreement"] for r in targets)["min"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(summary, RESULTS / "ign.png")
    task = data["task"]
    write_json("ign", {"settings": vars(args), "task": args.task if not args.data else None,
                       "description": data["description"], "max_nodes": data["max_nodes"],
                       "graphs": {"train": len(task.train), "test": len(task.test)},
                       "summary": summary, "targets": targets, "search": search}, clock.start)


if __name__ == "__main__":
    main()
