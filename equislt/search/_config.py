"""``SearchConfig``: every knob of a supermask search, in one plain dataclass (no global ``args``).

Naming is explicit on purpose (edge-popup code uses ``prune_rate`` for both the kept and the pruned fraction):
``sparsity`` is always the fraction of random coefficients **pruned**, everywhere in equislt.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

from ..models import model_factory
from ..nn import INCLUDES, WEIGHT_INITS

__all__ = ["SearchConfig", "load_config"]

SCOPES = ("layer", "global")
OPTIMIZERS = ("sgd", "adam")
RAMP_SHAPES = ("linear", "cubic")

# fields that do not change the result of a run: a checkpoint may be resumed with other values for them
RUNTIME_FIELDS = ("out", "progress", "resume", "checkpoint_every", "log_every", "keep_checkpoints", "device")
AMP_CHOICES = (None, "bf16")


@dataclass
class SearchConfig:
    """One supermask search (edge-popup on coefficient masks).

    Model and data
        ``model``/``model_kwargs``: a name from :data:`equislt.search.MODELS` (``steerable_cnn``, ``plain_cnn``,
        ``gin``, ``gcn``, ``ign``), your own model as ``"package.module:factory"`` (imported; the current directory
        is searched too), a name registered with :func:`equislt.register_model`, or the factory itself (Python
        only; stored by its registered name), and its factory arguments (the data set's ``num_classes``,
        ``in_channels``, ``input_size`` / ``out_channels`` are filled in when missing and the factory takes them).
        Image models are called ``model(images)``; graph models ``model(x, edge_index, batch)`` (any of
        ``edge_attr``, ``edge_weight``, ``pos`` too, by name); node models ``model(x, edge_index)``.
        ``data``/``data_kwargs``: a name from :data:`equislt.search.DATASETS` (``rotated_digits``,
        ``graph_atlas``, ``karate_club``) and its options. ``data_path``: your own data instead, its kind read from what is there (:func:`equislt.search.task_from_path`): images (``.npz``, a
        directory of MNIST-style IDX files, a class-per-folder tree), graphs (a ``torch.save``-d list of PyG
        ``Data``, a TUDataset directory), one graph for node classification (a ``Data`` file with
        ``train_mask``/``test_mask``, a Planetoid directory). The data options, the same for every source:
        ``train_limit``, ``test_limit``, ``rotations``, ``test_fraction``, ``seed`` (and ``trust_pickles`` for
        Planetoid); :data:`equislt.search.DATA_OPTIONS`.
    Mask
        ``sparsity``: fraction pruned (0 ≤ s < 1). ``scope``: ``"layer"`` (top-k per coefficient tensor) or
        ``"global"`` (one threshold over the whole model, recomputed before every forward). ``ramp``: the
        scheduled sparsity rises from ``ramp_start`` to ``sparsity`` over the first ``ramp`` fraction of steps
        (``ramp_shape`` linear or cubic as in Zhu & Gupta 2017); this prevents layer collapse under a global
        budget. ``weight_init``: how the frozen random coefficients are drawn (per coefficient, scaled by the
        family's init std; scores start at ``U(-s, s)`` with the same per-coefficient std ``s``).
        ``include``: ``"coefficients"`` (default: the coefficients of the layers equislt has a basis for; every
        other parameter stays dense, frozen at its random value, and the run's log lists them) or ``"all"``
        (those parameters are masked too: a GAT's attention vectors, conv-level biases, batch-norm affine
        parameters; equivariance is kept, each being shared). ``first_layer_dense`` / ``last_layer_dense``: leave the first / last coefficient layer unmasked (its
        random coefficients are kept, still frozen). ``biprop``: kept coefficients become ``sign(θ)·s·α``
        with one ``α`` per tensor (Diffenderfer & Kailkhura 2021; see ``equislt.search._biprop``).
    Optimisation (scores only)
        ``epochs``, ``batch_size`` (global batch, split over the processes), ``lr``, ``optimizer`` (sgd/adam),
        ``momentum``, ``weight_decay``, ``cosine`` (cosine-annealed lr over all steps). The defaults (30 epochs,
        Adam, lr 0.01, cosine, sparsity 0.5) are those with which a C4 steerable CNN four times as wide as a
        trained one matches it (``benchmarks/paper/width.py``): search a random network about 4× the width of
        the model you want to match; at 2× the C4 tickets are six points short.
        ``recalibrate_bn``: re-estimate batch-norm statistics with the current mask before each evaluation
        and at the end (statistics gathered while the mask changed do not describe the ticket).
    Run
        ``device``: ``"auto"`` (a CUDA GPU, then MPS, else the CPU; under ``torchrun`` each process its
        ``cuda:LOCAL_RANK``), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; a run may resume on another device.
        ``amp``: ``"bf16"`` runs the forward passes in bfloat16 autocast (``None``: float32).
        ``seed`` (every random draw), ``out`` (directory: metrics.jsonl, checkpoint.pt, ticket.pt,
        result.json, plots), ``checkpoint_every`` (steps; 0: only at the end of each epoch), ``resume``
        (continue from ``out/checkpoint.pt`` when it exists), ``log_every`` (steps), ``progress`` (tqdm).
    """

    model: Union[str, Callable[..., Any]] = "steerable_cnn"
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    data: str = "rotated_digits"
    data_kwargs: Dict[str, Any] = field(default_factory=dict)
    data_path: Optional[str] = None
    sparsity: float = 0.5
    scope: str = "layer"
    ramp: float = 0.0
    ramp_start: float = 0.0
    ramp_shape: str = "linear"
    weight_init: str = "signed_constant"
    include: str = "coefficients"
    first_layer_dense: bool = False
    last_layer_dense: bool = False
    biprop: bool = False
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    cosine: bool = True
    recalibrate_bn: bool = True
    seed: int = 0
    out: Optional[str] = "runs/search"
    checkpoint_every: int = 0
    keep_checkpoints: bool = True
    resume: bool = True
    log_every: int = 1
    progress: bool = True
    device: str = "auto"
    amp: Optional[str] = None

    def __post_init__(self) -> None:
        def bad(name, why):
            raise ValueError(f"SearchConfig.{name}: {why}, got {getattr(self, name)!r}")

        if callable(self.model):  # a factory passed in Python: kept by its registered name (JSON-able config)
            self.model = model_factory(self.model, "SearchConfig.model")
        elif not isinstance(self.model, str) or not self.model:
            bad("model", "must be a model name, 'package.module:factory' or a factory callable")

        if not isinstance(self.sparsity, (int, float)) or not 0.0 <= self.sparsity < 1.0:
            bad("sparsity", "the fraction pruned must be in [0, 1)")
        if not isinstance(self.ramp_start, (int, float)) or not 0.0 <= self.ramp_start <= self.sparsity:
            bad("ramp_start", "the starting sparsity must be in [0, sparsity]")
        if not isinstance(self.ramp, (int, float)) or not 0.0 <= self.ramp <= 1.0:
            bad("ramp", "the ramp is a fraction of all steps, in [0, 1]")
        for name, allowed in (("scope", SCOPES), ("optimizer", OPTIMIZERS), ("ramp_shape", RAMP_SHAPES),
                              ("weight_init", WEIGHT_INITS), ("include", INCLUDES)):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {allowed}")
        for name in ("epochs", "batch_size", "checkpoint_every", "log_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "batch_size" else 0):
                bad(name, "must be a non-negative int" if name != "batch_size" else "must be a positive int")
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad(name, "must be a finite number")
        if not self.lr > 0:
            bad("lr", "must be positive")
        if not 0.0 <= self.momentum < 1.0:
            bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0:
            bad("weight_decay", "must be non-negative")
        if self.amp not in AMP_CHOICES:
            bad("amp", f"must be one of {AMP_CHOICES}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            bad("device", "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        for name in ("model_kwargs", "data_kwargs"):
            if not isinstance(getattr(self, name), dict):
                bad(name, "must be a dict")

    def as_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def result_fields(self) -> Dict[str, Any]:
        """The fields that determine the result (what a resumed run must agree on)."""
        return {k: v for k, v in self.as_dict().items() if k not in RUNTIME_FIELDS}

    def replace(self, **changes) -> "SearchConfig":
        return SearchConfig(**{**asdict(self), **changes})

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"SearchConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


MAX_CONFIG_BYTES = 2**20


def load_config(path) -> SearchConfig:
    """A :class:`SearchConfig` from a JSON file, or a YAML file when PyYAML is installed (plain YAML: tags, anchors
    and aliases are refused, and a config is at most 1 MiB, so that a small file cannot expand to a huge one)."""
    path = Path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: a config is at most {MAX_CONFIG_BYTES} bytes, this one has {path.stat().st_size}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise ValueError(f"{path}: reading YAML configs needs PyYAML (pip install pyyaml); "
                             "or write the same keys as JSON") from err
        try:
            tokens = list(yaml.scan(text))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        if any(isinstance(t, (yaml.AnchorToken, yaml.AliasToken)) for t in tokens):
            raise ValueError(f"{path}: YAML anchors and aliases (&name, *name) are not accepted in a config: write "
                             "the values out")
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not a plain YAML config ({str(err).splitlines()[0]})") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a mapping of SearchConfig fields")
    return SearchConfig.from_dict(values)
