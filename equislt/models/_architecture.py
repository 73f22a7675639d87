"""Architectures: how to rebuild a model from plain data, a registered factory name and its keyword arguments.

Tickets and model checkpoints store their network's :class:`Architecture` instead of pickled modules (escnn
modules cannot be pickled) and instead of an import path: a file only *names* a factory, and only factories
registered in code (:func:`register_model`) are ever called, so loading a file never chooses which code runs.
equislt's own models are registered as ``"equislt.steerable_cnn"``, ``"equislt.plain_cnn"``, ``"equislt.gin"``,
``"equislt.gcn"`` and ``"equislt.ign"``.

A user's own model enters by name (:func:`model_factory`): a registered name, an import path
``"package.module:factory"`` that *the user* typed (a config, a CLI flag; it is imported and registered under that
path), or the factory itself. A file that records an import path is only imported on request (``trust=True``).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Union

from torch import nn

__all__ = ["Architecture", "import_factory", "model_factory", "register_model", "registered_models"]

_FACTORIES: Dict[str, Callable[..., nn.Module]] = {}

# import paths that files of earlier releases recorded, and the registered names that replace them
_LEGACY_FACTORIES = {"equislt.models:steerable_cnn": "equislt.steerable_cnn",
                     "equislt.models:plain_cnn": "equislt.plain_cnn"}
_LEGACY_SEARCH_FACTORY = "equislt.search._registry:build_model"  # kwargs {"name": short name, "kwargs": {...}}


def register_model(name: str, factory: Optional[Callable[..., nn.Module]] = None):
    """Register ``factory`` (a callable returning an ``nn.Module`` from keyword arguments) under ``name``, so that
    tickets and checkpoints of its models can be rebuilt from a file. Use it as a decorator,
    ``@equislt.register_model("mylab.cnn")``, or call it, ``register_model("mylab.cnn", make_cnn)``. What it
    returns is the factory recording the architecture: a model made by calling it directly knows its
    :class:`Architecture` (its keyword arguments as given), so a ticket constructed from it reloads without
    ``target=``. Registering another factory under a taken name is an error; registering the same one again is
    allowed."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model: the name must be a non-empty string, got {name!r}")

    def register(function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(function):
            raise TypeError(f"register_model({name!r}): expected a callable, got {type(function).__name__}")
        function = _original(function)
        known = _FACTORIES.get(name)
        if known is not None and known is not function:
            raise ValueError(f"register_model: {name!r} is already registered to {known.__module__}."
                             f"{known.__qualname__}")
        _FACTORIES[name] = function
        return _recording(name, function)

    return register if factory is None else register(factory)


def _original(function: Callable) -> Callable:
    """The factory a :func:`register_model` wrapper calls (``function`` itself if it is none)."""
    return getattr(function, "_equislt_factory", function)


def _recording(name: str, function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``function`` that records ``Architecture(name, its arguments)`` on the model it returns."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def build(*args, **kwargs):
        model = function(*args, **kwargs)
        if isinstance(model, nn.Module) and getattr(model, "equislt_architecture", None) is None:
            arguments = signature.bind(*args, **kwargs).arguments
            kinds = {signature.parameters[k].kind for k in arguments}
            if inspect.Parameter.VAR_POSITIONAL not in kinds:  # *args cannot be replayed as keywords
                keywords = {k: v for k, v in arguments.items()
                            if signature.parameters[k].kind != inspect.Parameter.VAR_KEYWORD}
                for k, v in arguments.items():
                    if signature.parameters[k].kind == inspect.Parameter.VAR_KEYWORD:
                        keywords.update(v)
                model.equislt_architecture = Architecture(name, keywords)
        return model

    build._equislt_factory = function
    return build


def registered_models() -> Dict[str, Callable[..., nn.Module]]:
    """The registered factories by name (a copy)."""
    return dict(_FACTORIES)


def import_factory(path: str, where: str = "model") -> Callable[..., nn.Module]:
    """Import the factory ``"package.module:name"`` (``name`` may be dotted: ``module:Class.build``). The current
    directory is searched too, as ``python -m`` would, so ``--model mymodels:make`` finds ``./mymodels.py``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute or not all(part.isidentifier() for part in
                                                   module_name.split(".") + attribute.split(".")):
        raise ValueError(f"{where}: {path!r} is not an import path 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name.split(".")[0] or os.getcwd() in sys.path:
            raise ValueError(f"{where}: cannot import {module_name!r} for {path!r}: {err}") from None
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as again:
            raise ValueError(f"{where}: cannot import {module_name!r} for {path!r} (searched the current directory "
                             f"too): {again}") from None
    function: Any = module
    for part in attribute.split("."):
        if not hasattr(function, part):
            raise ValueError(f"{where}: module {module_name!r} has no {attribute!r}")
        function = getattr(function, part)
    if not callable(function):
        raise ValueError(f"{where}: {path!r} is a {type(function).__name__}, not a callable that returns a model")
    return function


def _name_of(function: Callable[..., nn.Module]) -> Optional[str]:
    function = _original(function)
    return next((name for name, known in _FACTORIES.items() if known is function), None)


def model_factory(spec: Union[str, Callable[..., nn.Module]], where: str = "model") -> str:
    """The registered name of the factory ``spec`` names, registering it if needed: a registered name (kept), an
    import path ``"package.module:factory"`` (imported; recorded under the name its function is registered with,
    else under the path), or a callable (its registered name, else ``"module:qualname"``; a notebook that
    redefines a function re-registers it)."""
    if callable(spec):
        name = _name_of(spec)
        if name is None:
            name = f"{spec.__module__}:{spec.__qualname__}"
            _FACTORIES[name] = _original(spec)  # a function defined again under the same name replaces the earlier
        return name
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{where}: expected a registered model name, 'package.module:factory' or a callable, "
                         f"got {spec!r}")
    if spec in _FACTORIES:
        return spec
    if ":" not in spec:
        raise ValueError(f"{where}: {spec!r} is not a registered model (registered: {sorted(_FACTORIES)}); name your "
                         "own factory as 'package.module:factory' or register it with equislt.register_model")
    function = import_factory(spec, where)
    name = _name_of(function)
    if name is None:
        name = spec
        _FACTORIES[name] = function
    return name


@dataclass(frozen=True)
class Architecture:
    """A model as data: ``factory`` (a name given to :func:`register_model`) called with ``kwargs``."""

    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, trust: bool = False) -> Callable[..., nn.Module]:
        """The registered factory (an error that says how to register it if there is none). ``trust=True`` imports
        a factory recorded as an import path ``"package.module:factory"`` (this runs that module's code: only for
        files you trust)."""
        function = _FACTORIES.get(self.factory)
        if function is None and trust and ":" in self.factory:
            function = _FACTORIES[self.factory] = import_factory(self.factory, "architecture")
        if function is None:
            imported = (", or let equislt import it with trust=True (--trust-target on the command line) if you "
                        "trust the file" if ":" in self.factory else "")
            raise ValueError(f"architecture factory {self.factory!r} is not registered: equislt only calls factories "
                             f"registered in code. Register it before loading, "
                             f"equislt.register_model({self.factory!r})(your_factory){imported}, or pass "
                             f"target=<a model with this architecture> (registered: {sorted(_FACTORIES)})")
        return function

    def build(self, trust: bool = False) -> nn.Module:
        """Call the registered factory; the model records this architecture (``model.equislt_architecture``)."""
        function = self.resolve(trust)
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
