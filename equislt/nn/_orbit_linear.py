"""``OrbitLinear``: a pointwise (1×1) equivariant layer on permutation fields, in the orbit basis."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .._compat import import_escnn
from ..basis import Block, orbit_basis, permutation_action

escnn = import_escnn()
GeometricTensor = escnn.nn.GeometricTensor

__all__ = ["OrbitLinear"]


class OrbitLinear(escnn.nn.EquivariantModule):
    r"""Pointwise equivariant linear map between fields of permutation representations of a finite group.

    .. math:: W = \sum_{a,b,k} \theta[a,b,k]\, E_{ab} \otimes O_k

    where ``O_k`` are the 0/1 orbit matrices of G on (output index, input index) pairs
    (:func:`~equislt.basis.orbit_basis`): N per C_N regular→regular pair, 2N for D_N, 1 for trivial fields.
    For a transitive field to itself, ``O_0`` is the identity. Bias: one coefficient per G-orbit on the output
    indices of each field (the all-ones vector for a transitive field). Works on any gspace (``no_base_space``
    for vectors, ``rot2dOnR2``/``flipRot2dOnR2`` for feature maps: a 1×1 convolution).

    Coefficients are flat Parameters ``weights`` and ``bias`` laid out like escnn's (blocks sorted by
    ``(in_repr, out_repr)`` name; out-occurrence, in-occurrence, basis element), so
    :func:`equislt.blocks` and masks treat it like any escnn layer. Init: ``N(0, 1/fan)`` with
    ``fan = Σ_pairs in_count · n_basis`` feeding each output field type (He-style).
    """

    def __init__(self, in_type, out_type, bias: bool = True, initialize: bool = True):
        super().__init__()
        if in_type.gspace != out_type.gspace:
            raise ValueError(f"OrbitLinear: input and output field types live on different gspaces "
                             f"({in_type.gspace} vs {out_type.gspace})")
        self.in_type, self.out_type, self.space = in_type, out_type, in_type.gspace
        reprs = {r.name: r for r in in_type.representations + out_type.representations}
        perms = {name: permutation_action(rep) for name, rep in reprs.items()}
        self._in_pos = _positions(in_type)
        self._out_pos = _positions(out_type)
        self._pairs: List[Tuple[str, str]] = []
        self._ranges: Dict[Tuple[str, str], Tuple[int, int]] = {}
        offset = 0
        for pair in sorted((i, o) for i in self._in_pos for o in self._out_pos):
            basis = orbit_basis(perms[pair[1]], perms[pair[0]])
            self.register_buffer(_buffer_name("basis", pair), basis, persistent=False)
            n = len(self._out_pos[pair[1]]) * len(self._in_pos[pair[0]]) * basis.shape[0]
            self._pairs.append(pair)
            self._ranges[pair] = (offset, offset + n)
            offset += n
        self.weights = nn.Parameter(torch.zeros(offset))
        self._bias_ranges: Dict[str, Tuple[int, int]] = {}
        if bias:
            offset = 0
            for name in sorted(self._out_pos):
                p = perms[name]
                b = orbit_basis(p, torch.zeros(p.shape[0], 1, dtype=torch.long))  # orbits on output indices
                self.register_buffer(_buffer_name("bias_basis", name), b, persistent=False)
                n = len(self._out_pos[name]) * b.shape[0]
                self._bias_ranges[name] = (offset, offset + n)
                offset += n
            self.bias = nn.Parameter(torch.zeros(offset))
        else:
            self.bias = None
        if initialize:
            self.reset_parameters()

    # -- coefficients ---------------------------------------------------------------------------------
    def coefficient(self, name: str) -> Optional[torch.Tensor]:
        """Coefficient tensor ``name`` as the layer uses it (masked layers override this)."""
        return getattr(self, name)

    def coefficient_blocks(self) -> List[Block]:
        blocks = []
        for pair in self._pairs:
            basis = getattr(self, _buffer_name("basis", pair))
            start, stop = self._ranges[pair]
            shape = (len(self._out_pos[pair[1]]), len(self._in_pos[pair[0]]), basis.shape[0])
            blocks.append(Block("weights", torch.arange(start, stop).view(shape), basis,
                                tuple(self._out_pos[pair[1]]), tuple(self._in_pos[pair[0]]), pair[1], pair[0]))
        for name, (start, stop) in self._bias_ranges.items():
            basis = getattr(self, _buffer_name("bias_basis", name))
            shape = (len(self._out_pos[name]), 1, basis.shape[0])
            blocks.append(Block("bias", torch.arange(start, stop).view(shape), basis,
                                tuple(self._out_pos[name]), (), name, "constant"))
        return blocks

    def coefficient_init_std(self) -> Dict[str, torch.Tensor]:
        fan: Dict[str, int] = defaultdict(int)
        for block in self.coefficient_blocks():
            if not block.is_bias:
                fan[block.out_repr] += block.shape[1] * block.shape[2]
        std = {"weights": torch.zeros_like(self.weights)}
        if self.bias is not None:
            std["bias"] = torch.zeros_like(self.bias)
        for block in self.coefficient_blocks():
            value = (2.0 / fan[block.out_repr]) ** 0.5 if not block.is_bias else fan[block.out_repr] ** -0.5
            block.put(std[block.tensor], torch.full(block.shape, value))
        return std

    def reset_parameters(self) -> None:
        """He-style init of ``weights`` (see class docstring); zero bias."""
        with torch.no_grad():
            self.weights.copy_(torch.randn_like(self.weights) * self.coefficient_init_std()["weights"])
            if self.bias is not None:
                self.bias.zero_()

    # -- expansion ------------------------------------------------------------------------------------
    def expand_parameters(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The dense ``[out.size, in.size]`` matrix and ``[out.size]`` bias of the current coefficients."""
        weights = self.coefficient("weights")
        matrix = weights.new_zeros(self.out_type.size, self.in_type.size)
        for block in self.coefficient_blocks():
            theta = block.take(weights) if not block.is_bias else None
            if theta is None:
                continue
            dense = torch.einsum("oik,kxy->oxiy", theta, block.basis.to(weights.dtype))
            rows = _channels(self.out_type, block.out_fields)
            cols = _channels(self.in_type, block.in_fields)
            matrix[rows[:, None], cols[None, :]] = dense.reshape(rows.numel(), cols.numel())
        bias = None
        if self.bias is not None:
            coef = self.coefficient("bias")
            bias = weights.new_zeros(self.out_type.size)
            for block in self.coefficient_blocks():
                if block.is_bias:
                    dense = torch.einsum("ok,kx->ox", block.take(coef)[:, 0], block.basis[..., 0].to(coef.dtype))
                    bias[_channels(self.out_type, block.out_fields)] = dense.reshape(-1)
        return matrix, bias

    def forward(self, input: GeometricTensor) -> GeometricTensor:
        if input.type != self.in_type:
            raise ValueError(f"OrbitLinear: input field type {input.type} does not match in_type {self.in_type}")
        matrix, bias = self.expand_parameters()
        out = torch.einsum("oc,bc...->bo...", matrix, input.tensor)
        if bias is not None:
            out = out + bias.view(1, -1, *([1] * (out.dim() - 2)))
        return GeometricTensor(out, self.out_type, input.coords)

    def evaluate_output_shape(self, input_shape):
        return (input_shape[0], self.out_type.size, *input_shape[2:])

    def export(self) -> nn.Module:
        """A plain ``nn.Linear`` (no base space) or 1×1 ``nn.ConvNd`` with the same function."""
        matrix, bias = self.expand_parameters()
        d = self.space.dimensionality
        if d == 0:
            layer = nn.Linear(self.in_type.size, self.out_type.size, bias=bias is not None)
            shape = matrix.shape
        else:
            layer = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d](self.in_type.size, self.out_type.size, 1,
                                                                  bias=bias is not None)
            shape = (*matrix.shape, *([1] * d))
        with torch.no_grad():
            layer.weight.copy_(matrix.reshape(shape))
            if bias is not None:
                layer.bias.copy_(bias)
        return layer.train(self.training)

    def extra_repr(self) -> str:
        return (f"{self.in_type.size} -> {self.out_type.size} channels, {self.weights.numel()} coefficients, "
                f"bias={self.bias is not None}")


def _positions(field_type) -> Dict[str, List[int]]:
    pos: Dict[str, List[int]] = defaultdict(list)
    for p, rep in enumerate(field_type.representations):
        pos[rep.name].append(p)
    return dict(pos)


def _channels(field_type, fields) -> torch.Tensor:
    return torch.cat([torch.arange(int(field_type.fields_start[f]), int(field_type.fields_end[f])) for f in fields])


def _buffer_name(prefix: str, key) -> str:
    text = "__".join(key) if isinstance(key, tuple) else key
    return f"{prefix}_" + "".join(c if c.isalnum() else "_" for c in text)
