"""Model-level conversion: wrap supported layers with masks or supermasks, fold masks out, export.

Data flow: ``blocks`` (bases) → ``Masked*`` layers (this package) → masks → construction / search.
"""
from __future__ import annotations

import collections
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from .._compat import escnn_loaded, pyg_loaded
from .._files import load_plain
from ..basis import coefficient_names, init_std, is_coefficient_layer
from ..masks import CoefficientMask, Supermask, global_allocation, pack_all, unpack_all
from ._masked import MaskedLayer, masked_class_for
from ._parameter_masks import ParameterMask, mask_parameter, own_class, parameter_masks, unmask_parameters
from ._streams import random_stream

__all__ = [
    "GlobalTopK",
    "INCLUDES",
    "WEIGHT_INITS",
    "clone_module",
    "coefficient_layers",
    "fold",
    "freeze",
    "load_masks",
    "mask_model",
    "mask_sources",
    "masks_of",
    "refresh",
    "replace_module",
    "save_masks",
    "score_parameters",
    "supermask",
]

WEIGHT_INITS = ("signed_constant", "normal", "uniform")
INCLUDES = ("coefficients", "all")  # what supermask masks: the coefficients of known layers, or every parameter


def _masked_class(module: nn.Module):
    if escnn_loaded():
        from . import _masked_escnn  # noqa: F401  (registers the escnn masked classes)
    if pyg_loaded():
        from . import _masked_pyg  # noqa: F401  (registers MaskedPyGLinear)
    cls = masked_class_for(type(module))
    if cls is None:
        raise TypeError(f"equislt: no masked layer for {type(module).__name__}")
    return cls


def coefficient_layers(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """``(path, layer)`` for every layer of ``model`` whose coefficient basis equislt knows."""
    for path, module in model.named_modules():
        if isinstance(module, MaskedLayer) or (is_coefficient_layer(module) and _has_masked_class(module)):
            yield path, module


def _has_masked_class(module: nn.Module) -> bool:
    try:
        _masked_class(module)
        return True
    except TypeError:
        return False


def clone_module(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are new tensors (detached clones) and whose submodules are
    copies, sharing everything else: escnn field types, groups and representations, bases' index tables,
    functions. Those are immutable descriptions (escnn itself shares bases between layers), and escnn's groups on
    R³ cannot be deep-copied at all; a submodule reached under several paths stays one module. The copy keeps
    each module's train/eval mode."""
    memo = {}  # id of a module or tensor -> its copy (tied weights and shared modules stay shared)

    def tensor(t):
        if t is None:
            return None
        if id(t) not in memo:
            clone = t.detach().clone()
            memo[id(t)] = nn.Parameter(clone, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else clone
        return memo[id(t)]

    def copy(module: nn.Module) -> nn.Module:
        if id(module) in memo:
            return memo[id(module)]
        cls = own_class(module)
        new = cls.__new__(cls)
        memo[id(module)] = new
        # containers (hook tables, the non-persistent buffer set, ...) are copied so the two modules never share
        # their bookkeeping; their contents are shared
        new.__dict__.update({k: _copy_container(v) for k, v in module.__dict__.items()})
        new.__dict__["_parameters"] = {k: tensor(p) for k, p in module._parameters.items()}
        new.__dict__["_buffers"] = {k: tensor(b) for k, b in module._buffers.items()}
        new.__dict__["_modules"] = {k: None if m is None else copy(m) for k, m in module._modules.items()}
        return new

    return copy(model)


def _copy_container(value):
    return type(value)(value) if type(value) in (dict, list, set, collections.OrderedDict) else value


def replace_module(model: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``path`` in ``model`` (in place); returns the model, or ``new`` when ``path`` is the root."""
    if path == "":
        return new
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)
    return model


def _convert(model: nn.Module, make_mask: Callable[[str, nn.Module], nn.Module],
             select: Optional[Callable[[str, nn.Module], bool]]) -> nn.Module:
    for path, layer in list(coefficient_layers(model)):
        if isinstance(layer, MaskedLayer) or (select is not None and not select(path, layer)):
            continue
        wrapped = _masked_class(layer).wrap(layer, make_mask(path, layer))
        wrapped.train(layer.training)
        model = replace_module(model, path, wrapped)
    return model


def mask_model(model: nn.Module, select: Optional[Callable[[str, nn.Module], bool]] = None) -> nn.Module:
    """Wrap every supported layer (or those ``select(path, layer)`` accepts) in place with an all-ones
    :class:`~equislt.masks.CoefficientMask`. Returns the model (or the wrapped layer if ``model`` is a layer)."""
    def make(path, layer):
        return CoefficientMask({n: getattr(layer, n).shape for n in coefficient_names(layer)})

    return _convert(model, make, select)


def _redraw(layer: nn.Module, std: Dict[str, torch.Tensor], generator: torch.Generator, weight_init: str) -> None:
    with torch.no_grad():
        for name, s in std.items():
            param = getattr(layer, name)
            if weight_init == "normal":
                value = torch.randn(s.shape, generator=generator, dtype=s.dtype) * s
            elif weight_init == "uniform":
                value = (torch.rand(s.shape, generator=generator, dtype=s.dtype) * 2 - 1) * s * 3**0.5
            else:  # signed_constant: ±std (Ramanujan et al. 2020)
                value = torch.where(torch.rand(s.shape, generator=generator) < 0.5, -s, s)
            param.copy_(value.to(param.dtype))
            param.requires_grad_(False)


class GlobalTopK:
    """Forward pre-hook on the root model: one global budget ``n_keep(total, sparsity)`` split across all
    supermask tensors by global ``|score|`` rank, recomputed before every forward (so it follows training)."""

    def __init__(self, sparsity: float):
        self.sparsity = float(sparsity)

    def __call__(self, model: nn.Module, inputs=None) -> None:
        sources = _supermasks(model)
        entries = [(s, n) for s in sources for n in s.names]
        counts = global_allocation([s.scores(n) for s, n in entries], self.sparsity)
        with torch.no_grad():
            for (source, name), k in zip(entries, counts):
                source.set_keep(name, k)

    @staticmethod
    def of(model: nn.Module) -> Optional["GlobalTopK"]:
        """The global budget hook on ``model``'s root, or ``None``."""
        return next((h for h in model._forward_pre_hooks.values() if isinstance(h, GlobalTopK)), None)

    @staticmethod
    def remove(model: nn.Module) -> None:
        """Take every global budget hook off ``model``'s root (masks become per-layer again)."""
        for hook_id, hook in list(model._forward_pre_hooks.items()):
            if isinstance(hook, GlobalTopK):
                del model._forward_pre_hooks[hook_id]

    def __repr__(self) -> str:
        return f"GlobalTopK(sparsity={self.sparsity})"


def supermask(model: nn.Module, sparsity: float, scope: str = "layer", seed: int = 0,
              weight_init: str = "signed_constant",
              select: Optional[Callable[[str, nn.Module], bool]] = None, include: str = "coefficients") -> nn.Module:
    """Edge-popup swap-in: turn the supported layers of ``model`` into supermask layers, in place.

    Each layer's coefficients are re-drawn from ``seed`` (per layer path, so a ticket is regenerated from
    the seed and the architecture) with the layer family's per-coefficient init std ``s``:
    ``"signed_constant"`` (±s), ``"normal"`` (N(0, s²)) or ``"uniform"`` (same variance), then frozen. One
    score per coefficient starts at ``U(-s, s)``; the mask keeps the top ``1 - sparsity`` of ``|score|`` per
    coefficient tensor (``scope="layer"``) or over the whole model (``scope="global"``). ``include``: by default
    (``"coefficients"``) all other parameters of the model (those of layers equislt has no basis for, e.g. a
    GAT's attention vectors or a PyG convolution's own bias) are frozen dense at their initial value
    (:func:`~equislt.nn.coverage` lists them); ``"all"`` masks them too, each at its initial value, scores
    ``U(-s, s)`` with ``s = 1/√size`` (:mod:`equislt.nn._parameter_masks`: such a mask keeps equivariance, the
    parameter being shared). The optimizer should get :func:`score_parameters`.
    """
    if scope not in ("layer", "global"):
        raise ValueError(f"supermask: scope must be 'layer' or 'global', got {scope!r}")
    if include not in INCLUDES:
        raise ValueError(f"supermask: include must be one of {INCLUDES}, got {include!r}")
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"supermask: weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")

    def make(path, layer):
        std = {n: s for n, s in init_std(layer).items() if s is not None}
        _redraw(layer, std, random_stream(seed, path, "coefficients"), weight_init)
        return Supermask(std, sparsity, generator=random_stream(seed, path, "scores"))

    model = _convert(model, make, select)
    if include == "all":
        for path, module, name in _other_parameters(model):
            value = getattr(module, name)
            std = torch.full(value.shape, value.numel() ** -0.5, dtype=value.dtype)
            generator = random_stream(seed, f"{path}.{name}" if path else name, "parameter scores")
            mask_parameter(module, name, Supermask({name: std}, sparsity, generator=generator))
    for name, param in model.named_parameters():
        param.requires_grad_(name.endswith("_scores"))
    GlobalTopK.remove(model)
    if scope == "global":
        hook = GlobalTopK(sparsity)
        model.register_forward_pre_hook(hook)
        hook(model)
    return model


def _other_parameters(model: nn.Module) -> List[Tuple[str, nn.Module, str]]:
    """``(module path, module, name)`` of every parameter outside masked layers and mask sources (named_modules
    lists a module before its submodules, so skipping under a skipped path is enough)."""
    found, skipped = [], []
    for path, module in model.named_modules():
        if any(path.startswith(f"{p}.") for p in skipped):
            continue
        if isinstance(module, (MaskedLayer, Supermask, CoefficientMask, ParameterMask)):
            skipped.append(path)
            continue
        found += [(path, module, name) for name, value in module._parameters.items() if value is not None]
    return found


def mask_sources(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(path, mask source)`` of every masked layer and every masked parameter (``path.name``), in module
    order."""
    sources = [(path, layer.mask) for path, layer in coefficient_layers(model) if isinstance(layer, MaskedLayer)]
    sources += [(f"{path}.{name}" if path else name, mask.source) for path, name, mask in parameter_masks(model)]
    return sources


def _supermasks(model: nn.Module) -> List[Supermask]:
    """The supermask sources of ``model``'s masked layers and parameters, in module order (cheap: runs before
    every forward)."""
    found = [m.mask for m in model.modules() if isinstance(m, MaskedLayer) and isinstance(m.mask, Supermask)]
    return found + [m.source for m in model.modules() if isinstance(m, ParameterMask)
                    and isinstance(m.source, Supermask)]


def score_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The supermask scores of ``model``: the only parameters the search optimizer should see."""
    return [source.scores(n) for source in _supermasks(model) for n in source.names]


def refresh(model: nn.Module) -> nn.Module:
    """Bring derived state up to date before evaluation/export: global budgets and eval-mode filter caches."""
    hook = GlobalTopK.of(model)
    if hook is not None:
        hook(model)
    for _, layer in coefficient_layers(model):
        if isinstance(layer, MaskedLayer) and hasattr(layer, "refresh") and not layer.training:
            layer.refresh()
    return model


def masks_of(model: nn.Module) -> Dict[str, Dict[str, torch.Tensor]]:
    """Current bool masks ``{layer path: {coefficient name: mask}}`` of all masked layers, and
    ``{module path: {parameter name: mask}}`` of masked parameters (``include="all"``)."""
    refresh(model)
    masks = {path: {n: layer.mask.mask(n).clone() for n in layer.mask.names}
             for path, layer in coefficient_layers(model) if isinstance(layer, MaskedLayer)}
    for path, name, mask in parameter_masks(model):
        masks.setdefault(path, {})[name] = mask.source.mask(name).clone()
    return masks


def _fixed(source: nn.Module) -> CoefficientMask:
    fixed = CoefficientMask({n: source.mask(n).shape for n in source.names})
    for n in source.names:
        fixed.set(n, source.mask(n))
    return fixed


def freeze(model: nn.Module) -> nn.Module:
    """Replace every supermask by a fixed :class:`~equislt.masks.CoefficientMask` holding its current mask."""
    refresh(model)
    for _, layer in coefficient_layers(model):
        if isinstance(layer, MaskedLayer) and isinstance(layer.mask, Supermask):
            layer.mask = _fixed(layer.mask)
    for _, _, mask in parameter_masks(model):
        if isinstance(mask.source, Supermask):
            mask.source = _fixed(mask.source)
    GlobalTopK.remove(model)
    return model


def save_masks(model: nn.Module, path) -> None:
    """Save the masks alone, bit-packed (about 1 bit per coefficient)."""
    torch.save({"format": "equislt.masks/1", "masks": pack_all(masks_of(model))}, path)


def load_masks(model: nn.Module, source) -> nn.Module:
    """Load masks (a path from :func:`save_masks` or a ``{path: {name: mask}}`` dict) into ``model``.

    Unmasked supported layers are wrapped first; supermask layers are frozen to fixed masks.
    """
    if not isinstance(source, dict):
        payload = load_plain(source, "load_masks")
        if not isinstance(payload, dict) or payload.get("format") != "equislt.masks/1":
            raise ValueError(f"load_masks: {source} is not an equislt mask file")
        source = unpack_all(payload["masks"])
    paths = set(source)
    model = mask_model(model, select=lambda p, _: p in paths)
    freeze(model)
    masked = {(path, name): mask for path, name, mask in parameter_masks(model)}
    for path, named in source.items():
        try:
            layer = model.get_submodule(path) if path else model
        except AttributeError as err:
            raise ValueError(f"load_masks: the model has no layer {path!r}") from err
        for name, mask in named.items():
            if isinstance(layer, MaskedLayer) and name in layer.mask.names:
                layer.mask.set(name, mask)
            elif (path, name) in masked:
                masked[path, name].source.set(name, mask)
            elif isinstance(getattr(layer, name, None), nn.Parameter) and not isinstance(layer, MaskedLayer):
                fixed = CoefficientMask({name: getattr(layer, name).shape})
                fixed.set(name, mask)
                mask_parameter(layer, name, fixed)
            else:
                raise ValueError(f"load_masks: layer {path!r} ({type(layer).__name__}) has no maskable {name!r}")
    return model


def fold(model: nn.Module) -> nn.Module:
    """A copy of ``model`` where every masked layer is its plain base layer with the zeros folded in."""
    refresh(model)
    model = clone_module(model)
    for path, layer in list(coefficient_layers(model)):
        if isinstance(layer, MaskedLayer):
            model = replace_module(model, path, layer.unmasked())
    unmask_parameters(model)
    GlobalTopK.remove(model)
    return model
