"""Plots of a search (matplotlib, imported on use): accuracy vs step, accuracy vs sparsity."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

__all__ = ["plot_run", "plot_accuracy_vs_sparsity"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(metrics_path, out_path) -> None:
    """Test accuracy (per epoch) and training loss (per step) against the step, from ``metrics.jsonl``."""
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in epochs], [r["test_accuracy"] for r in epochs], "o-", label="test accuracy")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    if steps:
        twin = ax.twinx()
        twin.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="0.6", lw=0.8, label="loss")
        twin.set_ylabel("training loss")
    ax.set_title("supermask search")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_sparsity(series: Dict[str, Sequence[tuple]], out_path, references: Dict[str, float] = None,
                              title: str = "accuracy vs sparsity") -> None:
    """``series``: ``{label: [(sparsity, accuracy), ...]}``; ``references``: horizontal lines (e.g. dense targets)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + len(series)}", label=label)
    ax.set_xlabel("sparsity (fraction of random coefficients pruned)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
