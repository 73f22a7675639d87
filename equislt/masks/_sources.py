"""Mask sources: where a masked layer's 0/1 coefficient masks come from.

A masked layer reads every coefficient tensor ``θ`` through ``layer.mask.apply(name, θ) = θ ⊙ m``. The mask
lives in coefficient space, so ``W(θ ⊙ m)`` stays in ``Hom_G``: masking never breaks equivariance.
"""
from __future__ import annotations

from typing import Mapping, Tuple

import torch
from torch import nn

from ._topk import n_keep, straight_through_topk, topk_mask

__all__ = ["CoefficientMask", "Supermask"]


def _version_key(tensors) -> Tuple:
    return tuple((t.data_ptr(), t._version) for t in tensors if t is not None)


class CoefficientMask(nn.Module):
    """Fixed 0/1 masks, one bool buffer per coefficient tensor (``mask.<name>``; all ones at start)."""

    def __init__(self, shapes: Mapping[str, torch.Size]):
        super().__init__()
        self.names = tuple(shapes)
        for name, shape in shapes.items():
            self.register_buffer(name, torch.ones(shape, dtype=torch.bool))

    def mask(self, name: str) -> torch.Tensor:
        """The bool mask of coefficient tensor ``name``."""
        return getattr(self, name)

    def apply(self, name: str, coefficients: torch.Tensor) -> torch.Tensor:
        return coefficients * self.mask(name).to(coefficients.dtype)

    def set(self, name: str, mask: torch.Tensor) -> None:
        """Replace the mask of ``name`` (copied in place: the layer sees it at once, also in eval mode)."""
        current = self.mask(name)
        mask = torch.as_tensor(mask)
        if mask.shape != current.shape:
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, expected {tuple(current.shape)}")
        with torch.no_grad():
            current.copy_(mask.to(torch.bool))

    def state_key(self) -> Tuple:
        """Changes whenever a mask changes (used to invalidate cached expanded filters)."""
        return _version_key(self.mask(n) for n in self.names)

    def extra_repr(self) -> str:
        kept = {n: f"{int(self.mask(n).sum())}/{self.mask(n).numel()}" for n in self.names}
        return ", ".join(f"{n}: kept {v}" for n, v in kept.items())


class Supermask(nn.Module):
    """Edge-popup supermask: one learnable score per coefficient, mask = top-k of ``|score|``.

    Scores ``mask.<name>_scores`` start as ``U(-s, s)`` with ``s`` each coefficient's init std (escnn's init
    scale varies inside a layer). ``sparsity`` is the fraction **pruned**. The number kept per tensor,
    ``mask.<name>_keep``, is ``n_keep(numel, sparsity)`` (per-layer top-k) or set by a global budget
    (:class:`~equislt.nn.GlobalTopK`). The mask's gradient passes straight through to the scores.
    """

    def __init__(self, init_std: Mapping[str, torch.Tensor], sparsity: float, generator: torch.Generator = None):
        super().__init__()
        self.names = tuple(init_std)
        self.sparsity = float(sparsity)
        for name, std in init_std.items():
            scores = (torch.rand(std.shape, generator=generator, dtype=std.dtype) * 2 - 1) * std
            self.register_parameter(f"{name}_scores", nn.Parameter(scores))
            self.register_buffer(f"{name}_keep", torch.tensor(n_keep(std.numel(), sparsity)))

    def scores(self, name: str) -> torch.Tensor:
        return getattr(self, f"{name}_scores")

    def keep(self, name: str) -> int:
        return int(getattr(self, f"{name}_keep"))

    def set_keep(self, name: str, k: int) -> None:
        buffer = getattr(self, f"{name}_keep")
        if int(buffer) != k:
            buffer.fill_(k)

    def mask(self, name: str) -> torch.Tensor:
        return topk_mask(self.scores(name), self.keep(name))

    def apply(self, name: str, coefficients: torch.Tensor) -> torch.Tensor:
        # through |score|: autograd carries the sign, so a useful coefficient's |score| grows whatever its sign
        return coefficients * straight_through_topk(self.scores(name).abs(), self.keep(name))

    def state_key(self) -> Tuple:
        return _version_key(t for n in self.names for t in (self.scores(n), getattr(self, f"{n}_keep")))

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: kept {self.keep(n)}/{self.scores(n).numel()}" for n in self.names)
