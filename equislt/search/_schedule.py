"""Sparsity schedule: ramp the pruned fraction up to its target (prevents layer collapse at high sparsity)."""
from __future__ import annotations

__all__ = ["scheduled_sparsity"]


def scheduled_sparsity(step: int, total_steps: int, target: float, ramp: float = 0.0, start: float = 0.0,
                       shape: str = "linear") -> float:
    """Sparsity (fraction pruned) to use at ``step`` (0-based) of ``total_steps``.

    Rises from ``start`` at step 0 to ``target`` at step ``ceil(ramp * total_steps) - 1`` and stays there;
    ``ramp = 0`` means ``target`` from the first step. ``shape="cubic"`` is Zhu & Gupta's (2017)
    ``target + (start - target)(1 - t)^3``: prunes fast early, slowly near the target.
    """
    ramp_steps = int(round(ramp * total_steps))
    if ramp_steps <= 1 or step >= ramp_steps - 1:
        return float(target)
    t = max(step, 0) / (ramp_steps - 1)
    if shape == "linear":
        return float(start + (target - start) * t)
    if shape == "cubic":
        return float(target + (start - target) * (1.0 - t) ** 3)
    raise ValueError(f"scheduled_sparsity: shape must be 'linear' or 'cubic', got {shape!r}")
