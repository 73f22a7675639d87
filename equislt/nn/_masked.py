"""Masked layers: a supported layer whose coefficient tensors are read through a mask source.

``MaskedX`` subclasses layer ``X`` and is built from an existing ``X`` by :meth:`MaskedLayer.wrap` (no
re-construction, so escnn's expensive basis is reused). Coefficients stay Parameters with their original
names; the mask source is the submodule ``mask`` (:class:`~equislt.masks.CoefficientMask` or
:class:`~equislt.masks.Supermask`), so ``state_dict`` keys are stable and ``deepcopy``/pickle work.
"""
from __future__ import annotations

import copy
from typing import Dict

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MaskedLayer", "MaskedLinear", "MaskedConv1d", "MaskedConv2d", "MaskedConv3d", "masked_class_for"]

_MASKED_CLASSES: Dict[type, type] = {}


def masked_class_for(layer_type: type):
    """The ``Masked*`` class for a layer type, or ``None``."""
    for base in layer_type.__mro__:
        if base in _MASKED_CLASSES:
            return _MASKED_CLASSES[base]
    return None


def _shallow_clone(module: nn.Module, cls: type) -> nn.Module:
    """A new ``cls`` instance sharing ``module``'s submodules and buffers, with copied Parameters."""
    new = cls.__new__(cls)
    for key, value in module.__dict__.items():
        new.__dict__[key] = copy.copy(value) if isinstance(value, (dict, set)) else value
    for name, param in module._parameters.items():
        if param is not None:
            new._parameters[name] = nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
    return new


class MaskedLayer:
    """Mixin for masked layers: ``coefficient(name) = mask.apply(name, getattr(self, name))``."""

    base_class: type = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("base_class") is not None:
            _MASKED_CLASSES[cls.base_class] = cls

    @classmethod
    def wrap(cls, layer: nn.Module, mask: nn.Module) -> "MaskedLayer":
        """Masked copy of ``layer`` (its coefficients copied, its basis shared) reading through ``mask``."""
        if not isinstance(layer, cls.base_class):
            raise TypeError(f"{cls.__name__}.wrap expects a {cls.base_class.__name__}, got {type(layer).__name__}")
        new = _shallow_clone(layer, cls)
        new.mask = mask
        new._after_wrap()
        return new

    def _after_wrap(self) -> None:
        """Family-specific set-up after :meth:`wrap`."""

    def coefficient(self, name: str):
        value = getattr(self, name)
        return None if value is None else self.mask.apply(name, value)

    @property
    def coefficient_names(self):
        return self.mask.names

    def unmasked(self) -> nn.Module:
        """A plain ``base_class`` layer with the mask's zeros folded into the coefficients."""
        plain = _shallow_clone(self, self.base_class)
        del plain._modules["mask"]
        with torch.no_grad():
            for name in self.mask.names:
                folded = getattr(self, name) * self.mask.mask(name).to(getattr(self, name).dtype)
                plain._parameters[name] = nn.Parameter(folded.detach().clone())
        return plain

    def export(self) -> nn.Module:
        """A plain torch module with the zeros folded in and identical outputs.

        The unmasked layer's own ``export()`` where it has one (escnn: ``R2Conv`` → ``nn.Conv2d``).
        """
        plain = self.unmasked()
        return plain.export() if callable(getattr(plain, "export", None)) else plain


class MaskedLinear(MaskedLayer, nn.Linear):
    base_class = nn.Linear

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, self.coefficient("weight"), self.coefficient("bias"))


class _MaskedConv(MaskedLayer):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(input, self.coefficient("weight"), self.coefficient("bias"))


class MaskedConv1d(_MaskedConv, nn.Conv1d):
    base_class = nn.Conv1d


class MaskedConv2d(_MaskedConv, nn.Conv2d):
    base_class = nn.Conv2d


class MaskedConv3d(_MaskedConv, nn.Conv3d):
    base_class = nn.Conv3d
