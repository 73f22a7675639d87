r"""Error feedback: the residual of each solved coefficient is folded into the targets of those not yet solved.

Independent Subset-Sum problems leave independent residuals, which add up in the layer's output. With
``feedback=True`` the layer's problems are solved one *feature* at a time (an input field ``b``, a basis element
``k`` of a block and a sign half: the column ``θ[:, b, k]`` over the block's output fields) and each solved
feature's residual ``r_Q = α̂_Q − α_Q`` moves the targets of the features still to come so that the layer's output
on the traced inputs changes least. This is GPTQ (Frantar et al. 2023; Optimal Brain Compression) in coefficient
space: with ``φ_q(x)`` the layer's output when only coefficient ``q`` is 1 (on ``σ(x)`` for the positive half,
``σ(−x)`` for the negative one) and the second moment ``H = Σ_x φ(x)ᵀφ(x) + λ I`` over the traced inputs
(``λ = DAMPING · mean diag H``), the remaining targets ``R`` become

.. math:: α_R \leftarrow α_R + r_Q\, U_{QQ}^{-1} U_{QR},\qquad H^{-1} = UᵀU

(``U`` upper triangular, features in solving order),

which minimises ``‖Σ_q (α̂_q − α_q) φ_q‖²`` over the remaining targets given the residual of ``Q``. Every
problem is still solved within ``tol`` of its (moved) target, so a ticket keeps as many coefficients as without
feedback, while its output error on inputs like the traced ones is several times smaller. The certificate's
residuals are those against the target's own coefficients (its worst-case bound does not see the cancellation);
its measured error and agreement do.

Output fields of one type share their features (the same basis maps every input field into them), so ``H`` is
one matrix per group of output fields, shared by every output field of the group. Features are solved in the
order of their share of the output (``H``'s diagonal, largest first: GPTQ's "act order"), so the large
residuals come early, while many targets are left to absorb them.

A feature whose output is zero on every traced input (a ReLU channel that never fires there, or a sign half the
input never takes) is *silent*: ``prune_silent`` (:func:`~equislt.construct.construct`) keeps none of its
coefficients, since no choice of them changes the output on those inputs (a measured, not a certified, saving:
the certificate counts their rows apart and its bound sees their full residuals).

The order and the factors depend on the target and the traced inputs only, not on the tolerance or the pools:
a :class:`FeedbackCache` passed to several constructions of one target (``construct(..., feedback=cache)``;
:func:`~equislt.construct.construct_sparse` does this across its levels) computes them once per layer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch

from .._compat import as_input_of, tensor_of

__all__ = ["DAMPING", "FEEDBACK_BYTES", "FEEDBACK_SAMPLES", "FEEDBACK_TRACE_BYTES", "FeedbackCache", "LayerFeedback",
           "SILENT_ENERGY"]

FEEDBACK_SAMPLES = 1024  # inputs traced for the second moments (the other methods trace 128), at most
FEEDBACK_TRACE_BYTES = 2**31  # the traced inputs and outputs of every unit, at most (fewer samples on large models)
FEEDBACK_BYTES = 2**28  # the features of one group of output fields on the traced inputs, at most
DAMPING = 0.01  # λ / mean diag H
SILENT_ENERGY = 1e-12  # a feature whose output energy is below this fraction of its group's mean is silent


@dataclass
class _Group:
    """Output fields sharing features: ``positions [n_out, Q]`` of every feature's coefficients in the flat
    goals (positive half first, then negative), ``U [Q, Q]`` and each step's feature range."""

    positions: torch.Tensor
    factor: torch.Tensor
    steps: Dict[int, Tuple[int, int]] = field(default_factory=dict)  # step -> [start, stop) of its features


@dataclass
class LayerFeedback:
    """The solving order of one layer (``steps``: ``(field b, flat weight positions of the step's columns)``)
    and the state of its moving targets ``goals`` (flat, positive half then negative half, normalised)."""

    steps: List[Tuple[int, torch.Tensor]]
    goals: torch.Tensor
    start: torch.Tensor  # the goals before any step
    numel: int
    groups: List[_Group]
    step_groups: List[List[int]]
    silent: torch.Tensor  # [steps, halves] the feature's output is zero on every traced input

    @classmethod
    def of(cls, layer, unit, blocks, halves, alpha: torch.Tensor) -> "LayerFeedback":
        """The steps of ``layer`` (one per input field and basis element of a block; normalised coefficients
        ``alpha``), ordered by their share of the output on the traced call ``unit`` (largest first), and each
        group's factored second moment in that order."""
        numel = alpha.numel()
        goals = torch.cat([sign * alpha.reshape(-1).double() for _, sign in halves])
        grouped: Dict[Tuple[int, ...], List[Tuple[int, torch.Tensor]]] = {}  # out fields -> (step, rows)
        steps: List[Tuple[int, torch.Tensor]] = []
        for b in range(blocks.n_fields):
            for block in blocks.mix_blocks:
                if b not in block.in_fields:
                    continue
                column = block.index[:, block.in_fields.index(b), :]  # [n_out, n_basis]
                for k in range(column.shape[1]):
                    grouped.setdefault(tuple(block.out_fields), []).append((len(steps), column[:, k]))
                    steps.append((b, column[:, k]))
        moments, weight = [], torch.zeros(len(steps), dtype=torch.float64)
        silent = torch.ones(len(steps), len(halves), dtype=torch.bool)
        for out_fields, members in grouped.items():
            positions = torch.stack([rows + h * numel for _, rows in members for h in range(len(halves))], dim=1)
            moment = _second_moment(layer, unit, halves, out_fields, positions, numel)
            energy = moment.diagonal().reshape(len(members), len(halves))
            silent[[step for step, _ in members]] &= energy <= SILENT_ENERGY * energy.mean()
            diagonal = energy.sum(dim=1)
            weight[[step for step, _ in members]] += diagonal / diagonal.mean().clamp(min=1e-300)
            moments.append((members, positions, moment))
        order = torch.argsort(weight, descending=True, stable=True).tolist()  # most output energy first
        rank = {step: i for i, step in enumerate(order)}
        groups, step_groups = [], [[] for _ in steps]
        for g, (members, positions, moment) in enumerate(moments):
            members_order = sorted(range(len(members)), key=lambda m: rank[members[m][0]])
            features = torch.tensor([m * len(halves) + h for m in members_order for h in range(len(halves))])
            group = _Group(positions[:, features], _factor(moment[features][:, features]))
            for i, m in enumerate(members_order):
                group.steps[rank[members[m][0]]] = (i * len(halves), (i + 1) * len(halves))
                step_groups[rank[members[m][0]]].append(g)
            groups.append(group)
        return cls([steps[step] for step in order], goals, goals.clone(), numel, groups, step_groups, silent[order])

    def restarted(self) -> "LayerFeedback":
        """The same order and factors with the targets as they were before any step (the groups are shared)."""
        return dataclasses.replace(self, goals=self.start.clone())

    def half_goals(self, n_halves: int) -> List[torch.Tensor]:
        """The current targets of each half, flat in the layout of the weight tensor."""
        return [self.goals[h * self.numel:(h + 1) * self.numel] for h in range(n_halves)]

    def propagate(self, step: int, residual: torch.Tensor) -> None:
        """Fold the residuals ``α̂ − α`` of ``step`` (flat goal layout, only its positions read) into the targets
        of the features after it."""
        for g in self.step_groups[step]:
            group = self.groups[g]
            start, stop = group.steps[step]
            if stop >= group.positions.shape[1]:
                continue
            u = group.factor
            transfer = torch.linalg.solve_triangular(u[start:stop, start:stop], u[start:stop, stop:], upper=True)
            r = residual[group.positions[:, start:stop]]  # [n_out, |Q|]
            later = group.positions[:, stop:]
            self.goals[later.reshape(-1)] += (r @ transfer).reshape(-1)


class FeedbackCache:
    """Each layer's :class:`LayerFeedback` (solving order and factored second moments, ``Q²`` floats per group of
    output fields), kept across constructions of one target on the same inputs, which need them at any tolerance
    and pool size. A layer is reused only if its coefficients and traced input are those it was computed on;
    otherwise it is computed again (and replaces the kept one)."""

    def __init__(self):
        self._layers: Dict[str, Tuple[torch.Tensor, tuple, LayerFeedback]] = {}
        self.hits = 0  # layers served from the cache

    def feedback(self, layer, unit, blocks, halves, alpha: torch.Tensor) -> LayerFeedback:
        """:meth:`LayerFeedback.of` (same arguments), from the cache when ``layer`` and ``unit`` are unchanged."""
        inputs = (len(halves), _fingerprint([unit.inputs, *unit.extra]))
        kept = self._layers.get(layer.path)
        if kept is not None and kept[1] == inputs and torch.equal(kept[0], alpha):
            self.hits += 1
            return kept[2].restarted()
        made = LayerFeedback.of(layer, unit, blocks, halves, alpha)
        self._layers[layer.path] = (alpha.clone(), inputs, made.restarted())
        return made

    def __repr__(self) -> str:
        return f"FeedbackCache(layers={list(self._layers)}, hits={self.hits})"


def _fingerprint(values) -> tuple:
    """Shapes and first moments of the tensors among ``values`` (the traced call's input and extra arguments)."""
    out = []
    for value in values:
        x = tensor_of(value)
        if torch.is_tensor(x):
            x = x.double()
            out.append((tuple(x.shape), float(x.sum()), float(x.abs().sum()), float((x * x).sum())))
        else:
            out.append(repr(value))
    return tuple(out)


def _factor(moment: torch.Tensor) -> torch.Tensor:
    """``U`` upper triangular with ``UᵀU = (H + λ I)⁻¹``."""
    h = moment.clone()
    scale = float(h.diagonal().mean()) if h.numel() else 1.0
    h.diagonal().add_(DAMPING * (scale if scale > 0 else 1.0))
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inverse, upper=True)


@torch.no_grad()
def _second_moment(layer, unit, halves, out_fields, positions: torch.Tensor, numel: int) -> torch.Tensor:
    """``H [Q, Q]`` of the features ``positions [n_out, Q]`` on the traced inputs of ``unit``: feature ``q`` is the
    output of the layer whose only non-zero coefficient is ``q`` (row ``a``'s copy of it lands in output field
    ``out_fields[a]``; a pass probes one feature per output field)."""
    family, module = layer.family, layer.module
    probe = family.like(module, family.inputs(module))
    name = family.weight_name(probe)
    n_out, n_features = positions.shape
    x, extra = _samples(unit, n_out, n_features, module, family, out_fields)
    channels = [family.field_channels(module, f) for f in out_fields]
    features = None
    for h, (_, sign) in enumerate(halves):
        half_input = as_input_of(probe, torch.relu(sign * x))
        mine = [q for q in range(n_features) if int(positions[0, q]) // numel == h]
        for start in range(0, len(mine), n_out):
            chunk = mine[start:start + n_out]
            coefficients = torch.zeros(numel, dtype=torch.float64)
            for a, q in enumerate(chunk):
                coefficients[int(positions[a, q]) - h * numel] = 1.0
            probe.train()
            getattr(probe, name).copy_(coefficients.view_as(getattr(probe, name)))
            probe.eval()
            out = tensor_of(probe(half_input, *extra)).double()
            for a, q in enumerate(chunk):
                column = out[:, channels[a]].reshape(-1)
                if features is None:
                    features = torch.zeros(column.numel(), n_features, dtype=torch.float64)
                features[:, q] = column
    return features.T @ features


def _samples(unit, n_out: int, n_features: int, module, family, out_fields) -> Tuple[torch.Tensor, tuple]:
    """The traced input of ``unit`` and its extra arguments, cut to as many samples as ``FEEDBACK_BYTES`` of
    features allow (at least one)."""
    x = tensor_of(unit.inputs)
    out = tensor_of(unit.output)
    width = family.field_channels(module, out_fields[0])
    per_sample = max(out[:1, width].numel(), 1) * n_features * 8
    count = max(1, min(x.shape[0], FEEDBACK_BYTES // per_sample))
    if count == x.shape[0]:
        return x, tuple(unit.extra)
    extra = tuple(e[:count] if torch.is_tensor(e) and e.dim() and e.shape[0] == x.shape[0] else e for e in unit.extra)
    return x[:count], extra
