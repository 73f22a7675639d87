"""Equivariance errors under explicit group actions, in train and eval mode (no printing, no downloads).

For a module ``f``, an input ``x`` and group elements ``g`` acting on inputs by ``ρ_in(g)`` and on outputs
by ``ρ_out(g)``, the error is ``max|f(ρ_in(g) x) − ρ_out(g) f(x)| / max|f(x)|`` (relative to the output
scale, so one tolerance fits any init). escnn's own ``R2Conv.check_equivariance`` downloads an image and
prints; do not use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch

from .._compat import tensor_of

__all__ = [
    "EquivarianceReport",
    "default_spatial_size",
    "equivariance_error",
    "escnn_equivariance_error",
    "grid_exact_elements",
    "node_permutation_error",
    "index_permutation_error",
    "permute_indices",
    "assert_equivariant",
]

Action = Tuple[str, Callable, Callable]  # (name, act on input, act on output)


@dataclass
class EquivarianceReport:
    """Errors by ``(mode, element)``; ``max()`` over all or one mode."""

    errors: Dict[Tuple[str, str], float] = field(default_factory=dict)

    def max(self, mode: Optional[str] = None) -> float:
        values = [e for (m, _), e in self.errors.items() if mode is None or m == mode]
        return max(values) if values else 0.0

    def __repr__(self) -> str:
        modes = sorted({m for m, _ in self.errors})
        parts = ", ".join(f"{m}: {self.max(m):.2e}" for m in modes)
        return f"EquivarianceReport(max {parts}; {len(self.errors)} checks)"


def _scale(y: torch.Tensor) -> float:
    return float(y.abs().max()) + 1e-12


def equivariance_error(fn: Callable, x, actions: Iterable[Action], modes: Sequence[str] = ("train", "eval"),
                       module: Optional[torch.nn.Module] = None) -> EquivarianceReport:
    """Relative equivariance error of ``fn`` for each action and mode.

    ``x`` is the input (passed as ``fn(*x)`` if it is a tuple); ``actions`` are ``(name, act_in, act_out)``
    with ``act_in(x)`` the transformed input and ``act_out(y)`` the transformed output. ``module`` (default
    ``fn``) is switched to each mode and restored afterwards. The check never changes the model: every parameter
    and buffer (batch-norm running statistics, which a train-mode pass updates) is restored bit for bit.
    """
    module = fn if module is None else module
    call = (lambda inp: fn(*inp)) if isinstance(x, tuple) else fn
    actions = list(actions)
    report = EquivarianceReport()
    was_training = module.training
    saved = _snapshot(module)
    try:
        for mode in modes:
            if mode not in ("train", "eval"):
                raise ValueError(f"equivariance_error: mode must be 'train' or 'eval', got {mode!r}")
            module.train(mode == "train")
            with torch.no_grad():
                y = call(x)
                scale = _scale(tensor_of(y))
                for name, act_in, act_out in actions:
                    diff = tensor_of(call(act_in(x))) - tensor_of(act_out(y))
                    report.errors[(mode, name)] = float(diff.abs().max()) / scale
    finally:
        module.train(was_training)
        _restore(module, saved)
    return report


def _snapshot(module) -> Dict[str, torch.Tensor]:
    tensors = dict(module.named_parameters()) if isinstance(module, torch.nn.Module) else {}
    if isinstance(module, torch.nn.Module):
        tensors.update((f"buffer:{name}", b) for name, b in module.named_buffers() if b is not None)
    return {name: t.detach().clone() for name, t in tensors.items()}


@torch.no_grad()
def _restore(module, saved: Dict[str, torch.Tensor]) -> None:
    if not isinstance(module, torch.nn.Module):
        return
    current = dict(module.named_parameters())
    current.update((f"buffer:{name}", b) for name, b in module.named_buffers() if b is not None)
    for name, value in saved.items():
        tensor = current.get(name)
        if tensor is not None and tensor.shape == value.shape and not torch.equal(tensor, value):
            tensor.copy_(value)


def default_spatial_size(module, minimum: int = 11) -> int:
    """An input side at which ``module``'s strided layers (pooling, strided convolutions) keep every map odd, so
    that rotations by 90° stay exact about the centre: ``2^(S+2) + 1`` for ``S`` stride-2 stages (``minimum``
    when there are none)."""
    strided = 0
    for sub in module.modules():
        stride = getattr(sub, "stride", 1)
        stride = max(stride) if isinstance(stride, (tuple, list)) else stride
        if isinstance(stride, int) and stride > 1:
            strided += 1
    return minimum if not strided else 2 ** (strided + 2) + 1


def grid_exact_elements(gspace) -> list:
    """The test elements of an escnn gspace that act exactly on a pixel/voxel grid: those whose action on the
    base space is a signed permutation matrix (rotations by multiples of 90°, flips, the octahedral group)."""
    if gspace.dimensionality == 0:
        return list(gspace.testing_elements)
    exact = []
    for g in gspace.testing_elements:
        action = torch.as_tensor(gspace.basespace_action(g), dtype=torch.float64)
        if torch.allclose(action, action.round(), atol=1e-9):
            exact.append(g)
    return exact


def escnn_equivariance_error(module, x=None, elements=None, modes: Sequence[str] = ("train", "eval"),
                             spatial: Optional[int] = None, batch: int = 3) -> EquivarianceReport:
    """Equivariance error of an escnn module under ``GeometricTensor.transform(g)``.

    ``x`` defaults to a random input of side ``spatial`` (default :func:`default_spatial_size`: odd at every
    stage, so 90° rotations are exact about the centre); ``elements`` defaults to :func:`grid_exact_elements` of
    the input's gspace. The module is left exactly as it was (see :func:`equivariance_error`).
    """
    spatial = default_spatial_size(module) if spatial is None else int(spatial)
    from .._compat import import_escnn

    escnn = import_escnn()
    if x is None:
        gspace = module.in_type.gspace
        shape = (batch, module.in_type.size) + (spatial,) * gspace.dimensionality
        x = escnn.nn.GeometricTensor(torch.randn(*shape), module.in_type)
    if elements is None:
        elements = grid_exact_elements(x.type.gspace)
    actions = [(str(g), (lambda t, g=g: t.transform(g)), (lambda t, g=g: t.transform(g))) for g in elements]
    return equivariance_error(module, x, actions, modes)


def node_permutation_error(module, x: torch.Tensor, edge_index: torch.Tensor, perms: Iterable[torch.Tensor] = (),
                           n_perms: int = 3, node_level: bool = True, modes: Sequence[str] = ("train", "eval"),
                           generator: Optional[torch.Generator] = None) -> EquivarianceReport:
    """Error of a message-passing model ``module(x, edge_index)`` under node relabelling.

    A permutation ``perm`` maps new node ``i`` to old node ``perm[i]``: ``x' = x[perm]``,
    ``edge_index' = inv[edge_index]``; node-level outputs must satisfy ``y' = y[perm]``, graph-level ``y' = y``.
    """
    n = x.shape[0]
    perms = list(perms) or [torch.randperm(n, generator=generator) for _ in range(n_perms)]
    actions = []
    for i, perm in enumerate(perms):
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(n)
        act_in = (lambda inp, perm=perm, inv=inv: (inp[0][perm], inv[inp[1]]))
        act_out = (lambda y, perm=perm: y[perm]) if node_level else (lambda y: y)
        actions.append((f"perm{i}", act_in, act_out))
    return equivariance_error(module, (x, edge_index), actions, modes)


def assert_equivariant(report: EquivarianceReport, atol: float) -> None:
    """Raise an AssertionError listing the checks whose relative error exceeds ``atol``."""
    bad = {k: v for k, v in report.errors.items() if not v <= atol}
    if bad:
        lines = "\n".join(f"  {mode} {name}: {err:.3e}" for (mode, name), err in sorted(bad.items()))
        raise AssertionError(f"equivariance error above {atol:.1e}:\n{lines}")


def permute_indices(x: torch.Tensor, perm: torch.Tensor, order: int, start_dim: int = 2) -> torch.Tensor:
    """Relabel the ``order`` node axes of ``x`` starting at ``start_dim``: ``x'[.., i_1, .., i_k] =
    x[.., perm[i_1], .., perm[i_k]]`` (new node ``i`` is old node ``perm[i]``)."""
    for axis in range(start_dim, start_dim + order):
        x = x.index_select(axis, perm)
    return x


def index_permutation_error(module, x: torch.Tensor, order_in: int, order_out: int,
                            node_mask: Optional[torch.Tensor] = None, perms: Iterable[torch.Tensor] = (),
                            n_perms: int = 3, start_dim: int = 2, modes: Sequence[str] = ("train", "eval"),
                            generator: Optional[torch.Generator] = None) -> EquivarianceReport:
    """Error of a module on order-k tensors ``[B, C, n, .., n]`` under relabelling of the n nodes.

    ``module(x)`` (or ``module(x, node_mask)`` when ``node_mask [B, n]`` is given, which is permuted too) must
    satisfy ``module(P·x) = P·module(x)`` where ``P`` permutes all ``order_in`` input node axes and all
    ``order_out`` output node axes (``order_out = 0``: invariance) with the same permutation.
    """
    if node_mask is not None:
        n = node_mask.shape[-1]
    elif order_in > 0:
        n = x.shape[start_dim]
    else:
        raise ValueError("index_permutation_error: an order-0 input has no node axis; pass node_mask")
    perms = list(perms) or [torch.randperm(n, generator=generator) for _ in range(n_perms)]
    actions = []
    for i, perm in enumerate(perms):
        if node_mask is None:
            act_in = (lambda inp, perm=perm: permute_indices(inp, perm, order_in, start_dim))
        else:
            act_in = (lambda inp, perm=perm: (permute_indices(inp[0], perm, order_in, start_dim), inp[1][:, perm]))
        act_out = (lambda y, perm=perm: permute_indices(y, perm, order_out, start_dim))
        actions.append((f"perm{i}", act_in, act_out))
    return equivariance_error(module, x if node_mask is None else (x, node_mask), actions, modes)
