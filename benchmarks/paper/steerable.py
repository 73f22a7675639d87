"""Ferbach et al. (ICLR 2023), family 1: strong lottery tickets in C4 / D4 steerable CNNs on rotated digits.

Per group: a target steerable CNN over regular fields (trained briefly); tickets by construction for a sweep
of N (policy "report", so rows over tol are counted, not widened) and the default ``tol=1e-5`` run (policy
"widen"), each evaluated as the pruned random network itself on the held-out digits (accuracy, agreement with
the target, max output error, certified bound, counts, invariance error under exact 90° rotations and, for
D4, flips); tickets by supermask search (edge-popup) in a wider random network (at sparsity 0.5 unless
``--search-sparsities`` lists more), with the same invariance check. Everything is repeated for each seed (target initialisation and data order, random
network, search) and summarised as mean ± std over the seeds. ``--data DIR`` replaces the bundled digits by a
directory of MNIST-style IDX files. Writes ``results/steerable.json`` and ``results/steerable.png``.

    python benchmarks/paper/steerable.py [--seeds 0 1 2] [--groups c4,d4] [--channels 8 16] [--ns 8 10 12 14 16]
        [--target-epochs 10] [--search-sparsities 0.5] [--search-channels 16 32] [--search-epochs 10]
        [--data DIR] [--plot-only]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from _common import (RESULTS, Timer, batched, certificate_summary, compare, data_arguments, image_data, plt,
                     run_arguments, search_arguments, setup, summarize, write_json)
from equislt.construct import construct, default_n
from equislt.models import steerable_cnn, train_classifier
from equislt.search import SearchConfig, Searcher


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
    g = batched(ticket.compiled, x_test)
    errors = invariance_errors(ticket.compiled, label["group"], x_equiv)
    return {**label, **compare(target_logits, g, y_test), **certificate_summary(ticket.certificate),
            "invariance_error": errors, "max_invariance_error": max(errors.values())}


def run_group(group: str, args, x_train_loader, test, seed: int) -> dict:
    x_test, y_test = test.tensors
    x_trace = x_test[: args.trace]
    x_equiv = x_test[: args.equiv_images]
    size = x_test.shape[-1]
    clock = Timer()
    torch.manual_seed(seed)
    target = steerable_cnn(group, channels=tuple(args.channels), input_size=size)
    train_classifier(target, x_train_loader, epochs=args.target_epochs, lr=1e-2, progress=False)
    target.eval()
    train_seconds = clock()
    f = batched(target, x_test)
    target_equiv = invariance_errors(target, group, x_equiv)
    out = {"group": group, "seed": seed, "channels": list(args.channels), "target_seconds": train_seconds,
           "target_accuracy": float((f.argmax(1) == y_test).float().mean()),
           "target_coefficients": sum(p.numel() for p in target.parameters()),
           "target_invariance_error": target_equiv, "construction": [], "search": []}
    print(f"[{group} seed {seed}] target accuracy {out['target_accuracy']:.3f} ({train_seconds:.1f} s)", flush=True)
    runs = [(n, "report") for n in args.ns] + [(None, "widen")]
    for n, policy in runs:
        t0 = time.perf_counter()
        ticket = construct(target, x_trace, tol=args.tol, n=n, policy=policy, input_nonnegative=True,
                           seed=seed, progress=False)
        seconds = time.perf_counter() - t0
        row = ticket_row(ticket, f, x_test, y_test, x_equiv,
                         {"group": group, "seed": seed, "N": n if n is not None else default_n(args.tol),
                          "policy": policy,
                          "tol": args.tol, "construct_seconds": seconds})
        out["construction"].append(row)
        print(f"[{group} seed {seed}] construct N={row['N']} {policy}: acc {row['ticket_accuracy']:.3f} agree "
              f"{row['prediction_agreement']:.3f} max err {row['max_output_error']:.2e} bound "
              f"{row['certified_bound']:.3g} kept {row['counts']['kept']} ({seconds:.1f} s)", flush=True)
        del ticket
    for sparsity in args.search_sparsities:
        t0 = time.perf_counter()
        config = SearchConfig(model="steerable_cnn",
                              model_kwargs={"group": group, "channels": list(args.search_channels)},
                              data="rotated_digits", data_path=args.data, data_kwargs=args.data_kwargs,
                              sparsity=sparsity, epochs=args.search_epochs,
                              lr=args.search_lr, batch_size=args.batch_size, optimizer="adam", seed=seed, out=None,
                              progress=False)
        searcher = Searcher(config, log=lambda *_: None)
        try:
            result = searcher.run()
        finally:
            searcher.close()
        errors = invariance_errors(searcher.ticket.compiled, group, x_equiv)
        row = {"seed": seed, "sparsity_requested": sparsity, "sparsity": result["sparsity"],
               "test_accuracy": result["test_accuracy"], "invariance_error": errors,
               "max_invariance_error": max(errors.values()), "channels": list(args.search_channels),
               "epochs": args.search_epochs, "coefficients_masked": result["coefficients_masked"],
               "coefficients_kept": result["coefficients_kept"],
               "accuracy_per_epoch": [h.get("test_accuracy") for h in result["history"]],
               "seconds": time.perf_counter() - t0}
        out["search"].append(row)
        print(f"[{group} seed {seed}] search sparsity {sparsity}: acc {row['test_accuracy']:.3f}, invariance err "
              f"{row['max_invariance_error']:.1e} ({row['seconds']:.1f} s)", flush=True)
    return out


CONSTRUCTION_METRICS = ("target_accuracy", "ticket_accuracy", "prediction_agreement", "max_output_error",
                        "certified_bound", "max_invariance_error", "counts.kept", "counts.random",
                        "counts.lower_bound", "counts.target", "construct_seconds")
SEARCH_METRICS = ("test_accuracy", "sparsity", "max_invariance_error", "coefficients_kept", "coefficients_masked",
                  "seconds")


def summary(runs) -> dict:
    """Per group: mean ± std over the seeds of the target, of each construction setting (N, policy) and of each
    search sparsity."""
    out = {}
    for name in dict.fromkeys(g["group"] for g in runs):
        groups = [g for g in runs if g["group"] == name]
        out[name] = {
            "seeds": [g["seed"] for g in groups],
            "target_accuracy": summarize(groups, lambda g: (), ["target_accuracy"])[0]["target_accuracy"],
            "target_max_invariance_error": summarize(
                [{"e": max(g["target_invariance_error"].values())} for g in groups], lambda g: (), ["e"])[0]["e"],
            "construction": summarize([r for g in groups for r in g["construction"]],
                                      lambda r: (r["N"], r["policy"]), CONSTRUCTION_METRICS),
            "search": summarize([r for g in groups for r in g["search"]], lambda r: (r["sparsity_requested"],),
                                SEARCH_METRICS),
        }
    return out


def plot(summaries: dict, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(15, 4.2))

    def mean(rows, metric):
        return [r[metric]["mean"] for r in rows]

    def std(rows, metric):
        return [r[metric]["std"] for r in rows]

    for (group, g), color in zip(summaries.items(), ("C0", "C1", "C2", "C3")):
        rows = [r for r in g["construction"] if r["key"][1] == "report"]
        ns = [r["key"][0] for r in rows]
        seeds = len(g["seeds"])
        axes[0].errorbar(ns, mean(rows, "ticket_accuracy"), std(rows, "ticket_accuracy"), fmt="o-", color=color,
                         capsize=3, label=f"{group} ticket (construct)")
        axes[0].errorbar(ns, mean(rows, "prediction_agreement"), std(rows, "prediction_agreement"), fmt="s--",
                         color=color, alpha=0.6, capsize=3, label=f"{group} agreement")
        axes[0].axhline(g["target_accuracy"]["mean"], color=color, ls=":", label=f"{group} target")
        axes[1].semilogy(ns, mean(rows, "max_output_error"), "o-", color=color, label=f"{group} measured")
        axes[1].semilogy(ns, mean(rows, "certified_bound"), "^--", color=color, label=f"{group} certified")
        axes[1].semilogy(ns, [max(v, 1e-9) for v in mean(rows, "max_invariance_error")], "x:", color=color,
                         label=f"{group} invariance err (ticket)")
        for key, style, label in (("counts.kept", "o-", "kept"), ("counts.random", "s--", "random"),
                                  ("counts.lower_bound", "^:", "lower bound")):
            axes[2].plot(ns, mean(rows, key), style, color=color, alpha=0.8, label=f"{group} {label}")
        for w in (r for r in g["construction"] if r["key"][1] == "widen"):
            axes[0].scatter([w["key"][0]], [w["ticket_accuracy"]["mean"]], marker="D", color=color,
                            label=f"{group} ticket, default tol + widen")
            axes[1].scatter([w["key"][0]] * 2, [w["max_output_error"]["mean"], w["certified_bound"]["mean"]],
                            marker="D", color=color)
            axes[2].scatter([w["key"][0]] * 2, [w["counts.kept"]["mean"], w["counts.random"]["mean"]], marker="D",
                            color=color)
        axes[2].axhline(rows[0]["counts.target"]["mean"], color=color, ls="-.", alpha=0.5, label=f"{group} target")
        x_star = max(r["key"][0] for r in g["construction"]) + 2
        for s in g["search"]:
            axes[0].errorbar([x_star], [s["test_accuracy"]["mean"]], [s["test_accuracy"]["std"]], fmt="*",
                             markersize=9, color=color, capsize=3)
            axes[0].annotate(f"search s={s['key'][0]:.1f}", (x_star, s["test_accuracy"]["mean"]), fontsize=7)
    axes[0].set(xlabel="N (summands per pool)", ylabel="held-out accuracy / agreement",
                title=f"accuracy (mean ± std over {seeds} seeds)")
    axes[1].set(xlabel="N", ylabel="max |f - g| (mean over seeds)", title="output error")
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
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--trace", type=int, default=96, help="held-out images traced by the construction")
    parser.add_argument("--equiv-images", type=int, default=32)
    parser.add_argument("--search-channels", type=int, nargs="+", default=[16, 32])
    data_arguments(parser, "images (a directory of IDX files or of class folders, or a .npz)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from results/steerable.json")
    search_arguments(parser, sparsities=(0.5,), epochs=10, lr=0.05)
    run_arguments(parser)
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((RESULTS / "steerable.json").read_text())["summary"], RESULTS / "steerable.png")
        return
    clock = Timer()
    setup(args.threads, args.seeds[0])
    train, test, source = image_data(args.data, seed=0, options=args.data_kwargs)
    runs = []
    for seed in args.seeds:
        loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        runs += [run_group(g, args, loader, test, seed) for g in args.groups.split(",")]
    summaries = summary(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(summaries, RESULTS / "steerable.png")
    write_json("steerable", {"settings": vars(args), "data": {"source": source, "train": len(train), "test": len(test),
                                                              "size": int(test.tensors[0].shape[-1])},
                             "summary": summaries, "runs": runs}, clock.start)


if __name__ == "__main__":
    main()
