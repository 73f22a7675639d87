"""What a mask covers: every parameter of a model as masked, a score, trainable or frozen dense.

:func:`~equislt.nn.supermask` and :func:`~equislt.nn.mask_model` mask the coefficients of the layers equislt knows
(:func:`~equislt.nn.coefficient_layers`); every other parameter (a GAT's attention vectors, a PyG convolution's own
bias, batch-norm affine parameters) is left as it is, and :func:`~equislt.nn.supermask` freezes it at its random
value, unless ``include="all"`` masks it too. :func:`coverage` says which is which, so nothing is left dense without the user seeing it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Tuple

from torch import nn

from ._convert import coefficient_layers
from ._masked import MaskedLayer
from ._parameter_masks import parameter_masks

__all__ = ["COVERAGE_STATUSES", "Coverage", "ParameterCoverage", "coverage"]

COVERAGE_STATUSES = ("masked", "scores", "trainable", "frozen")


@dataclass(frozen=True)
class ParameterCoverage:
    """One parameter: its ``name`` in the model, ``shape``, ``count`` of numbers and ``status``: ``"masked"`` (a
    coefficient under a mask), ``"scores"`` (supermask scores), ``"trainable"`` or ``"frozen"`` (dense, fixed)."""

    name: str
    shape: Tuple[int, ...]
    count: int
    status: str


class Coverage:
    """The :class:`ParameterCoverage` of every parameter of a model; ``str()`` is a table with totals."""

    def __init__(self, rows: List[ParameterCoverage]):
        self.rows = rows

    def counts(self) -> Dict[str, int]:
        """Numbers per status (every status present, zero if none)."""
        totals = Counter()
        for row in self.rows:
            totals[row.status] += row.count
        return {status: totals[status] for status in COVERAGE_STATUSES}

    def named(self, status: str) -> List[str]:
        """The names of the parameters with ``status``."""
        return [row.name for row in self.rows if row.status == status]

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.rows] + [9])
        lines = [f"{'parameter':<{width}}  {'shape':<18} {'count':>10}  status"]
        lines += [f"{r.name:<{width}}  {str(list(r.shape)):<18} {r.count:>10,}  {r.status}" for r in self.rows]
        lines.append(", ".join(f"{status} {count:,}" for status, count in self.counts().items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "Coverage(" + ", ".join(f"{k}={v}" for k, v in self.counts().items()) + ")"


def coverage(model: nn.Module) -> Coverage:
    """Every parameter of ``model`` with what a mask does to it (see :class:`ParameterCoverage`)."""
    masked = set()
    for path, layer in coefficient_layers(model):
        if isinstance(layer, MaskedLayer):
            masked |= {f"{path}.{name}" if path else name for name in layer.mask.names}
    for path, name, _ in parameter_masks(model):  # include="all": read through a parametrization
        masked.add(f"{path}.parametrizations.{name}.original" if path else f"parametrizations.{name}.original")
    rows = []
    for name, parameter in model.named_parameters():
        if name in masked:
            status = "masked"
        elif name.endswith("_scores"):
            status = "scores"
        else:
            status = "trainable" if parameter.requires_grad else "frozen"
        rows.append(ParameterCoverage(name, tuple(parameter.shape), parameter.numel(), status))
    return Coverage(rows)
