r"""Turn one target layer into Subset-Sum problems over its random block, solve them, set the masks.

Lift: hidden field ``j = offset_b + t`` (copy ``t`` of input field ``b``, :class:`~equislt.construct.HiddenLayout`)
keeps only its identity coefficient ``u_j`` from input field ``b``. Because ``σ(u x) = u σ(x)`` for ``u > 0`` and
``|u| σ(−x)`` for ``u < 0`` and ``x = σ(x) − σ(−x)``,

.. math:: \alpha_{abk} B_k x_b \approx \sum_{j \in S^+} u_j v_{ajk} B_k σ(x_b) − \sum_{j \in S^-} |u_j| v_{ajk} B_k σ(−x_b)

so for every target coefficient ``(a, b, k)`` one problem over the positive pool ``{j : u_j > 0}`` (target
``α``) and one over the negative pool (target ``−α``). When the layer's input is non-negative
(``σ(−x) = 0``), the negative pool is pruned entirely and only the positive problems are solved. Bias
coefficients are subset sums of their own pool of ``U[-1, 1]`` values.

The steps: **pools** (the identity coefficients of each sign, at most ``min(MAX_N, w_b // 2 + 4)`` per field, the
first ones of the sign) → **problems** (one row per coefficient and sign, all layers' rows in one batch) → the
batched exact solve → **scatter** (residuals and chosen copies back to the target's coefficient layout) →
**masks** of the lift, the mix and the bias. Rows are independent per input field, so after the policy widened
some fields only their rows are solved again (``previous``/``fields``): the draws are prefix-stable, the other
fields' pools and solutions are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch.nn import functional as F

from ..basis import blocks
from ..subsetsum import solve

__all__ = ["LayerSolution", "Pools", "solve_layer"]

Key = Tuple[str, str, str]  # (input field type, output field type, half)


@dataclass
class LayerSolution:
    """Residuals (``chosen sum − target``, in normalised units) of one layer's problems, and the chosen
    subsets by copy: ``chosen[(in_repr, out_repr, half)]`` ``[n_out, n_in, K, longest]`` (bool, copy ``t`` of the
    row's input field), which a partial re-solve after widening reuses."""

    weight_residual_pos: torch.Tensor  # layout of the target's weight coefficient tensor
    weight_residual_neg: torch.Tensor  # same layout; all zeros when the input is non-negative
    bias_residual: torch.Tensor
    n_problems: int
    pool_sizes: Dict[str, float] = field(default_factory=dict)
    chosen: Dict[Key, torch.Tensor] = field(default_factory=dict, repr=False)
    rows_solved: int = 0
    pool_counts: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # half -> [n_fields]

    def weight_rows_over(self, tol: float) -> int:
        return int((self.weight_residual_pos.abs() > tol).sum() + (self.weight_residual_neg.abs() > tol).sum())

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

    def fields_over(self, target, tol: float) -> Dict[str, torch.Tensor]:
        """Per half (``"pos"``, ``"neg"``), the input fields that own a weight row with ``|residual| > tol``
        (sorted, long)."""
        out = {}
        for name, residual in (("pos", self.weight_residual_pos), ("neg", self.weight_residual_neg)):
            over = residual.abs() > tol
            found = set()
            if bool(over.any()):
                for t_block in _target_blocks(target):
                    rows = t_block.take(over).reshape(t_block.shape).any(dim=2).any(dim=0)  # [i]
                    found.update(t_block.in_fields[i] for i in torch.nonzero(rows).reshape(-1).tolist())
            out[name] = torch.tensor(sorted(found), dtype=torch.long)
        return out


def _target_blocks(target) -> list:
    return [b for b in blocks(target.module) if b.tensor == target.weight_name]


@dataclass
class Pools:
    """The lift's identity coefficients ``u [F, longest]`` (float64, 0 in the padding), their positions ``index``
    in the lift's flat weights, and the pools: the copies of each field with ``u > 0`` (``pos``) and ``u < 0``
    (``neg``), capped; ``halves`` lists ``(name, pool, sign)`` of the halves that are solved."""

    index: torch.Tensor
    u: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    halves: List[Tuple[str, torch.Tensor, float]]

    @classmethod
    def of(cls, block, lift_blocks, use_negative: bool) -> "Pools":
        layout = block.layout
        index = layout.identity_indices(lift_blocks)
        coef = getattr(block.lift, _weight_name(lift_blocks)).detach().reshape(-1)
        u = torch.where(index >= 0, coef[index.clamp(min=0)].double(), torch.zeros((), dtype=torch.float64))
        caps = layout.pool_caps()
        pos, neg = _cap(u > 0, caps), _cap(u < 0, caps)
        halves = [("pos", pos, 1.0)] + ([("neg", neg, -1.0)] if use_negative else [])
        return cls(index, u, pos, neg, halves)

    def lift_mask(self, numel: int) -> torch.Tensor:
        """The lift keeps the identity coefficient of every copy in a solved pool."""
        mask = torch.zeros(numel, dtype=torch.bool)
        for _, pool, _ in self.halves:
            mask[self.index[pool]] = True
        return mask

    def sizes(self) -> Dict[str, float]:
        negative = float(self.neg.sum(1).double().mean()) if len(self.halves) > 1 else 0.0
        return {"positive_mean": float(self.pos.sum(1).double().mean()), "negative_mean": negative}


def _weight_name(layer_blocks) -> str:
    return next(b.tensor for b in layer_blocks if not b.is_bias)


def _cap(mask: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """Keep at most ``cap[b]`` hidden slots of input field ``b`` (the first ones)."""
    return mask & (torch.cumsum(mask.to(torch.int64), dim=1) <= cap[:, None])


def _left_packed(mask: torch.Tensor):
    """Per input field, the hidden slots where ``mask`` holds, left-packed: ``(index [F, L], valid [F, L])``."""
    counts = mask.sum(dim=1)
    length = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length)[None, :] < counts[:, None]
    return order, valid


@dataclass
class _Rows:
    """The problems of one (target block, half): rows ``[n_out, selected in-fields, K]`` over pools ``order``."""

    t_block: object
    half: str
    key: Key
    selected: torch.Tensor
    order: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor
    targets: torch.Tensor


def _problems(target, block, mix_blocks, pools: Pools, alpha: torch.Tensor, redo) -> List[_Rows]:
    """One :class:`_Rows` per target block and solved half (only the fields in ``redo``, or all if ``None``)."""
    layout, mix_coef = block.layout, getattr(block.mix, _weight_name(mix_blocks.values())).detach()
    out = []
    for t_block in _target_blocks(target):
        m_block = mix_blocks[(t_block.in_repr, t_block.out_repr)]
        n_out, n_in, k = t_block.shape
        in_fields = torch.tensor(t_block.in_fields)
        occ = layout.mix_occurrence(m_block, in_fields)  # [i, W]
        v_all = m_block.take(mix_coef)  # [o, hidden occurrences, K]
        a_all = t_block.take(alpha)  # [o, i, K]
        selected = torch.arange(n_in) if redo is None else torch.nonzero(redo[in_fields]).reshape(-1)
        if selected.numel() == 0:
            continue
        for half, pool, sign in pools.halves:
            order, valid = _left_packed(pool[in_fields[selected]])  # [s, L] copies t of each selected field
            slot_occ = torch.gather(occ[selected], 1, order)  # [s, L] mix in-field occurrences
            scale = torch.gather(pools.u[in_fields[selected]].abs(), 1, order)  # [s, L] |u_j|
            values = v_all[:, slot_occ, :].double().permute(0, 1, 3, 2) * scale[None, :, None, :]  # [o, s, K, L]
            n_sel, length = order.shape
            out.append(_Rows(t_block, half, (t_block.in_repr, t_block.out_repr, half), selected, order,
                             values.reshape(-1, length),
                             valid[None, :, None, :].expand(n_out, n_sel, k, length).reshape(-1, length),
                             (sign * a_all[:, selected]).reshape(-1)))
    return out


def _solve_rows(rows: List[_Rows], tol, fewest: bool):
    """All rows of a layer in one batched exact call (pools padded to the longest)."""
    width = max(r.values.shape[1] for r in rows)
    values = torch.cat([F.pad(r.values, (0, width - r.values.shape[1])) for r in rows])
    valid = torch.cat([F.pad(r.valid, (0, width - r.valid.shape[1])) for r in rows])
    return solve(values, torch.cat([r.targets for r in rows]), valid, tol=tol, fewest=fewest and tol is not None)


def _scatter(rows: List[_Rows], result, residuals: Dict[str, torch.Tensor], chosen: Dict[Key, torch.Tensor],
             longest: int) -> None:
    """Write each row's residual into the target's coefficient layout and its chosen copies into ``chosen``."""
    start = 0
    for r in rows:
        n_out, _, k = r.t_block.shape
        n_sel, length = r.order.shape
        count = n_out * n_sel * k
        part = result.chosen[start:start + count, :length].reshape(n_out, n_sel, k, length)
        current = r.t_block.take(residuals[r.half]).clone()
        current[:, r.selected] = result.residual[start:start + count].double().reshape(n_out, n_sel, k)
        r.t_block.put(residuals[r.half], current)
        start += count
        dense = torch.zeros(n_out, n_sel, k, longest, dtype=torch.bool)
        dense.scatter_(3, r.order[None, :, None, :].expand(n_out, n_sel, k, length), part)
        chosen[r.key][:, r.selected] = dense


def _mix_mask(target, block, mix_blocks, chosen: Dict[Key, torch.Tensor], halves, numel: int) -> torch.Tensor:
    """Keep mix coefficient ``index[o, occurrence of copy t of field i, k]`` for every chosen ``(o, i, k, t)``."""
    mask = torch.zeros(numel, dtype=torch.bool)
    for t_block in _target_blocks(target):
        m_block = mix_blocks[(t_block.in_repr, t_block.out_repr)]
        occ = block.layout.mix_occurrence(m_block, torch.tensor(t_block.in_fields))
        for half, _, _ in halves:
            o, i, kk, t = torch.nonzero(chosen[(t_block.in_repr, t_block.out_repr, half)], as_tuple=True)
            mask[m_block.index[o, occ[i, t], kk]] = True
    return mask


def _empty_chosen(target, halves, longest: int, previous: Optional[LayerSolution], redo) -> Dict[Key, torch.Tensor]:
    """Chosen copies per (block, half): ``previous``'s for the fields not re-solved, empty elsewhere."""
    chosen = {}
    for t_block in _target_blocks(target):
        n_out, n_in, k = t_block.shape
        for half, _, _ in halves:
            key = (t_block.in_repr, t_block.out_repr, half)
            chosen[key] = torch.zeros(n_out, n_in, k, longest, dtype=torch.bool)
            if redo is not None:
                old, keep = previous.chosen[key], ~redo[torch.tensor(t_block.in_fields)]
                chosen[key][:, keep, :, :old.shape[-1]] = old[:, keep]
    return chosen


def _solve_bias(target, block, tol, fewest: bool, gain: float) -> torch.Tensor:
    """Bias coefficients as subset sums of their own pools; sets the bias mask; the residuals."""
    if block.bias is None:
        return torch.zeros(0, dtype=torch.float64)
    pool_values = block.bias.bias.detach().double()
    result = solve(pool_values, target.beta.double() / gain, tol=tol, fewest=fewest and tol is not None)
    block.bias.mask.set("bias", result.chosen.view(pool_values.shape))
    return result.residual


def solve_layer(target, block, tol, fewest: bool = False, previous: Optional[LayerSolution] = None,
                fields: Optional[Iterable[int]] = None) -> LayerSolution:
    """Solve the problems of one layer in one batched call and write the lift/mix/bias masks of ``block``.

    With ``previous`` (the solution of this layer before some input fields were widened) only the weight
    rows of input fields in ``fields`` are solved; the others keep ``previous``'s subsets and residuals.
    The bias problems are always solved.
    """
    lift_blocks, mix_blocks_all = blocks(block.lift), blocks(block.mix)  # once each: costly for large layers
    mix_name = _weight_name(mix_blocks_all)
    mix_blocks = {(b.in_repr, b.out_repr): b for b in mix_blocks_all if b.tensor == mix_name}
    gain, layout = float(block.gain), block.layout
    pools = Pools.of(block, lift_blocks, use_negative=not target.input_nonnegative)
    lift_coef = getattr(block.lift, _weight_name(lift_blocks))
    block.lift.mask.set(_weight_name(lift_blocks), pools.lift_mask(lift_coef.numel()).view(lift_coef.shape))

    redo = None  # every field
    if previous is not None and fields is not None:
        redo = torch.zeros(layout.n_fields, dtype=torch.bool)
        redo[torch.as_tensor(sorted(set(int(f) for f in fields)), dtype=torch.long)] = True
    alpha = target.alpha.double() / gain
    residuals = {"pos": torch.zeros_like(alpha), "neg": torch.zeros_like(alpha)}
    if redo is not None:
        residuals = {"pos": previous.weight_residual_pos.clone(), "neg": previous.weight_residual_neg.clone()}
    chosen = _empty_chosen(target, pools.halves, layout.longest, previous, redo)
    rows = _problems(target, block, mix_blocks, pools, alpha, redo)
    if rows:
        _scatter(rows, _solve_rows(rows, tol, fewest), residuals, chosen, layout.longest)
    mix_coef = getattr(block.mix, mix_name)
    block.mix.mask.set(mix_name, _mix_mask(target, block, mix_blocks, chosen, pools.halves,
                                           mix_coef.numel()).view(mix_coef.shape))
    bias_residual = _solve_bias(target, block, tol, fewest, gain)
    return LayerSolution(
        weight_residual_pos=residuals["pos"], weight_residual_neg=residuals["neg"], bias_residual=bias_residual,
        n_problems=int(alpha.numel() * len(pools.halves) + bias_residual.numel()),
        pool_sizes={**pools.sizes(), "columns": int(layout.pool_caps().max())}, chosen=chosen,
        rows_solved=sum(int(r.targets.numel()) for r in rows) + int(bias_residual.numel()),
        pool_counts={name: pool.sum(1) for name, pool, _ in pools.halves})
