"""Why a family's searched tickets fall short of its trained target: the search, or generalisation?

The width study (``width.py``) finds GIN and the 2-IGN short of their targets at 4× width. For each family and
seed this script trains the 1× target (the width study's settings) and measures its accuracy on its own training
set and held out; then searches the random network at ``--width`` × the target's width and ``--sparsity`` for the
width study's epochs and for ``--long`` times as many, measuring the ticket the same way. Reading: a ticket whose
training accuracy stays below the target's is held back by the search (capacity at that width, or optimisation:
then more epochs raise both accuracies); a ticket that gains training accuracy with more epochs while its held-out
accuracy stays or falls generalises worse than the target (more search over-fits). The held-out standard error
``sqrt(p(1 − p)/n)`` says which gaps the test set can resolve. Settings the search might be short of are then
changed one at a time at ``--variant-width`` (twice the depth, three times the learning rate, normally distributed
random coefficients). Writes ``results/width_gap.json``, keeping the families of an earlier run that this one does
not repeat.

    python benchmarks/paper/width_gap.py [--families gin ign] [--width 4] [--sparsity 0.5] [--long 3]
"""
from __future__ import annotations

import argparse
import json
import math

from _common import RESULTS, Timer, run_arguments, setup, stats, write_json
from width import FAMILIES, search, train_target


def variants(key: str, lr: float) -> dict:
    """The width study's search, and settings it might be short of, each changed alone: twice the depth (the
    theory's random network is twice as deep as its target), three times the learning rate, normally distributed
    random coefficients (the steerable CNNs' depth is fixed: no depth variant)."""
    depth = FAMILIES[key]["kwargs"](1).get("num_layers")
    deeper = {"twice as deep": {"model_kwargs": {"num_layers": 2 * depth}}} if depth else {}
    return {"unchanged": {}, **deeper, "lr x3": {"lr": 3 * lr}, "normal init": {"weight_init": "normal"}}


def ticket(key: str, width: int, sparsity: float, epochs: int, lr: float, seed: int, changes=None) -> dict:
    changes = dict(changes or {})
    row = search(key, width, sparsity, epochs, changes.pop("lr", lr), seed, **changes)
    return {**{k: row[k] for k in ("epochs", "train_accuracy", "test_accuracy", "accuracy_per_epoch",
                                   "held_out_samples")},
            "best_epoch_test_accuracy": max(row["accuracy_per_epoch"])}


def _pair(row: dict) -> str:
    return f"{row['train_accuracy']:.3f}/{row['test_accuracy']:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["gin", "ign"], choices=list(FAMILIES))
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--long", type=int, default=3, help="the long search runs this many times the epochs")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--variant-width", type=int, default=2, help="width of the searches with one setting changed")
    run_arguments(parser)
    args = parser.parse_args()
    clock = Timer()
    setup(args.threads, args.seeds[0])
    runs, summary = [], {}
    for key in args.families:
        epochs = FAMILIES[key]["epochs"]
        mine = []
        for seed in args.seeds:
            _, target_accuracy = train_target(key, seed)
            row = {"family": key, "seed": seed, "target": {"train_accuracy": target_accuracy("train"),
                                                           "test_accuracy": target_accuracy("test")},
                   "tickets": [ticket(key, args.width, args.sparsity, e, args.lr, seed)
                               for e in (epochs, args.long * epochs)],
                   "variants": {name: ticket(key, args.variant_width, args.sparsity, epochs, args.lr, seed, changes)
                                for name, changes in variants(key, args.lr).items()}}
            print(f"[{key} seed {seed}] training/held-out accuracy: target {_pair(row['target'])}; "
                  + ", ".join(f"{t['epochs']} epochs {_pair(t)}" for t in row["tickets"])
                  + f"; at {args.variant_width}x " + ", ".join(f"{name} {_pair(t)}"
                                                             for name, t in row["variants"].items()), flush=True)
            mine.append(row)
        p, n = stats(r["target"]["test_accuracy"] for r in mine)["mean"], mine[0]["tickets"][0]["held_out_samples"]
        summary[key] = {
            "name": FAMILIES[key]["name"], "width": args.width, "sparsity": args.sparsity,
            "held_out_standard_error": math.sqrt(p * (1 - p) / n),
            "target": {m: stats(r["target"][m] for r in mine) for m in ("train_accuracy", "test_accuracy")},
            "tickets": {str(e): {m: stats(t[m] for r in mine for t in r["tickets"] if t["epochs"] == e)
                                 for m in ("train_accuracy", "test_accuracy", "best_epoch_test_accuracy")}
                        for e in (epochs, args.long * epochs)},
            "variant_width": args.variant_width,
            "variants": {name: {m: stats(r["variants"][name][m] for r in mine)
                                for m in ("train_accuracy", "test_accuracy")} for name in variants(key, args.lr)}}
        summary[key]["settings"] = vars(args)
        runs += mine
    # families of an earlier run that this one does not repeat are kept (run them in parallel processes)
    path = RESULTS / "width_gap.json"
    previous = json.loads(path.read_text()) if path.exists() else {"summary": {}, "runs": []}
    summary = {**{k: v for k, v in previous["summary"].items() if k not in summary}, **summary}
    runs = [r for r in previous["runs"] if r["family"] not in args.families] + runs
    write_json("width_gap", {"settings": vars(args), "summary": summary, "runs": runs}, clock.start)


if __name__ == "__main__":
    main()
