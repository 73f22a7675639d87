r"""Where the hidden copies of a lift–mix block are: the plan of one replaced layer and its hidden layout.

A target layer with input fields ``b = 0 .. F-1`` is replaced by a block whose hidden fields are copies of
the input fields, ordered "all ``w_0`` copies of field 0, then the ``w_1`` copies of field 1, ...":
``w_b = 2N`` (``copies``) plus the extra copies the tolerance policy gave field ``b``. Hidden field
``offset_b + t`` is copy ``t`` of field ``b``. Everything else reads this layout: the draws (which stream fills
which coefficient), the pools (which lift coefficient is the identity of each copy) and the compiled form
(which mix coefficients multiply ``σ(x_b)``).

Names: ``N`` is the number of summands per Subset-Sum pool (``construct(n=N)``); a field has ``copies = 2N``
hidden copies before widening, about ``N`` with a positive identity coefficient and ``N`` negative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..subsetsum import MAX_N

__all__ = ["HiddenLayout", "LayerPlan"]


@dataclass
class LayerPlan:
    """How one target layer is replaced: ``copies`` (= 2N) hidden copies of each input field plus ``extra[b]``
    more copies of the fields ``b`` the tolerance policy widened (only those are stored), a bias pool of
    ``bias_pool`` random values per bias coefficient (0: no bias), the fixed ``gain`` (target scale) and the
    batch norm folded into the layer (replaced by an identity)."""

    path: str
    copies: int
    bias_pool: int
    gain: float
    folded_norm: Optional[str] = None
    extra: Dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        # keys may come back as strings from JSON; keep them sorted for a canonical saved form
        self.extra = {int(b): int(w) for b, w in sorted(self.extra.items(), key=lambda kv: int(kv[0])) if int(w)}

    @property
    def n(self) -> int:
        """``N``: summands per pool before widening."""
        return self.copies // 2

    def copies_of(self, b: int) -> int:
        """Hidden copies of input field ``b``."""
        return self.copies + self.extra.get(int(b), 0)

    def layout(self, n_fields: int) -> "HiddenLayout":
        """The hidden layout of a layer with ``n_fields`` input fields."""
        if self.extra and max(self.extra) >= n_fields:
            raise ValueError(f"LayerPlan {self.path}: widened field {max(self.extra)} but the layer has "
                             f"{n_fields} input fields")
        return HiddenLayout(tuple(self.copies_of(b) for b in range(n_fields)))

    def widen(self, fields: Sequence[int], copies: int) -> None:
        """Add ``copies`` hidden copies to each input field in ``fields``."""
        for b in fields:
            self.extra[int(b)] = self.extra.get(int(b), 0) + int(copies)
        self.extra = dict(sorted(self.extra.items()))

    @property
    def copies_added(self) -> int:
        """Extra hidden copies over all fields."""
        return sum(self.extra.values())

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LayerPlan":
        data = dict(data)
        if "width" in data:  # equislt.ticket/2 called the copies "width"
            data["copies"] = data.pop("width")
        return cls(**data)


def occurrence(fields: Sequence[int], size: int) -> torch.Tensor:
    """``[size]``: the position of each index in ``fields`` (``-1`` where absent)."""
    occ = torch.full((size,), -1, dtype=torch.long)
    occ[torch.as_tensor(fields, dtype=torch.long)] = torch.arange(len(fields))
    return occ


@dataclass(frozen=True)
class HiddenLayout:
    """The hidden fields of one block: ``widths[b]`` copies of input field ``b`` (see the module docstring)."""

    widths: Tuple[int, ...]

    @property
    def n_fields(self) -> int:
        return len(self.widths)

    @property
    def longest(self) -> int:
        return max(self.widths)

    @cached_property
    def offsets(self) -> torch.Tensor:
        """``[F + 1]``: first hidden field of each input field, then the total."""
        return torch.cumsum(torch.tensor((0,) + tuple(int(w) for w in self.widths)), dim=0)

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    def copies(self, fields: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, padding)``, both ``[len(fields), longest]`` (default: every field): the hidden field of copy
        ``t`` of each field, and where ``t ≥ w_b`` (there ``hidden`` repeats copy 0)."""
        fields = torch.arange(self.n_fields) if fields is None else torch.as_tensor(fields, dtype=torch.long)
        w = torch.tensor([int(x) for x in self.widths])[fields]
        t = torch.arange(self.longest)
        padding = t[None, :] >= w[:, None]
        return self.offsets[fields][:, None] + torch.where(padding, 0, t[None, :]), padding

    def pool_caps(self) -> torch.Tensor:
        """``[F]``: the largest pool of each field, ``min(MAX_N, w_b // 2 + 4)`` (exact solver limit)."""
        return torch.tensor([min(MAX_N, int(w) // 2 + 4) for w in self.widths])

    def field_positions(self, tensor_blocks, side: str) -> List[torch.Tensor]:
        """Per input field ``b``, the ``[w_b, C_b]`` flat positions of the coefficients of its hidden copies in
        the tensor of ``tensor_blocks`` (the weight blocks of one coefficient tensor): the hidden fields are the
        layer's outputs (``side="out"``, the lift) or inputs (``"in"``, the mix); row ``t`` is copy ``t``,
        columns follow :func:`equislt.blocks` order (block, other field, basis)."""
        occs = [occurrence(b.out_fields if side == "out" else b.in_fields, self.total) for b in tensor_blocks]
        out = []
        for f, w in enumerate(self.widths):
            hidden = torch.arange(int(self.offsets[f]), int(self.offsets[f + 1]))
            parts = []
            for blk, occ in zip(tensor_blocks, occs):
                o = occ[hidden]
                if w == 0 or o[0] < 0:
                    continue
                assert bool((o >= 0).all()), "construct: copies of one input field must share a field type"
                # index_select: advanced indexing of a large index tensor costs O(numel) per call
                part = blk.index.index_select(0, o) if side == "out" else blk.index.index_select(1, o).transpose(0, 1)
                parts.append(part.reshape(w, -1))
            out.append(torch.cat(parts, dim=1) if parts else torch.zeros(w, 0, dtype=torch.long))
        return out

    def identity_indices(self, lift_blocks) -> torch.Tensor:
        """``[F, longest]`` positions (in the lift's flat weights) of the identity coefficient from input field
        ``b`` to its copy ``t`` (``-1`` for ``t ≥ w_b``)."""
        hidden, padding = self.copies()
        out = torch.full((self.n_fields, self.longest), -1, dtype=torch.long)
        for block in lift_blocks:
            if block.is_bias or block.in_repr != block.out_repr:
                continue
            k0 = _identity_element(block)
            fields = torch.tensor(block.in_fields, dtype=torch.long)
            rows = occurrence(block.out_fields, self.total)[hidden[fields]]  # [i, W]
            assert bool((rows >= 0).all()), "construct: hidden copies must have their input field's type"
            # one gather on the flat index (advanced indexing of a large index tensor costs O(numel) per call)
            n_out, n_in, n_basis = block.shape
            position = (rows * n_in + torch.arange(len(fields))[:, None]) * n_basis + k0
            out[fields] = torch.where(padding[fields], -1, block.index.reshape(-1)[position])
        if any((out[b, :w] < 0).any() for b, w in enumerate(self.widths)):
            raise ValueError("construct: some input fields have no identity coefficient in the lift")
        return out

    def mix_occurrence(self, mix_block, fields) -> torch.Tensor:
        """``[len(fields), longest]``: position, among the in-fields of ``mix_block``, of copy ``t`` of each input
        field (copy 0 in the padding ``t ≥ w_b``)."""
        hidden, _ = self.copies(fields)
        occ = occurrence(mix_block.in_fields, self.total)[hidden]
        if (occ < 0).any():
            raise ValueError("construct: the mix has no block for some hidden copies")
        return occ


def _identity_element(block) -> int:
    """Basis position of the identity map in a square weight block of the lift."""
    k0 = getattr(block, "identity_index", None)  # blocks that know it (IGN: the basis is partition labels)
    if k0 is None:
        d = block.basis.shape[1]
        eye = torch.eye(d, dtype=block.basis.dtype)
        flat = block.basis.reshape(block.n_basis, d, d, -1)
        centre = flat.shape[-1] // 2
        k0 = next((k for k in range(block.n_basis) if flat.shape[-1] == 1 and torch.equal(flat[k, ..., centre], eye)),
                  None)
    if k0 is None:
        raise ValueError(f"construct: the lift basis for {block.in_repr} has no identity element")
    return k0
