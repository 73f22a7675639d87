r"""Turn one target layer into Subset-Sum problems over its random block, solve them, set the masks.

Lift: hidden field ``j = b·width + t`` keeps only its identity coefficient ``u_j`` from input field ``b``.
Because ``σ(u x) = u σ(x)`` for ``u > 0`` and ``|u| σ(−x)`` for ``u < 0`` and ``x = σ(x) − σ(−x)``,

.. math:: \alpha_{abk} B_k x_b \approx \sum_{j \in S^+} u_j v_{ajk} B_k σ(x_b) − \sum_{j \in S^-} |u_j| v_{ajk} B_k σ(−x_b)

so for every target coefficient ``(a, b, k)`` one problem over the positive pool ``{j : u_j > 0}`` (target
``α``) and one over the negative pool (target ``−α``). When the layer's input is non-negative
(``σ(−x) = 0``), the negative pool is pruned entirely and only the positive problems are solved. Bias
coefficients are subset sums of their own pool of ``U[-1, 1]`` values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import torch

from ..basis import blocks
from ..subsetsum import solve

__all__ = ["LayerSolution", "solve_layer"]


@dataclass
class LayerSolution:
    """Residuals (``chosen sum − target``, in normalised units) of one layer's problems."""

    weight_residual_pos: torch.Tensor  # layout of the target's weight coefficient tensor
    weight_residual_neg: torch.Tensor  # same layout; all zeros when the input is non-negative
    bias_residual: torch.Tensor
    n_problems: int
    pool_sizes: Dict[str, float] = field(default_factory=dict)


def _weight_tensor_name(layer) -> str:
    return next(b.tensor for b in blocks(layer) if not b.is_bias)


def identity_indices(lift, width: int, n_fields: int) -> torch.Tensor:
    """``[n_fields, width]`` positions (in the lift's flat weights) of the identity coefficient from input
    field ``b`` to hidden field ``b·width + t``."""
    out = torch.full((n_fields, width), -1, dtype=torch.long)
    for block in blocks(lift):
        if block.is_bias or block.in_repr != block.out_repr:
            continue
        d = block.basis.shape[1]
        eye = torch.eye(d, dtype=block.basis.dtype)
        flat = block.basis.reshape(block.n_basis, d, d, -1)
        centre = flat.shape[-1] // 2
        k0 = next((k for k in range(block.n_basis)
                   if flat.shape[-1] == 1 and torch.equal(flat[k, ..., centre], eye)), None)
        if k0 is None:
            raise ValueError(f"construct: the lift basis for {block.in_repr} has no identity element")
        for i_occ, b in enumerate(block.in_fields):
            rows = torch.arange(i_occ * width, (i_occ + 1) * width)
            assert all(block.out_fields[r] == b * width + t for t, r in enumerate(rows.tolist()))
            out[b] = block.index[rows, i_occ, k0]
    if (out < 0).any():
        raise ValueError("construct: some input fields have no identity coefficient in the lift")
    return out


MAX_COLUMNS = 32  # exact meet-in-the-middle limit of the solver


def _cap(mask: torch.Tensor, cap: int) -> torch.Tensor:
    """Keep at most ``cap`` hidden slots per input field (the first ones): a pool is at most ``cap`` summands."""
    return mask & (torch.cumsum(mask.to(torch.int64), dim=1) <= cap)


def _pools(mask: torch.Tensor):
    """Per input field, the hidden slots where ``mask`` holds, left-packed: ``(index [F, L], valid [F, L])``."""
    counts = mask.sum(dim=1)
    length = max(int(counts.max()), 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length)[None, :] < counts[:, None]
    return order, valid


def solve_layer(target, block, tol, fewest: bool = False) -> LayerSolution:
    """Solve all problems of one layer in one batched call and write the lift/mix/bias masks of ``block``."""
    lift, mix, gain = block.lift, block.mix, float(block.gain)
    lift_name, mix_name = _weight_tensor_name(lift), _weight_tensor_name(mix)
    target_blocks = [b for b in blocks(target.module) if b.tensor == target.weight_name]
    n_fields = 1 + max(f for b in target_blocks for f in b.in_fields)
    width = _hidden_fields(mix) // n_fields
    lift_coef = getattr(lift, lift_name).detach()
    mix_coef = getattr(mix, mix_name).detach()
    idx = identity_indices(lift, width, n_fields)
    u = lift_coef.reshape(-1)[idx].double()
    # pools: the hidden fields of each sign, at most N + 4 of them (the solver is exact up to 32 summands)
    cap = min(MAX_COLUMNS, width // 2 + 4)
    pos, neg = _cap(u > 0, cap), _cap(u < 0, cap)
    use_negative = not target.input_nonnegative

    lift_mask = torch.zeros(lift_coef.numel(), dtype=torch.bool)
    lift_mask[idx[pos]] = True
    if use_negative:
        lift_mask[idx[neg]] = True
    lift.mask.set(lift_name, lift_mask.view(lift_coef.shape))

    mix_blocks = {(b.in_repr, b.out_repr): b for b in blocks(mix) if b.tensor == mix_name}
    alpha = target.alpha.double() / gain
    halves = [("pos", pos, 1.0)] + ([("neg", neg, -1.0)] if use_negative else [])
    values, valids, targets, slots = [], [], [], []
    for t_block in target_blocks:
        m_block = mix_blocks[(t_block.in_repr, t_block.out_repr)]
        n_out, n_in, k = t_block.shape
        fields = torch.tensor(t_block.in_fields)
        v = m_block.take(mix_coef).double().reshape(n_out, n_in, width, k).permute(0, 1, 3, 2)  # [o, i, K, w]
        a = t_block.take(alpha)  # [o, i, K]
        for name, pool, sign in halves:
            order, valid = _pools(pool[fields])  # [i, L]
            gather = order[None, :, None, :].expand(n_out, n_in, k, -1)
            scaled = (u[fields].abs())[:, None, :].expand(n_in, k, width)  # |u_j|
            vals = torch.gather(v * scaled[None], 3, gather)
            values.append(vals.reshape(-1, vals.shape[-1]))
            valids.append(valid[None, :, None, :].expand(n_out, n_in, k, -1).reshape(-1, vals.shape[-1]))
            targets.append((sign * a).reshape(-1))
            slots.append((t_block, m_block, name, gather, (n_out, n_in, k)))
    width_cols = max(x.shape[1] for x in values)
    values = torch.cat([torch.nn.functional.pad(x, (0, width_cols - x.shape[1])) for x in values])
    valids = torch.cat([torch.nn.functional.pad(x, (0, width_cols - x.shape[1])) for x in valids])
    targets = torch.cat(targets)
    result = solve(values, targets, valids, tol=tol, fewest=fewest and tol is not None)
    chosen, residual = result.chosen, result.residual

    mix_mask = torch.zeros(mix_coef.numel(), dtype=torch.bool)
    residuals = {"pos": torch.zeros_like(alpha), "neg": torch.zeros_like(alpha)}
    start = 0
    for t_block, m_block, name, gather, (n_out, n_in, k) in slots:
        rows = n_out * n_in * k
        part = chosen[start:start + rows, :gather.shape[-1]].reshape(gather.shape)
        t_block.put(residuals[name], residual[start:start + rows].double().reshape(n_out, n_in, k))
        start += rows
        dense = torch.zeros(n_out, n_in, k, width, dtype=torch.bool).scatter(3, gather, part)
        current = m_block.take(mix_mask.view(-1)).reshape(n_out, n_in, width, k).permute(0, 1, 3, 2)
        m_block.put(mix_mask, (current | dense).permute(0, 1, 3, 2))
    mix.mask.set(mix_name, mix_mask.view(mix_coef.shape))

    bias_residual = torch.zeros(0, dtype=torch.float64)
    if block.bias is not None:
        pool_values = block.bias.bias.detach().double()
        bias_targets = target.beta.double() / gain
        bias_result = solve(pool_values, bias_targets, tol=tol, fewest=fewest and tol is not None)
        block.bias.mask.set("bias", bias_result.chosen.view(pool_values.shape))
        bias_residual = bias_result.residual
    return LayerSolution(
        weight_residual_pos=residuals["pos"],
        weight_residual_neg=residuals["neg"],
        bias_residual=bias_residual,
        n_problems=int(targets.numel() + bias_residual.numel()),
        pool_sizes={"positive_mean": float(pos.sum(1).double().mean()),
                    "negative_mean": float(neg.sum(1).double().mean()) if use_negative else 0.0,
                    "columns": int(width_cols)},
    )


def _hidden_fields(mix) -> int:
    in_type = getattr(mix, "in_type", None)
    if in_type is not None:
        return len(in_type)
    return mix.weight.shape[1]
