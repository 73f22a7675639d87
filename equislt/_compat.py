"""Optional dependencies, imported lazily and checked loudly."""
from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["as_input_of", "check_materialised", "escnn_loaded", "import_escnn", "is_geometric", "pyg_linear_class", "pyg_loaded",
           "tensor_of"]


def escnn_loaded() -> bool:
    """True if escnn was imported by someone (then its modules may appear in a model)."""
    return "escnn" in sys.modules


def import_escnn() -> ModuleType:
    """Import escnn and check it is usable.

    escnn wraps its sub-imports in ``try/except ImportError: pass``: under numpy >= 2 its dependency
    lie_learn fails to load and ``import escnn`` *succeeds* while ``escnn.nn`` is missing. We turn that
    silent breakage into an error that says what to do.
    """
    try:
        import escnn
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "equislt: escnn is not installed. Install the extra: pip install 'equislt[escnn]' "
            "(escnn needs a Fortran compiler for py3nj, e.g. apt-get install gfortran)."
        ) from err
    missing = [name for name in ("nn", "gspaces", "group") if not hasattr(escnn, name)]
    if missing:
        import numpy

        raise ImportError(
            f"equislt: escnn is installed but escnn.{', escnn.'.join(missing)} failed to import. "
            f"escnn hides this error; the usual cause is numpy {numpy.__version__}: its dependency lie_learn "
            "needs numpy<2. Fix: pip install 'numpy<2' (and scikit-learn<1.7)."
        )
    return escnn


def is_geometric(x) -> bool:
    """True for an escnn ``GeometricTensor`` (checked without importing escnn)."""
    return hasattr(x, "tensor") and hasattr(x, "type")


def as_input_of(module, tensor):
    """``tensor`` as ``module`` takes it: an escnn ``GeometricTensor`` of its input type, or itself."""
    if hasattr(module, "in_type") and not is_geometric(tensor):
        from escnn import nn as enn
        return enn.GeometricTensor(tensor, module.in_type)
    return tensor


def tensor_of(x):
    """The plain tensor of ``x``: ``x.tensor`` for a ``GeometricTensor``, ``x`` itself otherwise."""
    return x.tensor if is_geometric(x) else x


def pyg_loaded() -> bool:
    """True if torch_geometric was imported by someone (then its layers may appear in a model)."""
    return "torch_geometric" in sys.modules


def pyg_linear_class():
    """PyG's ``torch_geometric.nn.dense.linear.Linear`` if torch_geometric is loaded, else ``None``."""
    if not pyg_loaded():
        return None
    from torch_geometric.nn.dense.linear import Linear

    return Linear


def check_materialised(linear, where: str) -> None:
    """Raise a clear error for a lazy PyG ``Linear(in_channels=-1)`` whose weights do not exist yet."""
    from torch import nn

    if isinstance(getattr(linear, "weight", None), nn.parameter.UninitializedParameter):
        raise ValueError(f"{where}: PyG Linear(in_channels=-1, out_channels={linear.out_channels}) is lazy and not "
                         "initialised yet; run one forward pass (or give in_channels) first")
