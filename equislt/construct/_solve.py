r"""Turn one target layer into Subset-Sum problems over its random block, solve them, set the masks.

Lift: hidden field ``j = offset_b + t`` (copy ``t < w_b`` of input field ``b``; fields may have different
numbers of copies ``w_b``) keeps only its identity coefficient ``u_j`` from input field ``b``.
Because ``σ(u x) = u σ(x)`` for ``u > 0`` and ``|u| σ(−x)`` for ``u < 0`` and ``x = σ(x) − σ(−x)``,

.. math:: \alpha_{abk} B_k x_b \approx \sum_{j \in S^+} u_j v_{ajk} B_k σ(x_b) − \sum_{j \in S^-} |u_j| v_{ajk} B_k σ(−x_b)

so for every target coefficient ``(a, b, k)`` one problem over the positive pool ``{j : u_j > 0}`` (target
``α``) and one over the negative pool (target ``−α``). When the layer's input is non-negative
(``σ(−x) = 0``), the negative pool is pruned entirely and only the positive problems are solved. Bias
coefficients are subset sums of their own pool of ``U[-1, 1]`` values.

A pool holds at most ``min(32, w_b // 2 + 4)`` copies of its field (the first ones of its sign). Rows are
independent per input field, so after the policy widened some fields only their rows are solved again
(``previous``/``fields``): the draws are prefix-stable, the other fields' pools and solutions are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Tuple

import torch

from ..basis import blocks
from ..subsetsum import solve
from ._build import _occurrence, block_widths, hidden_offsets

__all__ = ["LayerSolution", "solve_layer"]


@dataclass
class LayerSolution:
    """Residuals (``chosen sum − target``, in normalised units) of one layer's problems, and the chosen
    subsets by copy: ``chosen[(in_repr, out_repr, half)]`` ``[n_out, n_in, K, max_b w_b]`` (bool, copy ``t``
    of the row's input field), which a partial re-solve after widening reuses."""

    weight_residual_pos: torch.Tensor  # layout of the target's weight coefficient tensor
    weight_residual_neg: torch.Tensor  # same layout; all zeros when the input is non-negative
    bias_residual: torch.Tensor
    n_problems: int
    pool_sizes: Dict[str, float] = field(default_factory=dict)
    chosen: Dict[Tuple[str, str, str], torch.Tensor] = field(default_factory=dict, repr=False)
    rows_solved: int = 0
    pool_counts: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # half -> [n_fields]


def _weight_tensor_name(layer) -> str:
    return next(b.tensor for b in blocks(layer) if not b.is_bias)


def identity_indices(lift, widths, lift_blocks=None) -> torch.Tensor:
    """``[n_fields, max w_b]`` positions (in the lift's flat weights) of the identity coefficient from input
    field ``b`` to its hidden copy ``offset_b + t`` (``-1`` for ``t ≥ w_b``)."""
    widths = [int(w) for w in widths]
    offsets = torch.tensor(hidden_offsets(widths))
    w = torch.tensor(widths)
    n_fields, longest = len(widths), max(widths)
    t = torch.arange(longest)
    pad = t[None, :] >= w[:, None]  # [F, W]
    hidden = offsets[:-1, None] + torch.where(pad, 0, t[None, :])  # [F, W], copy 0 in the padding
    out = torch.full((n_fields, longest), -1, dtype=torch.long)
    for block in (blocks(lift) if lift_blocks is None else lift_blocks):
        if block.is_bias or block.in_repr != block.out_repr:
            continue
        k0 = getattr(block, "identity_index", None)  # blocks that know it (IGN: the basis is partition labels)
        if k0 is None:
            d = block.basis.shape[1]
            eye = torch.eye(d, dtype=block.basis.dtype)
            flat = block.basis.reshape(block.n_basis, d, d, -1)
            centre = flat.shape[-1] // 2
            k0 = next((k for k in range(block.n_basis)
                       if flat.shape[-1] == 1 and torch.equal(flat[k, ..., centre], eye)), None)
        if k0 is None:
            raise ValueError(f"construct: the lift basis for {block.in_repr} has no identity element")
        fields = torch.tensor(block.in_fields, dtype=torch.long)
        rows = _occurrence(block.out_fields, int(offsets[-1]))[hidden[fields]]  # [i, W]
        assert bool((rows >= 0).all()), "construct: hidden copies must have their input field's type"
        # one gather on the flat index (advanced indexing of a large index tensor costs O(numel) per call)
        n_out, n_in, n_basis = block.shape
        position = (rows * n_in + torch.arange(len(fields))[:, None]) * n_basis + k0
        out[fields] = torch.where(pad[fields], -1, block.index.reshape(-1)[position])
    if any((out[b, :w] < 0).any() for b, w in enumerate(widths)):
        raise ValueError("construct: some input fields have no identity coefficient in the lift")
    return out


def lift_coefficients(lift, widths, coefficients: torch.Tensor, lift_blocks=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(idx, u)``: :func:`identity_indices` and the identity coefficients ``[n_fields, max w_b]`` taken from
    ``coefficients`` (the lift's weight tensor, raw or masked) as float64, ``0`` in the padding (so that
    padding is in neither pool)."""
    idx = identity_indices(lift, widths, lift_blocks)
    coef = coefficients.detach().reshape(-1)
    u = torch.where(idx >= 0, coef[idx.clamp(min=0)].double(), torch.zeros((), dtype=torch.float64))
    return idx, u


def hidden_occurrence(m_block, fields, widths) -> torch.Tensor:
    """``[len(fields), max w_b]``: position, among the in-fields of mix block ``m_block``, of copy ``t`` of
    each input field (copy 0 in the padding ``t ≥ w_b``)."""
    offsets = torch.tensor(hidden_offsets(widths))
    w = torch.tensor([int(x) for x in widths])
    fields = torch.as_tensor(fields, dtype=torch.long)
    t = torch.arange(int(w.max()))
    hidden = offsets[fields][:, None] + torch.where(t[None, :] < w[fields][:, None], t[None, :], 0)
    occ = _occurrence(m_block.in_fields, int(offsets[-1]))[hidden]
    if (occ < 0).any():
        raise ValueError("construct: the mix has no block for some hidden copies")
    return occ


MAX_COLUMNS = 32  # exact meet-in-the-middle limit of the solver


def pool_caps(widths) -> torch.Tensor:
    """Largest pool per input field: ``min(32, w_b // 2 + 4)``."""
    return torch.tensor([min(MAX_COLUMNS, int(w) // 2 + 4) for w in widths])


def _cap(mask: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """Keep at most ``cap[b]`` hidden slots of input field ``b`` (the first ones)."""
    return mask & (torch.cumsum(mask.to(torch.int64), dim=1) <= cap[:, None])


def _pools(mask: torch.Tensor):
    """Per input field, the hidden slots where ``mask`` holds, left-packed: ``(index [F, L], valid [F, L])``."""
    counts = mask.sum(dim=1)
    length = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length)[None, :] < counts[:, None]
    return order, valid


def solve_layer(target, block, tol, fewest: bool = False, previous: Optional[LayerSolution] = None,
                fields: Optional[Iterable[int]] = None) -> LayerSolution:
    """Solve the problems of one layer in one batched call and write the lift/mix/bias masks of ``block``.

    With ``previous`` (the solution of this layer before some input fields were widened) only the weight
    rows of input fields in ``fields`` are solved; the others keep ``previous``'s subsets and residuals.
    The bias problems are always solved.
    """
    lift, mix, gain = block.lift, block.mix, float(block.gain)
    lift_blocks, mix_blocks_all = blocks(lift), blocks(mix)  # once each: costly for large layers
    lift_name = next(b.tensor for b in lift_blocks if not b.is_bias)
    mix_name = next(b.tensor for b in mix_blocks_all if not b.is_bias)
    target_blocks = [b for b in blocks(target.module) if b.tensor == target.weight_name]
    widths = block_widths(block)
    longest = max(widths)
    lift_coef = getattr(lift, lift_name).detach()
    mix_coef = getattr(mix, mix_name).detach()
    idx, u = lift_coefficients(lift, widths, lift_coef, lift_blocks)
    # pools: the hidden copies of each sign, at most w_b // 2 + 4 of them (the solver is exact up to 32 summands)
    caps = pool_caps(widths)
    pos, neg = _cap(u > 0, caps), _cap(u < 0, caps)
    use_negative = not target.input_nonnegative

    lift_mask = torch.zeros(lift_coef.numel(), dtype=torch.bool)
    lift_mask[idx[pos]] = True
    if use_negative:
        lift_mask[idx[neg]] = True
    lift.mask.set(lift_name, lift_mask.view(lift_coef.shape))

    if previous is None or fields is None:
        redo = None  # every field
    else:
        redo = torch.zeros(len(widths), dtype=torch.bool)
        redo[torch.as_tensor(sorted(set(int(f) for f in fields)), dtype=torch.long)] = True

    mix_blocks = {(b.in_repr, b.out_repr): b for b in mix_blocks_all if b.tensor == mix_name}
    alpha = target.alpha.double() / gain
    halves = [("pos", pos, 1.0)] + ([("neg", neg, -1.0)] if use_negative else [])
    residuals = {"pos": torch.zeros_like(alpha), "neg": torch.zeros_like(alpha)}
    if previous is not None and redo is not None:
        residuals = {"pos": previous.weight_residual_pos.clone(), "neg": previous.weight_residual_neg.clone()}
    values, valids, targets, slots, chosen_all = [], [], [], [], {}
    for t_block in target_blocks:
        m_block = mix_blocks[(t_block.in_repr, t_block.out_repr)]
        n_out, n_in, k = t_block.shape
        in_fields = torch.tensor(t_block.in_fields)
        occ = hidden_occurrence(m_block, in_fields, widths)  # [i, W]
        v_all = m_block.take(mix_coef)  # [o, hidden occurrences, K]
        a_all = t_block.take(alpha)  # [o, i, K]
        sel = torch.arange(n_in) if redo is None else torch.nonzero(redo[in_fields]).reshape(-1)
        for name, pool, sign in halves:
            key = (t_block.in_repr, t_block.out_repr, name)
            chosen = torch.zeros(n_out, n_in, k, longest, dtype=torch.bool)
            if redo is not None:
                old = previous.chosen[key]
                keep = ~redo[in_fields]
                chosen[:, keep, :, :old.shape[-1]] = old[:, keep]
            chosen_all[key] = chosen
            if sel.numel() == 0:
                continue
            order, valid = _pools(pool[in_fields[sel]])  # [s, L] copies t of each selected field
            slot_occ = torch.gather(occ[sel], 1, order)  # [s, L] mix in-field occurrences
            scale = torch.gather(u[in_fields[sel]].abs(), 1, order)  # [s, L] |u_j|
            vals = v_all[:, slot_occ, :].double().permute(0, 1, 3, 2) * scale[None, :, None, :]  # [o, s, K, L]
            n_sel, length = order.shape
            values.append(vals.reshape(-1, length))
            valids.append(valid[None, :, None, :].expand(n_out, n_sel, k, length).reshape(-1, length))
            targets.append((sign * a_all[:, sel]).reshape(-1))
            slots.append((t_block, name, key, sel, order, (n_out, n_sel, k)))
    rows_solved = 0
    if values:
        width_cols = max(x.shape[1] for x in values)
        values = torch.cat([torch.nn.functional.pad(x, (0, width_cols - x.shape[1])) for x in values])
        valids = torch.cat([torch.nn.functional.pad(x, (0, width_cols - x.shape[1])) for x in valids])
        targets = torch.cat(targets)
        rows_solved = int(targets.numel())
        result = solve(values, targets, valids, tol=tol, fewest=fewest and tol is not None)
        start = 0
        for t_block, name, key, sel, order, (n_out, n_sel, k) in slots:
            rows = n_out * n_sel * k
            length = order.shape[1]
            part = result.chosen[start:start + rows, :length].reshape(n_out, n_sel, k, length)
            res = residuals[name]
            current = t_block.take(res).clone()
            current[:, sel] = result.residual[start:start + rows].double().reshape(n_out, n_sel, k)
            t_block.put(res, current)
            start += rows
            dense = torch.zeros(n_out, n_sel, k, longest, dtype=torch.bool)
            dense.scatter_(3, order[None, :, None, :].expand(n_out, n_sel, k, length), part)
            chosen_all[key][:, sel] = dense

    # masks from the chosen copies: (o, i, k, t) -> mix coefficient index[o, occurrence of copy t of field i, k]
    mix_mask = torch.zeros(mix_coef.numel(), dtype=torch.bool)
    for t_block in target_blocks:
        m_block = mix_blocks[(t_block.in_repr, t_block.out_repr)]
        occ = hidden_occurrence(m_block, torch.tensor(t_block.in_fields), widths)
        for name, _, _ in halves:
            o, i, kk, t = torch.nonzero(chosen_all[(t_block.in_repr, t_block.out_repr, name)], as_tuple=True)
            mix_mask[m_block.index[o, occ[i, t], kk]] = True
    mix.mask.set(mix_name, mix_mask.view(mix_coef.shape))

    bias_residual = torch.zeros(0, dtype=torch.float64)
    if block.bias is not None:
        pool_values = block.bias.bias.detach().double()
        bias_targets = target.beta.double() / gain
        bias_result = solve(pool_values, bias_targets, tol=tol, fewest=fewest and tol is not None)
        block.bias.mask.set("bias", bias_result.chosen.view(pool_values.shape))
        bias_residual = bias_result.residual
        rows_solved += int(bias_residual.numel())
    return LayerSolution(
        weight_residual_pos=residuals["pos"],
        weight_residual_neg=residuals["neg"],
        bias_residual=bias_residual,
        n_problems=int(alpha.numel() * len(halves) + bias_residual.numel()),
        pool_sizes={"positive_mean": float(pos.sum(1).double().mean()),
                    "negative_mean": float(neg.sum(1).double().mean()) if use_negative else 0.0,
                    "columns": int(caps.max())},
        chosen=chosen_all,
        rows_solved=rows_solved,
        pool_counts={name: pool.sum(1) for name, pool, _ in halves},
    )


def fields_over_tol(target, solution: LayerSolution, tol: float) -> Dict[str, torch.Tensor]:
    """Per half (``"pos"``, ``"neg"``), the input fields that own a weight row with ``|residual| > tol``
    (sorted, long)."""
    out = {}
    for name, residual in (("pos", solution.weight_residual_pos), ("neg", solution.weight_residual_neg)):
        over = residual.abs() > tol
        found = set()
        if bool(over.any()):
            for t_block in blocks(target.module):
                if t_block.tensor != target.weight_name:
                    continue
                rows = t_block.take(over).reshape(t_block.shape).any(dim=2).any(dim=0)  # [i]
                found.update(t_block.in_fields[i] for i in torch.nonzero(rows).reshape(-1).tolist())
        out[name] = torch.tensor(sorted(found), dtype=torch.long)
    return out
