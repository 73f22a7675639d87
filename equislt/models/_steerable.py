"""Small steerable CNNs (escnn) and their plain-CNN counterparts for the demos.

Both follow the same layout: per stage ``conv (padding k//2) -> batch norm -> ReLU -> pool (stride 2)``,
then (steerable only) group pooling, global spatial average and a ``torch.nn.Linear`` head.

Pooling is chosen per stage so that it commutes exactly with 90-degree rotations and flips of the grid:
an odd map uses ``kernel 3, stride 2, padding 1`` (samples 0, 2, ..., n-1, symmetric about the centre
pixel); an even map uses ``kernel 2, stride 2`` (pairs that are mapped onto pairs). Maps of side 1 are
not pooled.
"""
from __future__ import annotations

import re
from typing import Any, List, Sequence, Tuple

import torch
from torch import nn

from .._compat import import_escnn
from ._architecture import Architecture, register_model

__all__ = ["SteerableCNN", "PlainCNN", "steerable_cnn", "c4_steerable_cnn", "plain_cnn", "parse_group"]


def parse_group(group: str) -> Tuple[str, int]:
    """Parse ``"cN"`` (rotations) or ``"dN"`` (rotations and flips) into ``("c" | "d", N)``."""
    match = re.fullmatch(r"([cCdD])(\d+)", group) if isinstance(group, str) else None
    if match is None or int(match.group(2)) < 1:
        raise ValueError(f"group must be 'cN' or 'dN' with N >= 1 (e.g. 'c4', 'd4', 'c8'), got {group!r}")
    return match.group(1).lower(), int(match.group(2))


def _pool_plan(input_size: int, n_stages: int) -> List[Tuple[int, int, int]]:
    """``(kernel, stride, padding)`` per stage (``kernel == 0``: no pooling) keeping rotations exact."""
    plan, size = [], input_size
    for _ in range(n_stages):
        if size <= 1:
            plan.append((0, 1, 0))
        elif size % 2 == 1:
            plan.append((3, 2, 1))
            size = (size - 1) // 2 + 1
        else:
            plan.append((2, 2, 0))
            size //= 2
    return plan


def _check_common(channels: Sequence[int], kernel_size: int, num_classes: int, input_size: int,
                  width: float, in_channels: int) -> Tuple[int, ...]:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    chans = tuple(channels) if isinstance(channels, (list, tuple)) else ()
    if not chans or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in chans):
        raise ValueError(f"channels must be a non-empty list/tuple of positive ints, got {channels!r}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int (for 'same' padding), got {kernel_size!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size must be a positive int, got {input_size!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    return tuple(max(1, int(round(c * width))) for c in chans)


class SteerableCNN(nn.Module):
    """Steerable CNN over regular fields of ``C_N`` or ``D_N``; build it with :func:`steerable_cnn`.

    Attributes
    ----------
    gspace : escnn.gspaces.GSpace2D
    in_type : escnn.nn.FieldType
        ``in_channels`` trivial fields.
    features : escnn.nn.SequentialModule
        Conv stages and, if ``invariant``, the final ``GroupPooling``.
    head : torch.nn.Linear
        On the spatially averaged features.
    """

    def __init__(
        self,
        group: str = "c4",
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 5,
        num_classes: int = 10,
        input_size: int = 17,
        invariant: bool = True,
        width: float = 1.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        kind, order = parse_group(group)
        chans = _check_common(channels, kernel_size, num_classes, input_size, width, in_channels)
        # how to rebuild this architecture (tickets and checkpoints store it instead of pickling escnn modules)
        self.equislt_architecture = Architecture("equislt.steerable_cnn", dict(
            group=group, channels=list(channels), kernel_size=kernel_size, num_classes=num_classes,
            input_size=input_size, invariant=invariant, width=width, in_channels=in_channels))
        escnn = import_escnn()
        gspaces, enn = escnn.gspaces, escnn.nn

        self.group = f"{kind}{order}"
        self.invariant = bool(invariant)
        self.gspace = gspaces.rot2dOnR2(N=order) if kind == "c" else gspaces.flipRot2dOnR2(N=order)
        self.in_type = enn.FieldType(self.gspace, in_channels * [self.gspace.trivial_repr])

        layers = []
        field = self.in_type
        for c, (k, s, p) in zip(chans, _pool_plan(input_size, len(chans))):
            out = enn.FieldType(self.gspace, c * [self.gspace.regular_repr])
            layers += [
                enn.R2Conv(field, out, kernel_size=kernel_size, padding=kernel_size // 2),
                enn.InnerBatchNorm(out),
                enn.ReLU(out, inplace=True),
            ]
            if k:
                layers.append(enn.PointwiseMaxPool2D(out, kernel_size=k, stride=s, padding=p))
            field = out
        if self.invariant:
            layers.append(enn.GroupPooling(field))
            field = layers[-1].out_type
        self.features = enn.SequentialModule(*layers)
        self.out_type = field
        self.head = nn.Linear(field.size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for images ``[B, in_channels, H, W]``."""
        escnn = import_escnn()
        feats = self.features(escnn.nn.GeometricTensor(x, self.in_type)).tensor
        return self.head(feats.mean(dim=(-2, -1)))


class PlainCNN(nn.Module):
    """Ordinary CNN with the layout of :class:`SteerableCNN`; build it with :func:`plain_cnn`."""

    def __init__(
        self,
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 5,
        num_classes: int = 10,
        input_size: int = 17,
        width: float = 1.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        chans = _check_common(channels, kernel_size, num_classes, input_size, width, in_channels)
        self.equislt_architecture = Architecture("equislt.plain_cnn", dict(
            channels=list(channels), kernel_size=kernel_size, num_classes=num_classes, input_size=input_size,
            width=width, in_channels=in_channels))
        layers: List[nn.Module] = []
        c_in = in_channels
        for c, (k, s, p) in zip(chans, _pool_plan(input_size, len(chans))):
            layers += [
                nn.Conv2d(c_in, c, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            if k:
                layers.append(nn.MaxPool2d(k, stride=s, padding=p))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for images ``[B, in_channels, H, W]``."""
        return self.head(self.features(x).mean(dim=(-2, -1)))


@register_model("equislt.steerable_cnn")
def steerable_cnn(
    group: str = "c4",
    channels: Sequence[int] = (8, 16),
    kernel_size: int = 5,
    num_classes: int = 10,
    input_size: int = 17,
    invariant: bool = True,
    width: float = 1.0,
    in_channels: int = 1,
) -> SteerableCNN:
    """Small steerable CNN (escnn) over regular fields of ``C_N`` (``"cN"``) or ``D_N`` (``"dN"``).

    Parameters
    ----------
    group : str
        ``"c4"``, ``"c8"``, ``"d4"``, ... (``gspaces.rot2dOnR2(N)`` / ``gspaces.flipRot2dOnR2(N)``).
    channels : sequence of int
        Number of regular fields per stage (each of size ``|G|``).
    kernel_size : int
        Odd kernel side; convolutions use padding ``kernel_size // 2``.
    num_classes : int
        Output size of the linear head.
    input_size : int
        Spatial side of the inputs, used to pick exactly equivariant pooling (see module docstring).
    invariant : bool
        If True, ``GroupPooling`` then global average pooling give invariant features (logits invariant
        to the 90-degree rotations, and for ``"dN"`` flips, of the grid). If False the head sees the
        spatially averaged regular fields (``channels[-1] * |G|`` features) and logits are not invariant.
    width : float
        Multiplies every entry of ``channels`` (rounded, at least 1), e.g. for a wider random network.
    in_channels : int
        Number of trivial (scalar) input fields.
    """
    return SteerableCNN(group, channels, kernel_size, num_classes, input_size, invariant, width, in_channels)


def c4_steerable_cnn(**kwargs: Any) -> SteerableCNN:
    """:func:`steerable_cnn` with ``group="c4"``."""
    if "group" in kwargs:
        raise ValueError("group must not be given to c4_steerable_cnn (it is 'c4')")
    return steerable_cnn(group="c4", **kwargs)


@register_model("equislt.plain_cnn")
def plain_cnn(
    channels: Sequence[int] = (8, 16),
    kernel_size: int = 5,
    num_classes: int = 10,
    input_size: int = 17,
    width: float = 1.0,
    in_channels: int = 1,
) -> PlainCNN:
    """Plain ``nn.Conv2d`` counterpart of :func:`steerable_cnn` (same layout, no equivariance).

    ``channels`` counts ordinary channels; to match a steerable model's feature width multiply by ``|G|``
    (or pass ``width=|G|``).
    """
    return PlainCNN(channels, kernel_size, num_classes, input_size, width, in_channels)

