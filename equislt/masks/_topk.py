"""Top-k masks with a straight-through gradient (edge-popup, Ramanujan et al. 2020) and global budgets."""
from __future__ import annotations

from typing import List, Sequence

import torch

__all__ = ["n_keep", "topk_mask", "straight_through_topk", "global_allocation"]


def n_keep(numel: int, sparsity: float) -> int:
    """Number of coefficients kept when a fraction ``sparsity`` is pruned: ``numel - round(sparsity·numel)``."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be the fraction pruned, in [0, 1]; got {sparsity}")
    return numel - int(round(sparsity * numel))


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (shape of ``scores``) keeping exactly the ``k`` entries of largest ``|score|``."""
    flat = scores.detach().abs().reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view(scores.shape)


class _StraightThroughTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int) -> torch.Tensor:
        return topk_mask(scores, k).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 float mask of the top-``k`` ``|scores|``; its gradient passes straight through to ``scores``."""
    return _StraightThroughTopK.apply(scores, k)


def global_allocation(scores: Sequence[torch.Tensor], sparsity: float) -> List[int]:
    """Split one global budget ``n_keep(total, sparsity)`` across score tensors by global ``|score|`` rank.

    Returns the number kept in each tensor; they add up to exactly the global budget.
    """
    sizes = [s.numel() for s in scores]
    total = sum(sizes)
    keep = n_keep(total, sparsity)
    if total == 0:
        return [0 for _ in sizes]
    flat = torch.cat([s.detach().abs().reshape(-1) for s in scores])
    owner = torch.repeat_interleave(torch.arange(len(sizes), device=flat.device),
                                    torch.tensor(sizes, device=flat.device))
    chosen = torch.topk(flat, keep, sorted=False).indices if keep > 0 else flat.new_zeros(0, dtype=torch.long)
    return torch.bincount(owner[chosen], minlength=len(sizes)).tolist()
