"""What a ticket file promises about itself, and how ``Ticket.load`` holds it to that.

A ticket saves, besides its data, ``checks``: the exact set of masked tensors with each shape and count of kept
coefficients, a digest of the masks and one of the recipe (method, seed, architecture, plans), the shapes of the
extra state (batch-norm statistics), and a fingerprint: the outputs of the network on a few probe inputs saved
with it. Loading checks the packed masks' sizes before anything is unpacked, then everything else; a missing,
extra, truncated or flipped mask, a changed seed or recipe, or a wrong ``target=`` model is an error that says
which, never a silently different network.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .._compat import import_escnn, is_geometric, tensor_of
from ..masks import mask_digest, unpack

__all__ = ["MAX_PROBE_BYTES", "file_checks", "fingerprint", "recipe_digest", "unpack_checked", "verify_checks",
           "verify_fingerprint"]

MAX_PROBE_BYTES = 2**20  # probe inputs saved with a ticket (larger inputs: no fingerprint)
Masks = Dict[str, Dict[str, torch.Tensor]]


def recipe_digest(method: str, seed: int, architecture: Optional[dict], recipe: dict) -> str:
    """SHA-256 of what regenerates the network, in a canonical JSON form."""
    text = json.dumps({"method": method, "seed": int(seed), "architecture": architecture, "recipe": recipe},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _shape(value, where: str):
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, int) and d >= 0 for d in value):
        raise ValueError(f"{where}: the mask shape must be a list of non-negative ints, got {value!r}")
    return tuple(value)


def unpack_checked(packed: Any, where: str) -> Masks:
    """Unpack a ticket's bit-packed masks after checking each one's shape against its bytes (so that a crafted
    shape cannot make loading allocate more than the file holds)."""
    if not isinstance(packed, dict):
        raise ValueError(f"{where}: masks must be a dict of layer paths, got {type(packed).__name__}")
    out = {}
    for path, named in packed.items():
        if not isinstance(named, dict):
            raise ValueError(f"{where}: masks of {path!r} must be a dict of tensor names")
        out[path] = {}
        for name, entry in named.items():
            label = f"{where}: mask {path}.{name}"
            if not isinstance(entry, dict) or not torch.is_tensor(entry.get("bits")):
                raise ValueError(f"{label}: expected {{'shape', 'bits'}}")
            shape, bits = _shape(entry.get("shape"), label), entry["bits"]
            count = math.prod(shape)
            if bits.dtype != torch.uint8 or bits.dim() != 1 or bits.numel() != (count + 7) // 8:
                raise ValueError(f"{label}: {bits.numel()} bytes cannot hold a mask of shape {list(shape)} "
                                 f"({(count + 7) // 8} bytes needed): truncated or damaged")
            out[path][name] = unpack({"shape": shape, "bits": bits})
    return out


def _state_shapes(state: Dict[str, Any]) -> Dict[str, Any]:
    return {key: (list(value.shape) if torch.is_tensor(value) else _state_shapes(value))
            for key, value in state.items() if torch.is_tensor(value) or isinstance(value, dict)}


@torch.no_grad()
def fingerprint(network: nn.Module, inputs: Optional[Sequence[Any]]) -> Optional[dict]:
    """``{"inputs", "geometric", "outputs"}``: ``network``'s outputs (eval mode) on a few probe inputs (escnn
    ``GeometricTensor`` s are saved as their tensors and wrapped in the network's ``in_type`` again); ``None``: no
    probe, or probe inputs over ``MAX_PROBE_BYTES``."""
    if not inputs:
        return None
    geometric = [is_geometric(x) for x in inputs]
    tensors = [tensor_of(x).detach().clone() if torch.is_tensor(tensor_of(x)) else x for x in inputs]
    if sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t)) > MAX_PROBE_BYTES:
        return None
    probe = {"inputs": tensors, "geometric": geometric}
    probe["outputs"] = _run(network, probe)
    return probe


def _run(network: nn.Module, probe: dict) -> torch.Tensor:
    inputs = list(probe["inputs"])
    for i, geometric in enumerate(probe.get("geometric") or []):
        if geometric:
            inputs[i] = import_escnn().nn.GeometricTensor(inputs[i], network.in_type)
    was = network.training
    network.eval()
    try:
        out = network(*inputs)
    finally:
        network.train(was)
    return tensor_of(out).detach().clone()


def file_checks(method: str, seed: int, architecture: Optional[dict], recipe: dict, masks: Masks,
                state: Dict[str, Any], probe: Optional[dict]) -> dict:
    """The ``checks`` entry of a ticket file (see the module docstring)."""
    return {
        "masks": {path: {name: [list(m.shape), int(m.sum())] for name, m in named.items()}
                  for path, named in masks.items()},
        "mask_digest": mask_digest(masks),
        "recipe_digest": recipe_digest(method, seed, architecture, recipe),
        "state": _state_shapes(state),
        "probe": probe,
    }


def verify_checks(checks: Any, payload: dict, masks: Masks, where: str) -> None:
    """Compare a ticket's data with the ``checks`` saved beside it (everything but the fingerprint)."""
    if not isinstance(checks, dict):
        raise ValueError(f"{where}: 'checks' must be a dict, got {type(checks).__name__}")
    expected = checks.get("masks")
    found = {path: {name: [list(m.shape), int(m.sum())] for name, m in named.items()} for path, named in masks.items()}
    if expected != found:
        missing = sorted(f"{p}.{n}" for p, named in (expected or {}).items() for n in named if n not in found.get(p, {}))
        extra = sorted(f"{p}.{n}" for p, named in found.items() for n in named if n not in (expected or {}).get(p, {}))
        changed = sorted(f"{p}.{n}" for p, named in found.items() for n in named
                         if n in (expected or {}).get(p, {}) and expected[p][n] != named[n])
        raise ValueError(f"{where}: the masks are not those saved (missing: {missing or 'none'}; extra: "
                         f"{extra or 'none'}; other shape or count: {changed or 'none'})")
    if checks.get("mask_digest") != mask_digest(masks):
        raise ValueError(f"{where}: the masks' digest differs from the one saved: the masks were changed or damaged")
    digest = recipe_digest(payload["method"], payload["seed"], payload.get("architecture"), payload["recipe"])
    if checks.get("recipe_digest") != digest:
        raise ValueError(f"{where}: the recipe (method, seed, architecture or plans) differs from the one saved")
    if checks.get("state") != _state_shapes(payload.get("state") or {}):
        raise ValueError(f"{where}: the saved state (batch-norm statistics) does not have the shapes saved with it")


def verify_fingerprint(network: nn.Module, probe: Optional[dict], where: str) -> None:
    """Run ``network`` on the saved probe inputs and compare with the saved outputs."""
    if probe is None:
        return
    try:
        outputs = _run(network, probe)
    except Exception as err:  # the network does not even take the probe: not the network that was saved
        raise ValueError(f"{where}: the regenerated network cannot run the saved probe inputs ({type(err).__name__}: "
                         f"{err}); a wrong target= model?") from None
    saved = probe["outputs"]
    scale = float(saved.abs().max()) if saved.numel() else 0.0
    if outputs.shape != saved.shape or not torch.allclose(outputs, saved, rtol=1e-4, atol=1e-4 * scale + 1e-7):
        difference = float((outputs - saved).abs().max()) if outputs.shape == saved.shape else np.nan
        raise ValueError(f"{where}: the regenerated network's outputs on the saved probe inputs differ from those "
                         f"saved (max difference {difference:.3g} against outputs of size {scale:.3g}): a wrong "
                         "target= model, a changed seed or damaged masks")
