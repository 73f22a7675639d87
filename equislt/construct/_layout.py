r"""Where the hidden copies of a lift–mix block are: the plan of one replaced layer, its hidden layout, and the
layout of the block's lift and mix coefficient tensors, known without building them.

A target layer with input fields ``b = 0 .. F-1`` is replaced by a block whose hidden fields are copies of
the input fields, ordered "all ``w_0`` copies of field 0, then the ``w_1`` copies of field 1, ...":
``w_b = 2N`` (``copies``) plus the extra copies the tolerance policy gave field ``b``. Hidden field
``offset_b + t`` is copy ``t`` of field ``b``.

The lift's and the mix's coefficient tensors (:class:`WideTensor`) are lists of contiguous blocks, one per pair
of field types, at ``start + (o · n_in + i) · K + k`` (escnn's layout, which equislt's own layers and plain
torch layers share). Their blocks follow from a small layer with one field per input field (the target layer
itself for the mix, a lift onto one copy of each field for the lift) by giving each field its copies, so the
construction draws, solves and masks the wide network's coefficients without ever building it. Everything reads
this layout: the draws (which stream fills which coefficient), the pools (which lift coefficient is the identity
of each copy), the masks and the compact form (which mix coefficients multiply ``σ(x_b)``).

Names: ``N`` is the number of summands per Subset-Sum pool (``construct(n=N)``); a field has ``copies = 2N``
hidden copies before widening, about ``N`` with a positive identity coefficient and ``N`` negative.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..subsetsum import MAX_N

__all__ = ["BlockSpec", "HiddenLayout", "LayerPlan", "WideTensor"]


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

    def pool_cap(self, b: int) -> int:
        """The largest pool of field ``b``: ``min(MAX_N, w_b // 2 + 4)`` (the exact solver's limit)."""
        return min(MAX_N, int(self.widths[b]) // 2 + 4)


@dataclass(frozen=True)
class BlockSpec:
    """One block of a coefficient tensor: ``[n_out, n_in, n_basis]`` coefficients at
    ``start + (o · n_in + i) · n_basis + k``, between the fields ``out_fields`` and ``in_fields`` (positions in
    the layer's output and input types) of types ``out_repr`` and ``in_repr``; ``identity`` is the basis position
    of the identity map in a square block of a lift (``None`` elsewhere)."""

    start: int
    n_out: int
    n_in: int
    n_basis: int
    out_repr: str
    in_repr: str
    identity: Optional[int] = None

    @property
    def numel(self) -> int:
        return self.n_out * self.n_in * self.n_basis

    @classmethod
    def of(cls, block, identity: Optional[int] = None) -> "BlockSpec":
        """The spec of a :class:`~equislt.basis.Block` whose index is one contiguous range in layout order."""
        n_out, n_in, n_basis = block.shape
        start = int(block.index.reshape(-1)[0]) if block.numel else 0
        if block.numel and not torch.equal(block.index.reshape(-1), torch.arange(start, start + block.numel)):
            raise ValueError(f"construct: block {block.name} is not one contiguous range of its coefficient tensor "
                             "in (out, in, basis) order")
        return cls(start, n_out, n_in, n_basis, block.out_repr, block.in_repr, identity)


@dataclass(frozen=True)
class _FieldPart:
    """Where the copies of one input field sit in one block of a :class:`WideTensor`: ``block``, the occurrence
    ``base`` of its first copy among the block's hidden fields, and the block's first column ``column`` in the
    field's ``[w_b, C_b]`` coefficient matrix."""

    block: int
    base: int
    column: int


class WideTensor:
    """The weight tensor ``name`` of a block's lift (hidden copies on its output side, ``side="out"``) or mix
    (hidden copies on its input side, ``side="in"``), as :class:`BlockSpec` s in layout order.

    ``source`` lists, per block, the small layer's block it was made from (the target layer's own blocks for the
    mix). Per input field ``b``, its coefficients form a ``[w_b, C_b]`` matrix: row ``t`` for copy ``t``, columns
    over the blocks holding its copies (in layout order), then the non-hidden side's fields and the basis."""

    def __init__(self, name: str, side: str, blocks: Sequence[BlockSpec], layout: HiddenLayout,
                 hidden_fields: Sequence[Sequence[int]], other_fields: Sequence[Sequence[int]], source: Sequence[int],
                 shape: Tuple[int, ...]):
        if side not in ("out", "in"):
            raise ValueError(f"WideTensor: side must be 'out' or 'in', got {side!r}")
        self.name, self.side, self.layout, self.shape = name, side, layout, tuple(shape)
        self.blocks, self.source = tuple(blocks), tuple(source)
        self.hidden_fields = tuple(tuple(f) for f in hidden_fields)
        self.other_fields = tuple(tuple(f) for f in other_fields)
        self.numel = sum(b.numel for b in self.blocks)
        self.parts: Dict[int, List[_FieldPart]] = {b: [] for b in range(layout.n_fields)}
        self.columns: Dict[int, int] = {b: 0 for b in range(layout.n_fields)}
        for index, (spec, fields) in enumerate(zip(self.blocks, hidden_fields)):
            base = 0
            for f in fields:  # input fields whose copies are this block's hidden side, in order
                self.parts[f].append(_FieldPart(index, base, self.columns[f]))
                self.columns[f] += (spec.n_in if side == "out" else spec.n_out) * spec.n_basis
                base += int(layout.widths[f])
            hidden = spec.n_out if side == "out" else spec.n_in
            if base != hidden:
                raise ValueError(f"WideTensor {name}: a block holds {hidden} hidden fields, its fields' copies {base}")

    @classmethod
    def scaled(cls, name: str, side: str, small_blocks, small_shape, layout: HiddenLayout,
               identities=None) -> "WideTensor":
        """The wide tensor of a layer whose hidden side has ``layout.widths[b]`` copies of field ``b``, from the
        weight blocks (and the tensor shape) of a small layer of the same kind whose hidden side has one field
        per input field."""
        identities = identities or [None] * len(small_blocks)
        order = sorted(range(len(small_blocks)), key=lambda j: int(small_blocks[j].index.reshape(-1)[0]))
        specs, hidden, other, start = [], [], [], 0
        for j in order:
            small = BlockSpec.of(small_blocks[j], identities[j])
            fields, others = small_blocks[j].out_fields, small_blocks[j].in_fields
            if side == "in":
                fields, others = others, fields
            copies = sum(int(layout.widths[f]) for f in fields)
            n_out, n_in = (copies, small.n_in) if side == "out" else (small.n_out, copies)
            specs.append(BlockSpec(start, n_out, n_in, small.n_basis, small.out_repr, small.in_repr, small.identity))
            hidden.append(tuple(fields))
            other.append(tuple(others))
            start += specs[-1].numel
        shape = [start] if len(small_shape) == 1 else list(small_shape)
        if len(small_shape) > 1:  # channel-shaped tensors (torch, IGN): the hidden channels are the copies
            shape[0 if side == "out" else 1] = layout.total
        if math.prod(shape) != start:
            raise ValueError(f"construct: the wide {name} of shape {shape} does not hold its {start} coefficients")
        return cls(name, side, specs, layout, hidden, other, order, tuple(shape))

    def identity(self, b: int) -> Tuple[int, torch.Tensor]:
        """For a lift: ``(column, positions)``: the column of field ``b``'s identity coefficient in its
        ``[w_b, C_b]`` matrix, and the flat positions ``[w_b]`` of the identity coefficient of each copy."""
        for part in self.parts[b]:
            spec = self.blocks[part.block]
            if spec.identity is not None:
                i = self.other_fields[part.block].index(b)
                t = torch.arange(int(self.layout.widths[b]))
                positions = spec.start + ((part.base + t) * spec.n_in + i) * spec.n_basis + spec.identity
                return part.column + i * spec.n_basis + spec.identity, positions
        raise ValueError(f"construct: input field {b} has no identity coefficient in the lift")

    def field_positions(self, b: int) -> torch.Tensor:
        """``[w_b, C_b]``: the flat positions of field ``b``'s coefficients (row ``t``: copy ``t``)."""
        w = int(self.layout.widths[b])
        rows = []
        for part in self.parts[b]:
            spec = self.blocks[part.block]
            t = torch.arange(w)[:, None, None]
            if self.side == "out":  # hidden copies are the outputs: o = base + t, columns (i, k)
                i = torch.arange(spec.n_in)[None, :, None]
                position = ((part.base + t) * spec.n_in + i) * spec.n_basis
            else:  # hidden copies are the inputs: i = base + t, columns (o, k)
                o = torch.arange(spec.n_out)[None, :, None]
                position = (o * spec.n_in + part.base + t) * spec.n_basis
            k = torch.arange(spec.n_basis)[None, None, :]
            rows.append((spec.start + position + k).reshape(w, -1))
        return torch.cat(rows, dim=1) if rows else torch.zeros(w, 0, dtype=torch.long)


def _identity_element(block) -> Optional[int]:
    """Basis position of the identity map in a square block of a lift (``None`` if it has none)."""
    if block.is_bias or block.in_repr != block.out_repr:
        return None
    k0 = getattr(block, "identity_index", None)  # blocks that know it (IGN: the basis is partition labels)
    if k0 is None:
        d = block.basis.shape[1]
        eye = torch.eye(d, dtype=block.basis.dtype)
        flat = block.basis.reshape(block.n_basis, d, d, -1)
        centre = flat.shape[-1] // 2
        k0 = next((k for k in range(block.n_basis) if flat.shape[-1] == 1 and torch.equal(flat[k, ..., centre], eye)),
                  None)
    return k0


def lift_identities(small_blocks) -> List[Optional[int]]:
    """The identity element of every block of a lift (``None`` for non-square blocks); every square block must
    have one."""
    identities = [_identity_element(block) for block in small_blocks]
    for block, k0 in zip(small_blocks, identities):
        if block.in_repr == block.out_repr and k0 is None:
            raise ValueError(f"construct: the lift basis for {block.in_repr} has no identity element")
    return identities
