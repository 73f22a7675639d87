"""Masks on parameters outside coefficient layers (``supermask(..., include="all")``).

A GAT's attention vectors, a convolution's own bias, batch-norm affine parameters: equislt has no basis for them,
but each is shared by every node, position or field element, so a 0/1 mask on it keeps the layer's equivariance
(permutation equivariance for graphs; per-field scalars for escnn). Such a parameter is masked with
``torch.nn.utils.parametrize``: the module reads ``parameter ⊙ m`` through a :class:`ParameterMask` holding the
mask source (:class:`~equislt.masks.Supermask` or :class:`~equislt.masks.CoefficientMask`, one name); the
value itself stays the one the factory drew (regenerated from the seed like the rest of the network).
"""
from __future__ import annotations

from typing import Iterator, Tuple

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["ParameterMask", "mask_parameter", "own_class", "parameter_masks", "unmask_parameters"]


class ParameterMask(nn.Module):
    """The parametrization ``θ ↦ source.apply(name, θ)`` of one parameter (``source``: its mask source)."""

    def __init__(self, source: nn.Module, name: str):
        super().__init__()
        self.source = source
        self.name = name

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return self.source.apply(self.name, value)


def parameter_masks(model: nn.Module) -> Iterator[Tuple[str, str, ParameterMask]]:
    """``(module path, parameter name, ParameterMask)`` for every masked parameter of ``model``."""
    for path, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for name, chain in module.parametrizations.items():
                if len(chain) == 1 and isinstance(chain[0], ParameterMask):
                    yield path, name, chain[0]


def mask_parameter(module: nn.Module, name: str, source: nn.Module) -> ParameterMask:
    """Read ``module.<name>`` through ``source`` (a mask source for ``name``) from now on."""
    mask = ParameterMask(source, name)
    parametrize.register_parametrization(module, name, mask, unsafe=True)
    return mask


def unmask_parameters(model: nn.Module) -> nn.Module:
    """Fold every parameter mask in: the parameters become plain, holding ``θ ⊙ m``, and each module gets its
    own class back (in place). torch's ``remove_parametrizations`` is not used: it deletes the property from the
    parametrized class, which a copy of the module (:func:`~equislt.nn.clone_module`) may share."""
    for path, module in list(model.named_modules()):
        if not parametrize.is_parametrized(module):
            continue
        chains = module.parametrizations
        if not all(len(chain) == 1 and isinstance(chain[0], ParameterMask) for chain in chains.values()):
            raise TypeError(f"{path or type(module).__name__}: parametrizations other than equislt's masks "
                            f"({sorted(chains)}) cannot be folded")
        with torch.no_grad():
            values = {name: (getattr(module, name).detach().clone(), chain.original.requires_grad)
                      for name, chain in chains.items()}
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]
        for name, (value, grad) in values.items():
            module.register_parameter(name, nn.Parameter(value, requires_grad=grad))
    return model


def own_class(module: nn.Module) -> type:
    """The class a copy of ``module`` should have: a parametrized module's class is made per module by torch and
    changed in place by it, so a copy gets a class of its own."""
    cls = module.__class__
    if not parametrize.is_parametrized(module):
        return cls
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, cls.__bases__, namespace)
