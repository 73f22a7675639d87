"""Ferbach et al. (ICLR 2023), family 1: strong lottery tickets in C4 / D4 steerable CNNs on rotated digits.

Per group: a target steerable CNN over regular fields (trained briefly); tickets by construction for a sweep
of N (policy "report", so rows over tol are counted, not widened) and the default ``tol=1e-4`` run (policy
"widen"), each evaluated as the pruned random network itself on the held-out digits (accuracy, agreement with
the target, max output error, certified bound, counts, invariance error under exact 90° rotations and, for
D4, flips); tickets by supermask search (edge-popup) in a wider random network at a few sparsities.
Writes ``results/steerable.json`` and ``results/steerable.png``.

    python benchmarks/paper/steerable.py [--groups c4,d4] [--channels 8 16] [--ns 8 10 12 14 16]
        [--target-epochs 10] [--search-sparsities 0.5 0.7] [--search-channels 16 32] [--search-epochs 10] [--plot-only]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from _common import RESULTS, Timer, batched, certificate_summary, compare, plt, setup, write_json
from equislt.construct import construct, default_n
from equislt.data import rotated_digits
from equislt.models import steerable_cnn, train_classifier
from equislt.search import SearchConfig, run_search


def group_actions(group: str, x: torch.Tensor):
    """Input actions of the grid-exact group elements (odd image side: exact about the centre)."""
    acts = [(f"rot{90 * k}", lambda k=k: torch.rot90(x, k, dims=(-2, -1))) for k in (1, 2, 3)]
    if group.startswith("d"):
        acts += [(f"flip_rot{90 * k}", lambda k=k: torch.rot90(torch.flip(x, dims=(-1,)), k, dims=(-2, -1)))
                 for k in (0, 1, 2, 3)]
    return acts


def invariance_errors(model, group: str, x: torch.Tensor) -> dict:
    """Relative error ``max|f(g·x) − f(x)| / max|f(x)|`` of the (invariant) logits per group element."""
    y = batched(model, x)
    scale = float(y.abs().max()) + 1e-12
    return {name: float((batched(model, act()) - y).abs().max()) / scale for name, act in group_actions(group, x)}


def ticket_row(ticket, target_logits, x_test, y_test, x_equiv, label: dict) -> dict:
    g = batched(ticket.network, x_test)
    errors = invariance_errors(ticket.network, label["group"], x_equiv)
    return {**label, **compare(target_logits, g, y_test), **certificate_summary(ticket.certificate),
            "invariance_error": errors, "max_invariance_error": max(errors.values())}


def run_group(group: str, args, x_train_loader, test) -> dict:
    x_test, y_test = test.tensors
    x_trace = x_test[: args.trace]
    x_equiv = x_test[: args.equiv_images]
    clock = Timer()
    torch.manual_seed(args.seed)
    target = steerable_cnn(group, channels=tuple(args.channels))
    train_classifier(target, x_train_loader, epochs=args.target_epochs, lr=1e-2, progress=False)
    target.eval()
    train_seconds = clock()
    f = batched(target, x_test)
    target_equiv = invariance_errors(target, group, x_equiv)
    out = {"group": group, "channels": list(args.channels), "target_seconds": train_seconds,
           "target_accuracy": float((f.argmax(1) == y_test).float().mean()),
           "target_coefficients": sum(p.numel() for p in target.parameters()),
           "target_invariance_error": target_equiv, "construction": [], "search": []}
    print(f"[{group}] target accuracy {out['target_accuracy']:.3f} ({train_seconds:.1f} s)", flush=True)
    runs = [(n, "report") for n in args.ns] + [(None, "widen")]
    for n, policy in runs:
        t0 = time.perf_counter()
        ticket = construct(target, x_trace, tol=args.tol, n=n, policy=policy, input_nonnegative=True,
                           seed=args.seed, progress=False)
        seconds = time.perf_counter() - t0
        row = ticket_row(ticket, f, x_test, y_test, x_equiv,
                         {"group": group, "N": n if n is not None else default_n(args.tol), "policy": policy,
                          "tol": args.tol, "construct_seconds": seconds})
        out["construction"].append(row)
        print(f"[{group}] construct N={row['N']} {policy}: acc {row['ticket_accuracy']:.3f} agree "
              f"{row['prediction_agreement']:.3f} max err {row['max_output_error']:.2e} bound "
              f"{row['certified_bound']:.3g} kept {row['counts']['kept']} ({seconds:.1f} s)", flush=True)
        del ticket
    for sparsity in args.search_sparsities:
        t0 = time.perf_counter()
        config = SearchConfig(model="steerable_cnn",
                              model_kwargs={"group": group, "channels": list(args.search_channels)},
                              data="rotated_digits", sparsity=sparsity, epochs=args.search_epochs, lr=args.search_lr,
                              batch_size=args.batch_size, optimizer="adam", seed=args.seed, out=None,
                              progress=False)
        result = run_search(config, log=lambda *_: None)
        row = {"sparsity_requested": sparsity, "sparsity": result["sparsity"],
               "test_accuracy": result["test_accuracy"], "channels": list(args.search_channels),
               "epochs": args.search_epochs, "coefficients_masked": result["coefficients_masked"],
               "coefficients_kept": result["coefficients_kept"],
               "accuracy_per_epoch": [h.get("test_accuracy") for h in result["history"]],
               "seconds": time.perf_counter() - t0}
        out["search"].append(row)
        print(f"[{group}] search sparsity {sparsity}: acc {row['test_accuracy']:.3f} ({row['seconds']:.1f} s)",
              flush=True)
    return out


def plot(groups, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(15, 4.2))
    for g, color in zip(groups, ("C0", "C1", "C2", "C3")):
        rows = [r for r in g["construction"] if r["policy"] == "report"]
        ns = [r["N"] for r in rows]
        axes[0].plot(ns, [r["ticket_accuracy"] for r in rows], "o-", color=color,
                     label=f"{g['group']} ticket (construct)")
        axes[0].plot(ns, [r["prediction_agreement"] for r in rows], "s--", color=color, alpha=0.6,
                     label=f"{g['group']} agreement")
        axes[0].axhline(g["target_accuracy"], color=color, ls=":", label=f"{g['group']} target")
        axes[1].semilogy(ns, [r["max_output_error"] for r in rows], "o-", color=color, label=f"{g['group']} measured")
        axes[1].semilogy(ns, [r["certified_bound"] for r in rows], "^--", color=color, label=f"{g['group']} certified")
        axes[1].semilogy(ns, [max(r["max_invariance_error"], 1e-9) for r in rows], "x:", color=color,
                         label=f"{g['group']} invariance err (ticket)")
        axes[2].plot(ns, [r["counts"]["kept"] for r in rows], "o-", color=color, label=f"{g['group']} kept")
        axes[2].plot(ns, [r["counts"]["random"] for r in rows], "s--", color=color, alpha=0.6,
                     label=f"{g['group']} random")
        axes[2].plot(ns, [r["counts"]["lower_bound"] for r in rows], "^:", color=color,
                     label=f"{g['group']} lower bound")
        for w in (r for r in g["construction"] if r["policy"] == "widen"):
            axes[0].scatter([w["N"]], [w["ticket_accuracy"]], marker="D", color=color,
                            label=f"{g['group']} ticket, tol={w['tol']:g} widen")
            axes[1].scatter([w["N"], w["N"]], [w["max_output_error"], w["certified_bound"]], marker="D", color=color)
            axes[2].scatter([w["N"], w["N"]], [w["counts"]["kept"], w["counts"]["random"]], marker="D", color=color)
        axes[2].axhline(rows[0]["counts"]["target"], color=color, ls="-.", alpha=0.5, label=f"{g['group']} target")
        for s in g["search"]:
            x_star = max(r["N"] for r in g["construction"]) + 2
            axes[0].scatter([x_star], [s["test_accuracy"]], marker="*", s=80, color=color)
            axes[0].annotate(f"search s={s['sparsity']:.1f}", (x_star, s["test_accuracy"]), fontsize=7)
    axes[0].set(xlabel="N (summands per pool)", ylabel="held-out accuracy / agreement", title="accuracy")
    axes[1].set(xlabel="N", ylabel="max |f - g|", title="output error")
    axes[2].set(xlabel="N", ylabel="coefficients", yscale="log", title="counts")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("Steerable CNN tickets on rotated digits (construction sweep, policy report; diamonds: default "
                 "tol with widening; stars: search)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="c4,d4")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--target-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ns", type=int, nargs="+", default=[8, 10, 12, 14, 16])
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--trace", type=int, default=96, help="held-out images traced by the construction")
    parser.add_argument("--equiv-images", type=int, default=32)
    parser.add_argument("--search-sparsities", type=float, nargs="*", default=[0.5, 0.7])
    parser.add_argument("--search-channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--search-lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from results/steerable.json")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((RESULTS / "steerable.json").read_text())["groups"], RESULTS / "steerable.png")
        return
    clock = Timer()
    setup(args.threads, args.seed)
    train = rotated_digits("train", size=17, rotations="c4")
    test = rotated_digits("test", size=17, rotations="c4")
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(args.seed))
    groups = [run_group(g, args, loader, test) for g in args.groups.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(groups, RESULTS / "steerable.png")
    write_json("steerable", {"settings": vars(args), "data": {"train": len(train), "test": len(test), "size": 17},
                             "groups": groups}, clock.start)


if __name__ == "__main__":
    main()
