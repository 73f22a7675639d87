"""Why a family's searched tickets fall short of its trained target: the search, or generalisation?

The width study (``width.py``) finds GIN and the 2-IGN short of their targets at 4× width. For each family and
seed this script trains the 1× target (the width study's settings) and measures its accuracy on its own training
set and held out; then searches the random network at ``--width`` × the target's width and ``--sparsity`` for the
width study's epochs and for ``--long`` times as many, measuring the ticket the same way. Reading: a ticket whose
training accuracy stays below the target's is held back by the search (capacity at that width, or optimisation:
then more epochs raise both accuracies); a ticket that gains training accuracy with more epochs while its held-out
accuracy stays or falls generalises worse than the target (more search over-fits). The held-out standard error
``sqrt(p(1 − p)/n)`` says which gaps the test set can resolve. Writes ``results/width_gap.json``.

    python benchmarks/paper/width_gap.py [--families gin ign] [--width 4] [--sparsity 0.5] [--long 3]
"""
from __future__ import annotations

import argparse
import math

from _common import Timer, run_arguments, setup, stats, write_json
from width import FAMILIES, search, train_target


def ticket(key: str, width: int, sparsity: float, epochs: int, lr: float, seed: int) -> dict:
    row = search(key, width, sparsity, epochs, lr, seed)
    return {**{k: row[k] for k in ("epochs", "train_accuracy", "test_accuracy", "accuracy_per_epoch",
                                   "held_out_samples")},
            "best_epoch_test_accuracy": max(row["accuracy_per_epoch"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["gin", "ign"], choices=list(FAMILIES))
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--long", type=int, default=3, help="the long search runs this many times the epochs")
    parser.add_argument("--lr", type=float, default=0.01)
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
                               for e in (epochs, args.long * epochs)]}
            print(f"[{key} seed {seed}] target train/held-out {row['target']['train_accuracy']:.3f}/"
                  f"{row['target']['test_accuracy']:.3f}; ticket " + ", ".join(
                      f"{t['epochs']} epochs {t['train_accuracy']:.3f}/{t['test_accuracy']:.3f}"
                      for t in row["tickets"]), flush=True)
            mine.append(row)
        p, n = stats(r["target"]["test_accuracy"] for r in mine)["mean"], mine[0]["tickets"][0]["held_out_samples"]
        summary[key] = {
            "name": FAMILIES[key]["name"], "width": args.width, "sparsity": args.sparsity,
            "held_out_standard_error": math.sqrt(p * (1 - p) / n),
            "target": {m: stats(r["target"][m] for r in mine) for m in ("train_accuracy", "test_accuracy")},
            "tickets": {str(e): {m: stats(t[m] for r in mine for t in r["tickets"] if t["epochs"] == e)
                                 for m in ("train_accuracy", "test_accuracy", "best_epoch_test_accuracy")}
                        for e in (epochs, args.long * epochs)}}
        runs += mine
    write_json("width_gap", {"settings": vars(args), "summary": summary, "runs": runs}, clock.start)


if __name__ == "__main__":
    main()
