r"""Turn one target layer into Subset-Sum problems over its (unbuilt) random block, solve them, keep the masks.

Lift: hidden field ``j = offset_b + t`` (copy ``t`` of input field ``b``, :class:`~equislt.construct.HiddenLayout`)
keeps only its identity coefficient ``u_j`` from input field ``b``. Because ``σ(u x) = u σ(x)`` for ``u > 0`` and
``|u| σ(−x)`` for ``u < 0`` and ``x = σ(x) − σ(−x)``,

.. math:: \alpha_{abk} B_k x_b \approx \sum_{j \in S^+} u_j v_{ajk} B_k σ(x_b) − \sum_{j \in S^-} |u_j| v_{ajk} B_k σ(−x_b)

so for every target coefficient ``(a, b, k)`` one problem over the positive pool ``{j : u_j > 0}`` (target
``α``) and one over the negative pool (target ``−α``). When the layer's input is non-negative
(``σ(−x) = 0``), the negative pool is pruned entirely and only the positive problems are solved. Bias
coefficients are subset sums of their own pool of ``U[-1, 1]`` values.

``method="malach"`` (Malach et al. 2020) solves the same problems with subsets of at most one element
(:func:`~equislt.subsetsum.closest_single`): every target coefficient is one product ``|u_j| v_{ajk}``, the pool
is every copy of the sign (no exact-solver limit) and only the copies some coefficient uses are kept.

The problems of input field ``b`` only involve its own copies, so the layer is solved **one chunk of input
fields at a time** (fields of one type, as many as fit in ``CHUNK_BYTES``): draw the lift's identity
coefficients and the mix's coefficients of the chunk's copies (:mod:`._draw`), form the **pools** (at most
``min(MAX_N, w_b // 2 + 4)`` copies of each sign, the first ones), the **problems** (one row per coefficient and
sign), solve them in one batched exact call, keep the chosen copies per field, and drop the draws. The masks of
the wide lift and mix are written once at the end, from the final layout. Nothing of the width of the random
network is ever built as a module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

from ..subsetsum import closest_single, solve
from ._certificate import timed
from ._draw import bias_draw, field_draw
from ._layout import HiddenLayout, WideTensor

__all__ = ["CHUNK_BYTES", "METHODS", "FieldSolution", "LayerSolution", "field_chunks", "field_targets", "layer_solution",
           "put_field_values", "same_type_groups", "solve_bias", "solve_fields"]

CHUNK_BYTES = 2**28  # working memory of one chunk of input fields (draws and problems)
_CANDIDATE_BYTES = 9  # one candidate of one problem: a float64 value and a valid flag
METHODS = ("subset_sum", "malach")  # subsets of any size (Pensia et al.), of at most one element (Malach et al.)


def pool_cap(layout: HiddenLayout, b: int, method: str) -> int:
    """The largest pool of field ``b``: the exact solver's limit for Subset-Sum, every copy for Malach's."""
    return layout.pool_cap(b) if method == "subset_sum" else int(layout.widths[b])


@dataclass
class FieldSolution:
    """The solution of input field ``b``'s problems: the copies whose identity coefficient the lift keeps
    (``kept [w_b]``), per half the mix coefficients kept (``chosen[half] [w_b, C_b]``, in the field's draw
    coordinates) and the residual of every problem (``[C_b]``, normalised units), and the pool sizes."""

    kept: torch.Tensor
    chosen: Dict[str, torch.Tensor]
    residual: Dict[str, torch.Tensor]
    pool_count: Dict[str, int]

    def rows_over(self, tol: float) -> Dict[str, int]:
        return {half: int((r.abs() > tol).sum()) for half, r in self.residual.items()}

    def mix_chosen(self) -> torch.Tensor:
        """``[w_b, C_b]``: the mix coefficients kept by either half."""
        chosen = list(self.chosen.values())
        return chosen[0] if len(chosen) == 1 else chosen[0] | chosen[1]


@dataclass
class LayerSolution:
    """Residuals (``chosen sum − target``, normalised units) of one layer's problems in the layout of the target's
    weight coefficients (``weight_residual_neg`` all zeros when the input is non-negative; with error feedback,
    :mod:`._feedback`, against the target itself, ``goal_shift`` being each moved goal minus the target) and of
    its bias, the masks of the block's coefficient tensors (``{"lift": {name: mask}, "mix": ..., "bias": ...}``)
    and counts.
    A neuron subnetwork (:mod:`._neurons`) has no weight residuals (empty) and its ``fit_relative_error``."""

    weight_residual_pos: torch.Tensor
    weight_residual_neg: torch.Tensor
    bias_residual: torch.Tensor
    n_problems: int
    masks: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    pool_sizes: Dict[str, float] = field(default_factory=dict)
    fit_relative_error: Optional[float] = None  # neuron subnetworks: the layer's relative fit error (no residuals)
    goal_shift: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # error feedback: goal − target
    silent: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # half -> problems left empty

    @property
    def silent_rows(self) -> int:
        """Problems left empty because their feature is silent on the traced inputs (``prune_silent``)."""
        return sum(int(mask.sum()) for mask in self.silent.values())

    def weight_rows_over(self, tol: float) -> int:
        """Problems whose residual to their own goal (the target, or with error feedback the moved target)
        exceeds ``tol``, silent ones apart."""
        over = 0
        for half, residual in (("pos", self.weight_residual_pos), ("neg", self.weight_residual_neg)):
            shift = self.goal_shift.get(half)
            over_tol = (residual if shift is None else residual - shift).abs() > tol
            if half in self.silent:
                over_tol &= ~self.silent[half]
            over += int(over_tol.sum())
        return over

    def bias_rows_over(self, tol: float) -> int:
        return int((self.bias_residual.abs() > tol).sum())

    def rows_over(self, tol: float) -> int:
        """Problems whose residual exceeds ``tol``."""
        return self.weight_rows_over(tol) + self.bias_rows_over(tol)

    def weight_residuals(self, input_nonnegative: bool) -> torch.Tensor:
        """Every weight residual that enters the function (the negative half only when it is used)."""
        parts = [self.weight_residual_pos.reshape(-1)]
        if not input_nonnegative:
            parts.append(self.weight_residual_neg.reshape(-1))
        return torch.cat(parts)


def field_chunks(lift: WideTensor, mix: WideTensor, n_halves: int, method: str = "subset_sum") -> List[List[int]]:
    """Input fields grouped by type (their problems have one shape), in chunks of about ``CHUNK_BYTES``."""
    chunks = []
    for fields in same_type_groups(range(mix.layout.n_fields), mix):
        chunk, size = [], 0
        for b in fields:
            w = int(mix.layout.widths[b])
            rows = n_halves * mix.columns[b] * _CANDIDATE_BYTES * pool_cap(mix.layout, b, method)
            need = w * (4 * mix.columns[b] + 8 * lift.columns[b]) + rows
            if chunk and size + need > CHUNK_BYTES:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(b)
            size += need
        chunks.append(chunk)
    return chunks


def _cap(mask: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """Keep at most ``cap[f]`` slots of each row (the first ones)."""
    return mask & (torch.cumsum(mask.to(torch.int64), dim=1) <= cap[:, None])


def _left_packed(mask: torch.Tensor):
    """Per row, the slots where ``mask`` holds, left-packed: ``(index [F, L], valid [F, L])``."""
    counts = mask.sum(dim=1)
    length = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length)[None, :] < counts[:, None]
    return order, valid


def _identity_coefficients(fields: Sequence[int], lift: WideTensor, seed: int, path: str) -> torch.Tensor:
    """``u [len(fields), longest]``: each copy's identity coefficient from its field (float64, 0 in the padding)."""
    u = torch.zeros(len(fields), max(int(lift.layout.widths[b]) for b in fields), dtype=torch.float64)
    for j, b in enumerate(fields):
        column, _ = lift.identity(b)
        draw = field_draw(lift, b, seed, f"{path}.lift")
        u[j, :draw.shape[0]] = draw[:, column].double()
    return u


def field_targets(fields: Sequence[int], mix: WideTensor, target_blocks, coefficients: torch.Tensor) -> torch.Tensor:
    """``[len(fields), C]``: the target's coefficients (layout of its weight tensor) in the columns of the fields'
    draws; the fields must share one type."""
    parts = []
    for part in mix.parts[fields[0]]:
        block = target_blocks[mix.source[part.block]]
        occurrence = torch.tensor([block.in_fields.index(b) for b in fields])
        parts.append(block.take(coefficients)[:, occurrence, :].permute(1, 0, 2).reshape(len(fields), -1))
    return torch.cat(parts, dim=1)


def put_field_values(fields: Sequence[int], mix: WideTensor, target_blocks, coefficients: torch.Tensor,
                     values: torch.Tensor) -> None:
    """Inverse of :func:`field_targets`: write ``values [len(fields), C]`` into ``coefficients`` (contiguous) in
    place; the target's weight blocks are contiguous ranges (checked when ``mix`` was laid out)."""
    column = 0
    for part in mix.parts[fields[0]]:
        block = target_blocks[mix.source[part.block]]
        occurrence = torch.tensor([block.in_fields.index(b) for b in fields])
        n_out, _, n_basis = block.shape
        chunk = values[:, column:column + n_out * n_basis].reshape(len(fields), n_out, n_basis)
        view = block.take(coefficients)  # a view: the block is one contiguous range
        view[:, occurrence, :] = chunk.permute(1, 0, 2).to(view.dtype)
        column += n_out * n_basis


def same_type_groups(fields: Sequence[int], mix: WideTensor) -> List[List[int]]:
    """``fields`` grouped by type (fields of one type share the columns of their draws)."""
    groups: Dict[Tuple, List[int]] = {}
    for b in fields:
        groups.setdefault(tuple(mix.blocks[p.block].in_repr for p in mix.parts[b]), []).append(b)
    return list(groups.values())


def solve_fields(fields: Sequence[int], lift: WideTensor, mix: WideTensor, goals: Dict[str, torch.Tensor], halves,
                 seed: int, path: str, tol, fewest: bool, seconds: Optional[Dict[str, float]] = None,
                 previous: Optional[Dict[int, FieldSolution]] = None, device=None,
                 method: str = "subset_sum",
                 rows: Optional[Dict[str, torch.Tensor]] = None) -> Dict[int, FieldSolution]:
    """Solve the problems of ``fields`` (one type; ``goals[half] [len(fields), C]``: each half's targets,
    normalised and signed) in one batched call.

    With ``previous`` (the fields' solutions before they were widened) only the rows over ``tol`` are solved
    again, over the widened pools; the other rows keep their subsets, which the widened pools still contain (a
    pool is the first copies of its sign, and widening appends copies). ``rows[half] [len(fields), C]`` solves
    only those rows (the others keep ``previous``'s subsets, or none). Times go to ``seconds`` (``draw``: the
    draws and the problems, ``solve``: the exact solver, on ``device``: default the CPU). With ``fewest`` or
    ``method="malach"`` the lift keeps only the copies some mix coefficient uses."""
    seconds = {} if seconds is None else seconds
    redo = rows
    if previous is not None and rows is None:
        redo = {half: torch.stack([previous[b].residual[half].abs() > tol for b in fields]) for half, _ in halves}
    with timed(seconds, "draw"):
        pools, problems = _problems(fields, lift, mix, goals, halves, seed, path, redo, method)
    with timed(seconds, "solve"):
        values, valid, row_goals, packing = problems
        width = max(v.shape[1] for v in values)
        values = torch.cat([F.pad(v, (0, width - v.shape[1])) for v in values])
        valid = torch.cat([F.pad(v, (0, width - v.shape[1])) for v in valid])
        if method == "malach":
            result = closest_single(values, torch.cat(row_goals), valid, tol=tol, device=device)
        else:
            result = solve(values, torch.cat(row_goals), valid, tol=tol, fewest=fewest and tol is not None, device=device)
    return _field_solutions(fields, result, packing, pools, [int(mix.layout.widths[b]) for b in fields], halves,
                            previous, used_only=fewest or method == "malach")


def _problems(fields, lift: WideTensor, mix: WideTensor, goals, halves, seed: int, path: str, redo=None,
              method: str = "subset_sum"):
    """The draws of ``fields`` and their problems: one row per (field, column, half) over the half's pool toward
    ``goals[half]`` (only the rows ``redo[half] [B, C]`` when given)."""
    layout: HiddenLayout = mix.layout
    widths = torch.tensor([int(layout.widths[b]) for b in fields])
    u = _identity_coefficients(fields, lift, seed, path)  # [B, W]
    caps = torch.tensor([pool_cap(layout, b, method) for b in fields])
    pools = {"pos": _cap(u > 0, caps), "neg": _cap(u < 0, caps)}
    n_fields, longest = u.shape
    columns = next(iter(goals.values())).shape[1]
    draws = torch.zeros(n_fields, longest, columns, dtype=torch.float32)
    for j, b in enumerate(fields):
        draws[j, :widths[j]] = field_draw(mix, b, seed, f"{path}.mix")
    values, valid, rows_goals, packing = [], [], [], []
    for half, _ in halves:
        order, ok = _left_packed(pools[half])  # [B, L]: copies t of each field's pool
        rows = torch.ones((n_fields, columns), dtype=torch.bool) if redo is None else redo[half]  # [B, C]
        candidates = torch.gather(draws, 1, order[:, :, None].expand(-1, -1, draws.shape[2])).permute(0, 2, 1)
        scale = torch.gather(u.abs(), 1, order)  # |u_j|
        values.append(candidates[rows].double() * scale[:, None, :].expand(-1, columns, -1)[rows])  # [R, L]
        valid.append(ok[:, None, :].expand(-1, columns, -1)[rows])
        rows_goals.append(goals[half].double()[rows])
        packing.append((half, order, rows))
    return pools, (values, valid, rows_goals, packing)


def _field_solutions(fields, result, packing, pools, widths, halves, previous=None,
                     used_only: bool = False) -> Dict[int, FieldSolution]:
    """Each field's chosen copies (in its draw coordinates), residuals and pool sizes from the batched result
    (rows not solved again keep ``previous``'s); the lift keeps every pooled copy, or with ``used_only`` the
    copies some row chose."""
    n_fields, longest = pools["pos"].shape
    chosen, residual, start = {}, {}, 0
    for half, order, rows in packing:
        columns, length, count = rows.shape[1], order.shape[1], int(rows.sum())
        chosen[half] = torch.zeros(n_fields, longest, columns, dtype=torch.bool)
        residual[half] = torch.zeros(n_fields, columns, dtype=torch.float64)
        if previous is not None:
            for j, b in enumerate(fields):
                old = previous[b].chosen[half]
                chosen[half][j, :old.shape[0]] = old & ~rows[j]  # rows solved again start empty
                residual[half][j] = previous[b].residual[half]
        picked = torch.zeros(n_fields, columns, length, dtype=torch.bool)
        picked[rows] = result.chosen[start:start + count, :length].cpu()
        index = order[:, :, None].expand(-1, -1, columns)
        chosen[half].scatter_(1, index, picked.permute(0, 2, 1) | torch.gather(chosen[half], 1, index))
        residual[half][rows] = result.residual[start:start + count].double().cpu()
        start += count
    kept = pools["pos"] | (pools["neg"] if len(halves) > 1 else torch.zeros_like(pools["neg"]))
    if used_only:
        kept = torch.stack([chosen[half].any(dim=2) for half, _ in halves]).any(dim=0)
    return {b: FieldSolution(kept[j, :widths[j]].clone(), {h: chosen[h][j, :widths[j]].clone() for h, _ in halves},
                             {half: residual[half][j].clone() for half, _ in halves},
                             {half: int(pools[half][j].sum()) for half, _ in halves})
            for j, b in enumerate(fields)}


def solve_bias(targets: torch.Tensor, pool: int, seed: int, path: str, tol, fewest: bool, device=None,
               method: str = "subset_sum"):
    """``(mask [n_bias, pool], residual [n_bias])``: every bias coefficient a subset sum of its own pool (of at
    most one element of it for ``method="malach"``)."""
    values = bias_draw((targets.numel(), pool), seed, path).double()
    if method == "malach":
        result = closest_single(values, targets.double(), tol=tol, device=device)
    else:
        result = solve(values, targets.double(), tol=tol, fewest=fewest and tol is not None, device=device)
    return result.chosen.cpu().view(values.shape), result.residual.cpu()


def layer_solution(solutions: Dict[int, FieldSolution], lift: WideTensor, mix: WideTensor, target_blocks,
                   reference: torch.Tensor, halves, bias_mask=None, bias_residual=None) -> LayerSolution:
    """Residuals in the target's layout and the block's masks, from every field's solution (final layout)."""
    residuals = {"pos": torch.zeros_like(reference, dtype=torch.float64),
                 "neg": torch.zeros_like(reference, dtype=torch.float64)}
    lift_mask = torch.zeros(lift.numel, dtype=torch.bool)
    mix_mask = torch.zeros(mix.numel, dtype=torch.bool)
    for group in same_type_groups(sorted(solutions), mix):
        for half, _ in halves:
            values = torch.stack([solutions[b].residual[half] for b in group])
            put_field_values(group, mix, target_blocks, residuals[half], values)
    for b, solution in solutions.items():
        lift_mask[lift.identity(b)[1][solution.kept]] = True
        mix_mask[mix.field_positions(b)[solution.mix_chosen()]] = True
    masks = {"lift": {lift.name: lift_mask.view(lift.shape)}, "mix": {mix.name: mix_mask.view(mix.shape)}}
    if bias_mask is not None:
        masks["bias"] = {"bias": bias_mask}
    bias_residual = torch.zeros(0, dtype=torch.float64) if bias_residual is None else bias_residual.double()
    counts = {half: torch.tensor([float(s.pool_count[half]) for s in solutions.values()]) for half, _ in halves}
    return LayerSolution(
        weight_residual_pos=residuals["pos"], weight_residual_neg=residuals["neg"], bias_residual=bias_residual,
        n_problems=int(reference.numel() * len(halves) + bias_residual.numel()), masks=masks,
        pool_sizes={"positive_mean": float(counts["pos"].mean()) if counts["pos"].numel() else 0.0,
                    "negative_mean": float(counts["neg"].mean()) if "neg" in counts and counts["neg"].numel() else 0.0})
