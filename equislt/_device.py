"""Where equislt computes: one reading of a ``device`` option for the search, the construction and the demo."""
from __future__ import annotations

import os
import re
from typing import Union

import torch

__all__ = ["DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(spec: Union[str, torch.device, None] = "auto", where: str = "device") -> torch.device:
    """The ``torch.device`` that ``spec`` names: ``"auto"`` (a CUDA GPU if there is one, then Apple's MPS, else the
    CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. Under ``torchrun`` a bare ``"cuda"`` (or ``"auto"``) is
    the process's ``cuda:LOCAL_RANK``. A device this machine lacks is an error naming ``where``."""
    spec = "auto" if spec is None else str(spec)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", spec):
        raise ValueError(f"{where}: {spec!r} is not a device; use one of {', '.join(DEVICE_CHOICES)}")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{where}: {spec!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
        index = int(spec.partition(":")[2] or local_rank)
        if index >= torch.cuda.device_count():
            raise ValueError(f"{where}: {spec!r} asked for, but there are {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device(f"cuda:{index}")
    if spec == "mps" and not _mps_available():
        raise ValueError(f"{where}: 'mps' asked for, but this machine or torch build has no MPS backend")
    return torch.device(spec)
