"""Ferbach et al. (ICLR 2023), family 2: strong lottery tickets in k-IGNs (Maron et al. 2019) on atlas graphs.

A 2-IGN and a small 3-IGN target are trained briefly on a GraphAtlas task (padded dense batches: adjacency + node
features on the diagonal; the same 80/20 split as ``equislt.search``'s ``graph_atlas``; the settings of
``benchmarks/ign.py --atlas``: x = 1, batch 32, 100 epochs, 2-IGN 16 x 2 layers, 3-IGN 8 x 2 layers); tickets by
construction (``tol=1e-4``, policy "widen"): held-out accuracy of the pruned random network, agreement with the
target, max output error, certified bound (valid for graphs of at most the traced size), counts, invariance
error under node relabellings; a supermask-search ticket of a random 2-IGN at one sparsity.
Writes ``results/ign.json`` and ``results/ign.png``.

    python benchmarks/paper/ign.py [--task triangles] [--features ones] [--epochs 100] [--tol 1e-4]
        [--search-sparsity 0.5] [--search-epochs 60] [--no-3ign]
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import RESULTS, Timer, certificate_summary, compare, plt, setup, write_json
from equislt.construct import construct
from equislt.data import GraphAtlas, dense_graph_batch, split_indices
from equislt.models import IGN, count_parameters, train_graph_model
from equislt.search import SearchConfig, run_search
from equislt.testing import index_permutation_error


def atlas(task: str, features: str, seed: int):
    from torch_geometric.loader import DataLoader

    dataset = GraphAtlas(task, min_nodes=1, max_nodes=7, features=features)
    train_idx, test_idx = split_indices(len(dataset), (0.8, 0.2), seed=seed)
    loader = DataLoader(dataset[train_idx], batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    full = next(iter(DataLoader(dataset, batch_size=len(dataset), shuffle=False)))
    x, mask = dense_graph_batch(full, max_nodes=7)
    return dataset, loader, x, mask, full.y.view(-1), train_idx, test_idx


@torch.no_grad()
def logits(model, x, mask, batch_size=256):
    model.eval()
    return torch.cat([model(x[i:i + batch_size], mask[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def run_target(name, order, hidden, layers, args, data) -> dict:
    dataset, loader, x, mask, y, train_idx, test_idx = data
    torch.manual_seed(args.seed)
    target = IGN(x.shape[1], hidden, dataset.num_classes, num_layers=layers, order=order)
    t0 = time.perf_counter()
    train_graph_model(target, loader, epochs=args.epochs, lr=3e-3)
    train_seconds = time.perf_counter() - t0
    target.eval()
    xt, mt, yt = x[test_idx], mask[test_idx], y[test_idx]
    f = logits(target, xt, mt)
    radius = float(x.reshape(len(x), -1).norm(dim=1).max())  # every atlas graph lies within the certified ball
    trace = train_idx[: args.trace]
    t0 = time.perf_counter()
    ticket = construct(target, (x[trace], mask[trace]), tol=args.tol, policy="widen", seed=args.seed,
                       input_radius=radius, progress=False)
    construct_seconds = time.perf_counter() - t0
    g = logits(ticket.network, xt, mt)
    n_eq = args.equiv_graphs
    gen = torch.Generator().manual_seed(args.seed)
    ticket_perm = index_permutation_error(ticket.network, xt[:n_eq], 2, 0, node_mask=mt[:n_eq], n_perms=4,
                                          modes=("eval",), generator=gen)
    target_perm = index_permutation_error(target, xt[:n_eq], 2, 0, node_mask=mt[:n_eq], n_perms=4,
                                          modes=("eval",), generator=torch.Generator().manual_seed(args.seed))
    row = {"model": name, "order": order, "hidden": hidden, "layers": layers,
           "target_parameters": count_parameters(target), "target_seconds": train_seconds,
           "construct_seconds": construct_seconds, **compare(f, g, yt), **certificate_summary(ticket.certificate),
           "max_test_error_within_bound": (float((f - g).abs().max()) <= ticket.certificate.bound)
           if ticket.certificate.bound is not None else None,
           "permutation_invariance_error": {"ticket": ticket_perm.max(), "target": target_perm.max()}}
    print(f"[{name}] target acc {row['target_accuracy']:.3f}, ticket acc {row['ticket_accuracy']:.3f}, agree "
          f"{row['prediction_agreement']:.3f}, max err {row['max_output_error']:.2e}, bound {row['certified_bound']}, "
          f"kept {row['counts']['kept']}/{row['counts']['random']} ({construct_seconds:.1f} s)", flush=True)
    return row


def run_search_ticket(args) -> dict:
    t0 = time.perf_counter()
    config = SearchConfig(model="ign", model_kwargs={"hidden_channels": args.search_hidden, "num_layers": 2},
                          data="graph_atlas", data_kwargs={"task": args.task, "features": args.features,
                                                           "seed": args.seed},
                          sparsity=args.search_sparsity, epochs=args.search_epochs, lr=args.search_lr,
                          optimizer="adam", seed=args.seed, out=None, progress=False)
    result = run_search(config, log=lambda *_: None)
    row = {"model": "2-IGN (random, searched)", "hidden": args.search_hidden, "sparsity": result["sparsity"],
           "test_accuracy": result["test_accuracy"], "coefficients_masked": result["coefficients_masked"],
           "coefficients_kept": result["coefficients_kept"], "epochs": args.search_epochs,
           "accuracy_per_epoch": [h.get("test_accuracy") for h in result["history"]],
           "seconds": time.perf_counter() - t0}
    print(f"[search] sparsity {row['sparsity']:.2f}: acc {row['test_accuracy']:.3f} ({row['seconds']:.1f} s)",
          flush=True)
    return row


def plot(rows, search, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4))
    names = [r["model"] for r in rows]
    pos = range(len(rows))
    axes[0].bar([p - 0.2 for p in pos], [r["target_accuracy"] for r in rows], 0.4, label="target")
    axes[0].bar([p + 0.2 for p in pos], [r["ticket_accuracy"] for r in rows], 0.4, label="constructed ticket")
    if search is not None:
        axes[0].axhline(search["test_accuracy"], color="C3", ls="--",
                        label=f"searched 2-IGN ticket (s={search['sparsity']:.2f})")
    axes[0].set(xticks=list(pos), xticklabels=names, ylabel="held-out accuracy", title="accuracy")
    axes[0].legend(fontsize=8)
    for key, marker in (("target", "o"), ("random", "s"), ("kept", "^"), ("lower_bound", "v")):
        axes[1].scatter(list(pos), [r["counts"][key] for r in rows], marker=marker, label=key)
    axes[1].set(xticks=list(pos), xticklabels=names, yscale="log", ylabel="coefficients", title="counts",
                xlim=(-0.5, len(rows) - 0.5))
    axes[1].legend(fontsize=8)
    fig.suptitle("IGN tickets on the graph atlas")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="triangles")
    parser.add_argument("--features", default="ones", choices=("ones", "degree"),
                        help="node features (ones: the model must count from the adjacency alone)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--hidden-3ign", type=int, default=8)
    parser.add_argument("--layers-3ign", type=int, default=2)
    parser.add_argument("--no-3ign", action="store_true")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--trace", type=int, default=128)
    parser.add_argument("--equiv-graphs", type=int, default=64)
    parser.add_argument("--search-sparsity", type=float, default=0.5, help="negative: skip the search")
    parser.add_argument("--search-hidden", type=int, default=32)
    parser.add_argument("--search-epochs", type=int, default=60)
    parser.add_argument("--search-lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seed)
    data = atlas(args.task, args.features, args.seed)
    rows = [run_target("2-IGN", 2, args.hidden, 2, args, data)]
    if not args.no_3ign:
        rows.append(run_target("3-IGN", 3, args.hidden_3ign, args.layers_3ign, args, data))
    search = run_search_ticket(args) if args.search_sparsity >= 0 else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, search, RESULTS / "ign.png")
    write_json("ign", {"settings": vars(args), "task": args.task, "description": data[0].description,
                       "graphs": {"train": len(data[5]), "test": len(data[6])}, "targets": rows, "search": search},
               clock.start)


if __name__ == "__main__":
    main()
