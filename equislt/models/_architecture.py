"""Architectures: how to rebuild a model from plain data, a registered factory name and its keyword arguments.

Tickets and model checkpoints store their network's :class:`Architecture` instead of pickled modules (escnn
modules cannot be pickled) and instead of an import path: a file only *names* a factory, and only factories
registered in code (:func:`register_model`) are ever called, so loading a file never chooses which code runs.
equislt's own models are registered as ``"equislt.steerable_cnn"``, ``"equislt.plain_cnn"``, ``"equislt.gin"``,
``"equislt.gcn"`` and ``"equislt.ign"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional

from torch import nn

__all__ = ["Architecture", "register_model", "registered_models"]

_FACTORIES: Dict[str, Callable[..., nn.Module]] = {}

# import paths that files of earlier releases recorded, and the registered names that replace them
_LEGACY_FACTORIES = {"equislt.models:steerable_cnn": "equislt.steerable_cnn",
                     "equislt.models:plain_cnn": "equislt.plain_cnn"}
_LEGACY_SEARCH_FACTORY = "equislt.search._registry:build_model"  # kwargs {"name": short name, "kwargs": {...}}


def register_model(name: str, factory: Optional[Callable[..., nn.Module]] = None):
    """Register ``factory`` (a callable returning an ``nn.Module`` from keyword arguments) under ``name``, so that
    tickets and checkpoints of its models can be rebuilt from a file. Use it as a decorator,
    ``@equislt.register_model("mylab.cnn")``, or call it, ``register_model("mylab.cnn", make_cnn)``.
    Registering another factory under a taken name is an error; registering the same one again is allowed."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model: the name must be a non-empty string, got {name!r}")

    def register(function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(function):
            raise TypeError(f"register_model({name!r}): expected a callable, got {type(function).__name__}")
        known = _FACTORIES.get(name)
        if known is not None and known is not function:
            raise ValueError(f"register_model: {name!r} is already registered to {known.__module__}."
                             f"{known.__qualname__}")
        _FACTORIES[name] = function
        return function

    return register if factory is None else register(factory)


def registered_models() -> Dict[str, Callable[..., nn.Module]]:
    """The registered factories by name (a copy)."""
    return dict(_FACTORIES)


@dataclass(frozen=True)
class Architecture:
    """A model as data: ``factory`` (a name given to :func:`register_model`) called with ``kwargs``."""

    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., nn.Module]:
        """The registered factory (an error that says how to register it if there is none)."""
        function = _FACTORIES.get(self.factory)
        if function is None:
            raise ValueError(f"architecture factory {self.factory!r} is not registered: equislt only calls factories "
                             f"registered in code. Register it before loading, "
                             f"equislt.register_model({self.factory!r})(your_factory), or pass target=<a model with "
                             f"this architecture> (registered: {sorted(_FACTORIES)})")
        return function

    def build(self) -> nn.Module:
        """Call the registered factory; the model records this architecture (``model.equislt_architecture``)."""
        function = self.resolve()
        try:
            model = function(**dict(self.kwargs))
        except TypeError as err:
            raise ValueError(f"architecture {self.factory!r}: {err}") from err
        model.equislt_architecture = self
        return model

    def to_dict(self) -> dict:
        return {"factory": self.factory, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "architecture") -> "Architecture":
        """Read a stored architecture (also the import-path form of earlier releases, for equislt's own models)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("factory"), str):
            raise ValueError(f"{where}: expected {{'factory': name, 'kwargs': {{...}}}}, got {data!r}")
        factory, kwargs = data["factory"], data.get("kwargs", {})
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"{where}: 'kwargs' must be a mapping, got {type(kwargs).__name__}")
        if factory == _LEGACY_SEARCH_FACTORY:
            name, kwargs = kwargs.get("name"), kwargs.get("kwargs", {})
            factory = f"equislt.{name}"
        factory = _LEGACY_FACTORIES.get(factory, factory)
        return cls(factory, dict(kwargs))

    @classmethod
    def of(cls, model: nn.Module) -> Optional["Architecture"]:
        """The architecture ``model`` records (``model.equislt_architecture``), or ``None``."""
        spec = getattr(model, "equislt_architecture", None)
        if spec is None or isinstance(spec, Architecture):
            return spec
        return cls.from_dict(spec, where=f"{type(model).__name__}.equislt_architecture")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"Architecture({self.factory}({args}))"
