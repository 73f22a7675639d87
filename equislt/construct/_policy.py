"""What the construction does when Subset-Sum rows exceed the tolerance: ``"widen"``, ``"report"`` or ``"raise"``.

``widen`` gives each input field that owns a row over ``tol`` 4 more hidden copies (about 2 more summands per
pool) while that row's pool has fewer than ``max_n`` summands (at most ``4·max_n`` copies per field, so it
terminates); bias rows widen the bias pool by 2, up to ``max_n``. The draws are prefix-stable per field
(:mod:`._draw`), so only this layer's block is drawn again and only the widened fields' rows are solved again.
``report`` keeps the rows over ``tol`` and counts them in the certificate; ``raise`` fails naming the layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from torch import nn

from ..nn import replace_module
from ._build import random_block
from ._certificate import timed
from ._layout import LayerPlan
from ._solve import LayerSolution, solve_layer

__all__ = ["POLICIES", "Tolerance", "solve_within_tolerance"]

POLICIES = ("widen", "report", "raise")
WIDEN_COPIES = 4  # hidden copies added to a field per widening round
WIDEN_BIAS_POOL = 2  # bias pool entries added per round


@dataclass(frozen=True)
class Tolerance:
    """The per-coefficient tolerance ``tol`` (normalised units), the policy for rows over it, the largest pool
    ``max_n`` a widening may reach, and ``fewest`` (keep the fewest coefficients within ``tol``)."""

    tol: float
    policy: str = "widen"
    max_n: int = 26
    fewest: bool = False

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"construct: policy must be 'widen', 'report' or 'raise', got {self.policy!r}")
        if not 0 < self.tol < 1:
            raise ValueError(f"construct: tol must be in (0, 1), got {self.tol}")


def _fields_to_widen(layer, plan: LayerPlan, solution: LayerSolution, tolerance: Tolerance) -> List[int]:
    """Input fields owning a weight row over ``tol`` whose pool can still grow."""
    over = solution.fields_over(layer, tolerance.tol)
    return sorted({b for half, owners in over.items() for b in owners.tolist()
                   if int(solution.pool_counts[half][b]) < tolerance.max_n
                   and plan.copies_of(b) // 2 + 2 <= 2 * tolerance.max_n})


def solve_within_tolerance(network: nn.Module, layer, plan: LayerPlan, seed: int, tolerance: Tolerance,
                           seconds: Dict[str, float]) -> Tuple[nn.Module, LayerSolution]:
    """Solve one layer's block in ``network`` and apply the policy (see the module docstring); returns the
    network (its block replaced where widened) and the final solution. Times go to ``seconds``."""
    with timed(seconds, "solve"):
        solution = solve_layer(layer, network.get_submodule(plan.path), tolerance.tol, tolerance.fewest)
    while tolerance.policy == "widen" and solution.rows_over(tolerance.tol):
        grow = _fields_to_widen(layer, plan, solution, tolerance)
        grow_bias = (solution.bias_rows_over(tolerance.tol) > 0 and 0 < plan.bias_pool
                     and plan.bias_pool + WIDEN_BIAS_POOL <= tolerance.max_n)
        if not grow and not grow_bias:
            break
        plan.widen(grow, WIDEN_COPIES)
        if grow_bias:
            plan.bias_pool += WIDEN_BIAS_POOL
        with timed(seconds, "build"):
            network = replace_module(network, plan.path, random_block(layer.module, plan, seed).eval())
        with timed(seconds, "solve"):
            solution = solve_layer(layer, network.get_submodule(plan.path), tolerance.tol, tolerance.fewest,
                                   previous=solution, fields=grow)
    over = solution.rows_over(tolerance.tol)
    if over and tolerance.policy == "raise":
        raise ValueError(f"construct: {over} Subset-Sum rows of {plan.path} exceed tol={tolerance.tol} "
                         f"with N={plan.n}")
    return network, solution
