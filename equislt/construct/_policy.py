"""What the construction does when Subset-Sum rows exceed the tolerance: ``"widen"``, ``"report"`` or ``"raise"``.

``widen`` gives each input field that owns a row over ``tol`` 4 more hidden copies (about 2 more summands per
pool) while that row's pool has fewer than ``max_n`` summands (at most ``4·max_n`` copies per field, so it
terminates); bias rows widen the bias pool by 2, up to ``max_n``. Malach's single-element method needs
``N ∝ 1/tol`` instead of ``log(1/tol)``, so there a widening doubles the field's copies (and the bias pool), up to
pools of ``max_n``. A field's problems only involve its own copies
and the draws are prefix-stable per field (:mod:`._draw`), so only the widened fields are drawn again, and only
their rows over ``tol`` are solved again (the others keep their subsets, which the widened pools contain). ``report`` keeps the rows over ``tol`` and counts them in the certificate; ``raise`` fails naming
the layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from ..subsetsum import MAX_N
from ._build import LayerBlocks
from ._certificate import timed
from ._feedback import FeedbackCache, LayerFeedback
from ._layout import LayerPlan
from ._solve import METHODS, FieldSolution, LayerSolution, field_chunks, field_targets, layer_solution, solve_bias, solve_fields

__all__ = ["POLICIES", "Tolerance", "solve_within_tolerance"]

POLICIES = ("widen", "report", "raise")
WIDEN_COPIES = 4  # hidden copies added to a field per widening round
WIDEN_BIAS_POOL = 2  # bias pool entries added per round


@dataclass(frozen=True)
class Tolerance:
    """The per-coefficient tolerance ``tol`` (normalised units), the policy for rows over it, the largest pool
    ``max_n`` a widening may reach, ``fewest`` (keep the fewest coefficients within ``tol``), the ``device``
    the exact solver runs on (``None``: the CPU; else its torch backend there) and the ``method``
    (``"subset_sum"`` or ``"malach"``: subsets of at most one element); with error feedback, ``prune_silent``
    leaves the problems of silent features empty (:mod:`._feedback`)."""

    tol: float
    policy: str = "widen"
    max_n: int = MAX_N
    fewest: bool = False
    device: Optional[torch.device] = None
    method: str = "subset_sum"
    prune_silent: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"construct: the solver method must be one of {METHODS}, got {self.method!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"construct: policy must be 'widen', 'report' or 'raise', got {self.policy!r}")
        if not 0 < self.tol < 1:
            raise ValueError(f"construct: tol must be in (0, 1), got {self.tol}")

    def can_grow(self, plan: LayerPlan, b: int, solution: FieldSolution) -> bool:
        """Field ``b`` owns a row over ``tol`` in a half whose pool can still grow."""
        over = solution.rows_over(self.tol)
        if self.method == "malach":
            return any(count and solution.pool_count[half] < self.max_n for half, count in over.items()) and \
                plan.copies_of(b) < 2 * self.max_n
        return any(count and solution.pool_count[half] < self.max_n for half, count in over.items()) and \
            plan.copies_of(b) // 2 + 2 <= 2 * self.max_n

    def growth(self, plan: LayerPlan, b: int) -> int:
        """Hidden copies a widening adds to field ``b``: 4, or for Malach's method as many as it has (doubling,
        up to ``2 max_n`` copies)."""
        if self.method == "malach":
            return max(min(plan.copies_of(b), 2 * self.max_n - plan.copies_of(b)), 2)
        return WIDEN_COPIES

    def bias_growth(self, pool: int) -> int:
        """Entries a widening adds to a bias pool of ``pool``: 2, or ``pool`` (doubling, up to ``max_n``) for
        Malach's method."""
        return min(pool, self.max_n - pool) if self.method == "malach" else WIDEN_BIAS_POOL


def _halves(layer) -> list:
    return [("pos", 1.0)] + ([("neg", -1.0)] if not layer.input_nonnegative else [])


def _solve_weights(layer, plan: LayerPlan, blocks: LayerBlocks, seed: int, tolerance: Tolerance,
                   seconds: Dict[str, float]) -> Dict[int, FieldSolution]:
    """Every input field's problems, chunk by chunk, widening the fields the policy widens."""
    alpha, halves = layer.alpha.double() / plan.gain, _halves(layer)
    solutions: Dict[int, FieldSolution] = {}
    lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
    for chunk in field_chunks(lift, mix, len(halves), tolerance.method):
        pending: List[int] = chunk
        previous = None
        while pending:
            targets = field_targets(pending, mix, blocks.mix_blocks, alpha)
            goals = {half: sign * targets for half, sign in halves}
            solutions.update(solve_fields(pending, lift, mix, goals, halves, seed, plan.path, tolerance.tol,
                                          tolerance.fewest, seconds, previous, tolerance.device, tolerance.method))
            if tolerance.policy != "widen":
                break
            pending = [b for b in pending if tolerance.can_grow(plan, b, solutions[b])]
            for b in pending:
                plan.widen([b], tolerance.growth(plan, b))
            if pending:
                lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
                previous = {b: solutions[b] for b in pending}
    return solutions


def _solve_with_feedback(layer, plan: LayerPlan, blocks: LayerBlocks, seed: int, tolerance: Tolerance,
                         seconds: Dict[str, float], feedback: LayerFeedback):
    """The problems one feedback step at a time (:mod:`._feedback`): solve the step's rows toward their moved
    goals (widening the field while the policy does), then fold their residuals into the later goals. With
    ``prune_silent`` the rows of a silent feature stay empty (residual ``−goal``). Returns every field's solution
    and, per half, the flat weight positions left empty that way."""
    halves, numel = _halves(layer), layer.alpha.numel()
    flat = torch.arange(numel).view(layer.alpha.shape)
    solutions: Dict[int, FieldSolution] = {}
    silent = {half: torch.zeros(numel, dtype=torch.bool) for half, _ in halves}
    lift, mix = blocks.tensors(plan.layout(blocks.n_fields))  # laid out again only when a field is widened
    columns_of: Dict[int, torch.Tensor] = {}  # flat positions of each field's columns (widening keeps them)
    for step, (b, positions) in enumerate(feedback.steps):
        if b not in columns_of:
            columns_of[b] = field_targets([b], mix, blocks.mix_blocks, flat)[0]
        columns = columns_of[b]
        rows = {half: torch.isin(columns, positions)[None] for half, _ in halves}
        quiet = {half: rows[half][0] & bool(tolerance.prune_silent and feedback.silent[step, h])
                 for h, (half, _) in enumerate(halves)}
        rows = {half: rows[half] & ~quiet[half][None] for half, _ in halves}
        previous = {b: solutions[b]} if b in solutions else None
        while True:
            goals = {half: goal[columns][None] for (half, _), goal in zip(halves, feedback.half_goals(len(halves)))}
            solutions.update(solve_fields([b], lift, mix, goals, halves, seed, plan.path, tolerance.tol,
                                          tolerance.fewest, seconds, previous, tolerance.device, tolerance.method,
                                          rows=rows))
            rows = {half: rows[half] & (solutions[b].residual[half].abs() > tolerance.tol)[None] for half, _ in halves}
            if tolerance.policy != "widen" or not any(r.any() for r in rows.values()) or \
                    not tolerance.can_grow(plan, b, solutions[b]):
                break
            plan.widen([b], tolerance.growth(plan, b))
            lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
            previous = {b: solutions[b]}
        residual = torch.zeros(len(halves) * numel, dtype=torch.float64)
        for h, ((half, _), goal) in enumerate(zip(halves, feedback.half_goals(len(halves)))):
            solutions[b].residual[half][quiet[half]] = -goal[columns[quiet[half]]]  # nothing kept
            silent[half][columns[quiet[half]]] = True
            residual[h * numel + columns] = solutions[b].residual[half]
        feedback.propagate(step, residual)
    return solutions, silent


def _solve_bias(layer, plan: LayerPlan, seed: int, tolerance: Tolerance):
    if not plan.bias_pool:
        return None, None
    beta = layer.beta.double() / plan.gain
    while True:
        mask, residual = solve_bias(beta, plan.bias_pool, seed, plan.path, tolerance.tol, tolerance.fewest,
                                    tolerance.device, tolerance.method)
        over = bool((residual.abs() > tolerance.tol).any())
        growth = tolerance.bias_growth(plan.bias_pool)
        if tolerance.policy != "widen" or not over or growth <= 0 or plan.bias_pool + growth > tolerance.max_n:
            return mask, residual
        plan.bias_pool += growth


def solve_within_tolerance(layer, plan: LayerPlan, seed: int, tolerance: Tolerance, seconds: Dict[str, float],
                           blocks: Optional[LayerBlocks] = None, traced=None,
                           cache: Optional[FeedbackCache] = None) -> LayerSolution:
    """Solve one layer's problems and apply the policy (see the module docstring); ``plan`` records the widths
    the policy chose. With ``traced`` (the layer's traced call, a :class:`~equislt.construct._trace.Unit`) the
    problems are solved with error feedback on its inputs (:mod:`._feedback`; its order and factors from
    ``cache`` when it holds them for this layer). A layer whose coefficients are all
    zero (``plan.gain == 0``) keeps nothing. Times go to ``seconds`` (``draw``, ``solve``, ``feedback``)."""
    blocks = LayerBlocks.of(layer.module, layer.family) if blocks is None else blocks
    halves = _halves(layer)
    if plan.gain == 0:  # nothing to approximate: no problem, nothing kept
        lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
        solution = layer_solution({}, lift, mix, blocks.mix_blocks, layer.alpha, halves)
        solution.n_problems = 0
        return solution
    feedback, silent = None, {}
    if traced is None:
        solutions = _solve_weights(layer, plan, blocks, seed, tolerance, seconds)
    else:
        with timed(seconds, "feedback"):
            alpha = layer.alpha.double() / plan.gain
            feedback = (cache.feedback if cache is not None else LayerFeedback.of)(layer, traced, blocks, halves, alpha)
        solutions, silent = _solve_with_feedback(layer, plan, blocks, seed, tolerance, seconds, feedback)
    with timed(seconds, "solve"):
        bias_mask, bias_residual = _solve_bias(layer, plan, seed, tolerance)
    lift, mix = blocks.tensors(plan.layout(blocks.n_fields))
    solution = layer_solution(solutions, lift, mix, blocks.mix_blocks, layer.alpha, halves, bias_mask, bias_residual)
    if feedback is not None:  # residuals against the target itself; the problems' own goals moved
        alpha = layer.alpha.double() / plan.gain
        for (half, sign), goal in zip(halves, feedback.half_goals(len(halves))):
            solution.goal_shift[half] = goal.view(alpha.shape) - sign * alpha
        solution.weight_residual_pos += solution.goal_shift["pos"]
        if "neg" in solution.goal_shift:
            solution.weight_residual_neg += solution.goal_shift["neg"]
        solution.silent = {half: mask.view(alpha.shape) for half, mask in silent.items() if mask.any()}
    over = solution.rows_over(tolerance.tol)
    if over and tolerance.policy == "raise":
        raise ValueError(f"construct: {over} Subset-Sum rows of {plan.path} exceed tol={tolerance.tol} "
                         f"with N={plan.n}")
    return solution
