"""How wide must a random network be for the supermask search to match a trained target?

For each family (C4 and D4 steerable CNNs on rotated digits, GIN on atlas triangle counting, GCN on atlas
connectivity, a 2-IGN on atlas triangle counting) the target is trained at 1× width (the family scripts' settings:
channels (8, 16), hidden 32, hidden 16), and edge-popup searches a random network of 1×, 2× and 4× that width at
sparsities 0.3, 0.5 and 0.7 (Adam, ``--lr``, ``--epochs``), each for every seed. Reports the held-out accuracy per
(width, sparsity), mean ± std over seeds, its per-epoch curve, and the smallest width whose best sparsity matches
the target within one point. Writes ``results/width.json`` and ``results/width.png`` after every search, keeping
the families of an earlier run; a rerun with the same settings skips what is done (the whole grid takes hours on
2 cores: run it family by family, and resume an interrupted one by running the same command again). Seeds can
also run in parallel, each in its own checkout or on its own machine (``--seeds 1``), and be merged afterwards
with ``--merge`` (which searches nothing). A family whose grid is not complete yet is summarised as such: its
``searches`` say how many of the planned ones are done, and it has no smallest matching width.

    python benchmarks/paper/width.py [--families c4 d4 gin gcn ign] [--widths 1 2 4] [--seeds 0 1 2]
    python benchmarks/paper/width.py --merge other/width.json [...]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from _common import RESULTS, Timer, plt, run_arguments, setup, stats, write_json
from equislt.data import dense_graph_batch
from equislt.models import IGN, GraphClassifier, graph_accuracy, steerable_cnn, train_classifier, train_graph_model
from equislt.models import accuracy as image_accuracy
from equislt.search import SearchConfig, Searcher, build_task
from mpnn import pyg_model

FAMILIES = {
    "c4": {"name": "steerable CNN C4", "data": "rotated_digits", "data_kwargs": {}, "model": "steerable_cnn",
           "kwargs": lambda w: {"group": "c4", "channels": [8 * w, 16 * w]}, "epochs": 30},
    "d4": {"name": "steerable CNN D4", "data": "rotated_digits", "data_kwargs": {}, "model": "steerable_cnn",
           "kwargs": lambda w: {"group": "d4", "channels": [8 * w, 16 * w]}, "epochs": 30},
    "gin": {"name": "GIN atlas-triangles", "data": "graph_atlas",
            "data_kwargs": {"task": "triangles", "features": "degree", "seed": 0}, "model": "gin",
            "kwargs": lambda w: {"hidden_channels": 32 * w, "num_layers": 3}, "epochs": 60},
    "gcn": {"name": "GCN atlas-connected", "data": "graph_atlas",
            "data_kwargs": {"task": "connected", "features": "degree", "seed": 0}, "model": "gcn",
            "kwargs": lambda w: {"hidden_channels": 32 * w, "num_layers": 3}, "epochs": 60},
    "ign": {"name": "2-IGN atlas-triangles", "data": "graph_atlas",
            "data_kwargs": {"task": "triangles", "features": "ones", "seed": 0}, "model": "ign",
            "kwargs": lambda w: {"hidden_channels": 16 * w, "num_layers": 2}, "epochs": 60},
}


def train_target(key: str, seed: int):
    """The trained 1× target of the family scripts (steerable.py, mpnn.py, ign.py settings) and an accuracy
    function ``split -> accuracy`` over its task's ``"train"`` and ``"test"`` splits."""
    family = FAMILIES[key]
    task = build_task(family["data"], family["data_kwargs"])
    torch.manual_seed(seed)
    if family["data"] == "rotated_digits":
        loader = torch.utils.data.DataLoader(task.train, batch_size=32, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        model = steerable_cnn(family["kwargs"](1)["group"], channels=(8, 16), input_size=17)
        train_classifier(model, loader, epochs=10, lr=1e-2, progress=False)
        return model.eval(), lambda split: image_accuracy(
            model, torch.utils.data.DataLoader(getattr(task, split), batch_size=256))
    from torch_geometric.loader import DataLoader

    loader = DataLoader(task.train, batch_size=32 if key == "ign" else 64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    in_channels = task.train[0].x.shape[1]
    if key == "ign":  # the dense input holds the node features and the adjacency: one more channel
        from torch_geometric.data import Batch

        channels = dense_graph_batch(Batch.from_data_list(task.train[:1]))[0].shape[1]
        model = IGN(channels, 16, task.num_classes, num_layers=2, order=2)
    else:
        model = GraphClassifier(pyg_model(key, in_channels, 32, 3), 32, task.num_classes)
    train_graph_model(model, loader, epochs=100, lr=3e-3)
    return model.eval(), lambda split: graph_accuracy(model, DataLoader(getattr(task, split), batch_size=256))


def target_accuracy(key: str, seed: int) -> float:
    """Held-out accuracy of :func:`train_target`'s model."""
    return train_target(key, seed)[1]("test")


def search_config(key: str, width: int, sparsity: float, epochs: int, lr: float, seed: int,
                  **changes) -> SearchConfig:
    """The width study's search of ``key`` at ``width``; ``changes`` replace config fields (``model_kwargs``
    entries are merged into the family's)."""
    family = FAMILIES[key]
    model_kwargs = {**family["kwargs"](width), **changes.pop("model_kwargs", {})}
    return SearchConfig(model=family["model"], model_kwargs=model_kwargs, data=family["data"],
                        data_kwargs=family["data_kwargs"], sparsity=sparsity, epochs=epochs, lr=lr,
                        optimizer="adam", seed=seed, out=None, progress=False, **changes)


def search(key: str, width: int, sparsity: float, epochs: int, lr: float, seed: int, **changes) -> dict:
    t0 = time.perf_counter()
    searcher = Searcher(search_config(key, width, sparsity, epochs, lr, seed, **changes), log=lambda *_: None)
    try:
        result = searcher.run()
    finally:
        searcher.close()
    curve = [h.get("test_accuracy") for h in result["history"]]
    row = {"family": key, "width": width, "sparsity": sparsity, "seed": seed, "epochs": epochs, "lr": lr,
           "test_accuracy": result["test_accuracy"], "train_accuracy": result["train_accuracy"],
           "last_five_mean": sum(curve[-5:]) / len(curve[-5:]),
           "accuracy_per_epoch": curve, "coefficients_masked": result["coefficients_masked"],
           "held_out_samples": len(searcher.task.test), "seconds": time.perf_counter() - t0}
    print(f"[{key} {width}x sparsity {sparsity} seed {seed}] acc {row['test_accuracy']:.3f} "
          f"({row['seconds']:.0f} s)", flush=True)
    return row


def summarise(key: str, rows, target: dict, planned: int) -> dict:
    """Per (width, sparsity) cell: held-out accuracy over seeds; the smallest width whose best cell is within one
    point of the target's mean (``target``: :func:`stats` over seeds), once all ``planned`` searches are done."""
    cells = {}
    for width in sorted({r["width"] for r in rows}):
        for sparsity in sorted({r["sparsity"] for r in rows}):
            mine = [r["test_accuracy"] for r in rows if r["width"] == width and r["sparsity"] == sparsity]
            if mine:
                cells[f"{width}x/{sparsity}"] = stats(mine)
    matching = [int(cell.split("x")[0]) for cell, s in cells.items()
                if target.get("n") and s["mean"] >= target["mean"] - 0.01]
    complete = len(rows) >= planned
    return {"name": FAMILIES[key]["name"], "target_accuracy": target, "cells": cells,
            "searches": {"done": len(rows), "planned": planned},
            "smallest_matching_width": min(matching) if matching and complete else None}


def merge(path: Path, rows: list, targets: list) -> dict:
    """Add the searches and targets of another ``width.json`` that ``rows`` and ``targets`` lack (a search is
    identified by family, width, sparsity, seed, epochs and lr; a target by family and seed); returns
    ``{family: the settings it was run with}`` for the families it holds."""
    try:
        other = json.loads(path.read_text())
        runs, trained = other["runs"], other["targets"]
        settings = {r["family"]: other["summary"][r["family"]]["settings"] for r in runs}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"width.py --merge {path}: not a width.json of this script ({error!r})")
    have = {_identity(r) for r in rows}
    rows += [r for r in runs if _identity(r) not in have]
    seeds = {(t["family"], t["seed"]) for t in targets}
    targets += [t for t in trained if (t["family"], t["seed"]) not in seeds]
    return settings


def _identity(row: dict) -> tuple:
    return tuple(row[k] for k in ("family", "width", "sparsity", "seed", "epochs", "lr"))


def plot(summary: dict, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(summary), figsize=(4 * len(summary), 3.6), squeeze=False)
    for ax, (key, s) in zip(axes[0], summary.items()):
        sparsities = sorted({float(cell.split("/")[1]) for cell in s["cells"]})
        for sparsity in sparsities:
            points = sorted((int(cell.split("x")[0]), v) for cell, v in s["cells"].items()
                            if float(cell.split("/")[1]) == sparsity)
            ax.errorbar([w for w, _ in points], [v["mean"] for _, v in points], [v["std"] for _, v in points],
                        marker="o", capsize=3, label=f"sparsity {sparsity}")
        ax.axhline(s["target_accuracy"]["mean"], color="k", ls="--", label="trained target (1×)")
        widths = sorted({int(cell.split("x")[0]) for cell in s["cells"]})
        searches = s.get("searches", {})
        incomplete = searches and searches["done"] < searches["planned"]
        ax.set(xscale="log", xlabel="width of the random network (× target)", ylabel="held-out accuracy",
               title=s["name"] + (f" ({searches['done']} of {searches['planned']} searches)" if incomplete else ""))
        ax.set_xticks(widths, [f"{w}×" for w in widths])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--epochs", type=int, default=None, help="default: 30 for images, 60 for graphs")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--fresh", action="store_true",
                        help="start over: drop every family and run of an earlier results/width.json")
    run_arguments(parser)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from results/width.json")
    parser.add_argument("--merge", nargs="+", default=[], metavar="WIDTH_JSON",
                        help="add the searches and targets of other width.json files (seeds run elsewhere) to "
                             "results/width.json and summarise their families; searches nothing")
    args = parser.parse_args()
    path = RESULTS / "width.json"
    if args.plot_only:
        plot(json.loads(path.read_text())["summary"], RESULTS / "width.png")
        return
    clock = Timer()
    setup(args.threads, args.seeds[0])
    # The grid takes hours on 2 cores: results are written after every search, and a rerun with the same
    # settings skips the targets and cells already done (an interrupted family resumes where it stopped).
    previous = json.loads(path.read_text()) if path.exists() and not args.fresh else {}
    summary, rows, targets = previous.get("summary", {}), previous.get("runs", []), previous.get("targets", [])

    def same(row, key, epochs):
        return row["family"] == key and row["epochs"] == epochs and row["lr"] == args.lr

    def save(key, epochs, settings=None):
        """Summarise ``key``'s searches with ``epochs`` (and ``args.lr``) over the planned grid; write JSON and PNG."""
        mine = [r for r in rows if same(r, key, epochs)]
        planned = len(args.widths) * len(args.sparsities) * len(args.seeds)
        accuracies = [t["test_accuracy"] for t in targets if t["family"] == key]
        # (files written before the targets' accuracies were stored keep their summary of them)
        target = stats(accuracies) if accuracies else summary.get(key, {}).get("target_accuracy", stats([]))
        summary[key] = summarise(key, mine, target, planned)
        summary[key]["settings"] = {**(settings or vars(args)), "families": [key], "epochs": epochs,
                                    "widths": args.widths, "sparsities": args.sparsities, "seeds": args.seeds}
        RESULTS.mkdir(parents=True, exist_ok=True)
        plot(summary, RESULTS / "width.png")
        write_json("width", {"settings": vars(args), "summary": summary, "runs": rows, "targets": targets},
                   clock.start)

    if args.merge:  # the settings of the merged searches (threads included), over the planned seeds
        merged = {}
        for other in args.merge:
            merged.update(merge(Path(other), rows, targets))
        for key in sorted(set(merged) & set(args.families)):
            save(key, args.epochs or FAMILIES[key]["epochs"], merged[key])
        return
    for key in args.families:
        epochs = args.epochs or FAMILIES[key]["epochs"]
        rows[:] = [r for r in rows if r["family"] != key or same(r, key, epochs)]  # other settings: replaced
        if not any(r["family"] == key for r in rows):
            targets[:] = [t for t in targets if t["family"] != key]
        done_targets = {t["seed"] for t in targets if t["family"] == key}
        targets += [{"family": key, "seed": seed, "test_accuracy": target_accuracy(key, seed)}
                    for seed in args.seeds if seed not in done_targets]
        done = {(r["width"], r["sparsity"], r["seed"]) for r in rows if r["family"] == key}
        for seed in args.seeds:
            for width in args.widths:
                for sparsity in args.sparsities:
                    if (width, sparsity, seed) not in done:
                        rows.append(search(key, width, sparsity, epochs, args.lr, seed))
                        save(key, epochs)
        save(key, epochs)
        print(f"[{key}] target {summary[key]['target_accuracy']['mean']:.3f}; smallest matching width "
              f"{summary[key]['smallest_matching_width']}", flush=True)


if __name__ == "__main__":
    main()
