"""Optional dependencies, imported lazily and checked loudly."""
from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["import_escnn", "escnn_loaded", "is_geometric", "tensor_of"]


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


def tensor_of(x):
    """The plain tensor of ``x``: ``x.tensor`` for a ``GeometricTensor``, ``x`` itself otherwise."""
    return x.tensor if is_geometric(x) else x
