"""The coefficient view of an equivariant linear layer.

Every supported layer is a sum ``W = Σ_{a,b,k} θ[a,b,k] · (E_ab ⊗ B_k)`` over output fields ``a``,
input fields ``b`` and the elements ``B_k`` of a fixed basis of ``Hom_G(ρ_in, ρ_out)``. A :class:`Block`
groups the coefficients of one pair of field types: ``θ`` shaped ``[out_fields, in_fields, n_basis]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Tuple

import torch

__all__ = ["Block"]


@dataclass(frozen=True, eq=False)
class Block:
    """Coefficients of one (output field type, input field type) pair of a layer.

    Attributes
    ----------
    tensor : name of the coefficient tensor on the layer (``"weights"``, ``"bias"``, ``"weight"``).
    index : long tensor ``[out_fields, in_fields, n_basis]`` of positions in ``layer.<tensor>.flatten()``.
    basis : ``[n_basis, out_dim, in_dim, *kernel]``: ``B_k`` as dense arrays (for bias blocks ``in_dim = 1``:
        the input is the constant field ``1``).
    out_fields, in_fields : positions of the fields in the layer's output / input type (``in_fields == ()``
        for bias blocks).
    out_repr, in_repr : names of the field types (``"constant"`` for the input of a bias block).
    """

    tensor: str
    index: torch.Tensor
    basis: torch.Tensor
    out_fields: Tuple[int, ...]
    in_fields: Tuple[int, ...]
    out_repr: str
    in_repr: str

    @cached_property
    def _start(self) -> int:
        """First flat position if the block is one contiguous range in layout order, else -1 (checked once)."""
        flat = self.index.reshape(-1)
        start = int(flat[0]) if flat.numel() else 0
        contiguous = bool(torch.equal(flat, torch.arange(start, start + flat.numel())))
        return start if contiguous else -1

    @property
    def shape(self) -> torch.Size:
        """``(out_fields, in_fields, n_basis)``."""
        return self.index.shape

    @property
    def n_basis(self) -> int:
        return self.index.shape[-1]

    @property
    def numel(self) -> int:
        return self.index.numel()

    @property
    def is_bias(self) -> bool:
        return self.in_repr == "constant"

    @property
    def name(self) -> str:
        return f"{self.tensor}[{self.in_repr}->{self.out_repr}]"

    def take(self, tensor: torch.Tensor) -> torch.Tensor:
        """This block of ``tensor`` (any tensor shaped like the coefficient tensor, e.g. a mask).

        A view when the block is contiguous (always for escnn weights and torch layers), else a copy.
        """
        flat = tensor.reshape(-1)
        if self._start >= 0:
            return flat[self._start : self._start + self.numel].view(self.shape)
        return flat[self.index]

    def put(self, tensor: torch.Tensor, values: torch.Tensor) -> None:
        """Write ``values`` (shaped like the block) into this block of ``tensor``, in place."""
        with torch.no_grad():
            tensor.view(-1)[self.index.reshape(-1)] = values.reshape(-1).to(tensor.dtype)

    def __repr__(self) -> str:
        o, i, k = self.shape
        return f"Block({self.name}, out_fields={o}, in_fields={i}, n_basis={k})"
