"""Masked escnn layers (``R2Conv``, ``R3Conv``, ``escnn.nn.Linear``).

escnn expands ``weights`` into a dense filter in ``expand_parameters()``: every train-mode forward, and
once on ``.eval()``, after which eval-mode forwards use the cached buffer. Here:

* ``expand_parameters()`` expands the *masked* coefficients;
* the cache (``filter``/``matrix`` and ``expanded_bias``) is a non-persistent buffer computed under
  ``no_grad`` (so ``deepcopy`` works in eval mode and ``state_dict`` keys do not depend on the mode);
* an eval-mode forward re-expands whenever a coefficient, mask or score tensor changed since the cache
  was built (tracked through tensor version counters), so a mask changed in eval mode takes effect at once.
"""
from __future__ import annotations

import torch
from torch import nn

from .._compat import import_escnn
from ._masked import MaskedLayer
from ._orbit_linear import OrbitLinear

escnn = import_escnn()

__all__ = ["MaskedR2Conv", "MaskedR3Conv", "MaskedEscnnLinear", "MaskedOrbitLinear"]


class _MaskedEscnnLayer(MaskedLayer):
    _cache_name = "filter"

    def _after_wrap(self) -> None:
        for name in (self._cache_name, "expanded_bias"):
            value = getattr(self, name, None)
            self._buffers.pop(name, None)
            self.__dict__.pop(name, None)
            self.register_buffer(name, None if value is None else value.detach().clone(), persistent=False)
        self._cache_key = None

    def expand_parameters(self):
        dense = self.basisexpansion(self.coefficient("weights"))
        dense = dense.reshape(getattr(self, self._cache_name).shape)
        bias = None if self.bias is None else self.bias_expansion @ self.coefficient("bias")
        return dense, bias

    def _state_key(self):
        tensors = [t for t in (self.weights, self.bias) if t is not None]
        return tuple((t.data_ptr(), t._version) for t in tensors) + self.mask.state_key()

    def refresh(self, force: bool = False) -> None:
        """Re-expand the cached eval-mode filter if coefficients or masks changed (or ``force``)."""
        key = self._state_key()
        if force or key != self._cache_key:
            with torch.no_grad():
                dense, bias = self.expand_parameters()
            setattr(self, self._cache_name, dense)
            self.expanded_bias = bias
            self._cache_key = key

    def train(self, mode: bool = True):
        # skip escnn's train(), which registers an autograd-attached cache as a persistent buffer
        nn.Module.train(self, mode)
        if not mode:
            self.refresh()
        return self

    def forward(self, input):
        if not self.training:
            self.refresh()
        return super().forward(input)

    def unmasked(self):
        plain = super().unmasked()
        plain.__dict__.pop("_cache_key", None)
        with torch.no_grad():
            dense, bias = self.expand_parameters()
        plain.register_buffer(self._cache_name, dense)
        if bias is not None:
            plain.register_buffer("expanded_bias", bias)
        return plain


class MaskedR2Conv(_MaskedEscnnLayer, escnn.nn.R2Conv):
    base_class = escnn.nn.R2Conv


class MaskedR3Conv(_MaskedEscnnLayer, escnn.nn.R3Conv):
    base_class = escnn.nn.R3Conv


class MaskedEscnnLinear(_MaskedEscnnLayer, escnn.nn.Linear):
    base_class = escnn.nn.Linear
    _cache_name = "matrix"


class MaskedOrbitLinear(MaskedLayer, OrbitLinear):
    base_class = OrbitLinear
