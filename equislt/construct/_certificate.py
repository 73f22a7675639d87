r"""The certificate: what the construction achieved, and the bound it implies.

Per layer ``i`` (normalised by its gain ``c_i``), with residual coefficients ``d^±`` and bias residual ``δ``:

.. math:: \|g_i(x) - f_i(x)\| \le c_i \big(\|[D^+, -D^-]\|\,\|x\| + \|E δ\|\sqrt{P_i}\big) =: a_i \|x\| + b_i

where ``D^±`` are the dense operators of the residual coefficients in the target layer's own basis (the
negative half is absent when the layer input is non-negative), ``E`` the bias expansion and ``P_i`` the
number of output positions. Operator norms are bounded by the Schur test
``‖K‖ ≤ sqrt(max row abs-sum · max column abs-sum)`` over channels and kernel offsets (valid for any stride
and zero padding). Along the network (execution order), for inputs with ``‖x‖ ≤ R``:

.. math:: e_{i} \le L_i e_{i-1} + a_i(ρ_{i-1} + e_{i-1}) + b_i,\qquad ρ_i \le L_i ρ_{i-1} + \|Eβ_i\|\sqrt{P_i}

with ``L_i`` the Schur bound of the target layer; ReLU (modules or a functional ``torch.relu`` between two
units, recognised on the trace), group pooling, flattening and spatial means are 1-Lipschitz; a pooling window of size ``k`` and stride ``s`` contributes ``sqrt(Π ceil(k/s))``. The bound is
reported as unavailable when the network is not a chain the certificate can follow, or when a family cannot
give a layer's dense operator (``Family.operator_kernels`` returns ``None`` and a reason). Families whose
operators depend on the input size (IGN layers: the number of nodes) give one kernel per size up to the traced
one, and the bound is the largest.

The certificate also counts: target, random and kept coefficients per layer beside the lower bound
``n_coefficients · log2(1/(2ε))`` that any random network prunable to every such target must meet
(Pensia et al. 2020, Ferbach et al. 2023), with ``ε`` the largest coefficient residual.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from .._compat import tensor_of
from ._trace import connected

__all__ = ["Certificate", "LayerCertificate", "layer_error_terms", "model_outputs", "network_bound", "schur_bound",
           "timed"]


def schur_bound(kernel: torch.Tensor) -> float:
    """Upper bound on the l2 operator norm of a (strided, zero-padded) convolution or matrix:
    ``sqrt(max row abs-sum · max column abs-sum)`` over channels and kernel offsets."""
    a = kernel.detach().double().abs()
    rows = a.reshape(a.shape[0], -1).sum(dim=1).max()
    cols = a.transpose(0, 1).reshape(a.shape[1], -1).sum(dim=1).max()
    return float(torch.sqrt(rows * cols))


def quantiles(x: torch.Tensor) -> Dict[str, float]:
    """Median, 90% and 99% quantiles and maximum of ``|x|`` (quantiles over the first 2^24 entries)."""
    x = x.detach().double().abs().reshape(-1)
    if x.numel() == 0:
        return {"median": 0.0, "q90": 0.0, "q99": 0.0, "max": 0.0}
    q = torch.quantile(x[: 2**24], torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))
    return {"median": float(q[0]), "q90": float(q[1]), "q99": float(q[2]), "max": float(x.max())}


def lower_bound(n_coefficients: int, max_residual: float) -> float:
    """``n · log2(1/(2ε))`` random coefficients (0 when ``ε ≥ 1/2``: nothing to resolve)."""
    return n_coefficients * math.log2(1.0 / (2 * max(max_residual, 1e-12))) if max_residual < 0.5 else 0.0


@contextmanager
def timed(seconds: Dict[str, float], phase: str) -> Iterator[None]:
    """Add the wall time of the ``with`` body to ``seconds[phase]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


@dataclass
class LayerCertificate:
    """What the construction achieved for one layer (see the module docstring)."""

    path: str
    copies: int  # hidden copies per input field of the random block (= 2N) before widening
    copies_added: int  # extra hidden copies added by the tolerance policy (all input fields together)
    pool_positive_mean: float
    pool_negative_mean: float
    bias_pool: int
    gain: float
    input_nonnegative: bool
    folded_norm: Optional[str]
    n_problems: int
    rows_over_tol: int
    coefficient_residual: Dict[str, float]
    bias_residual: Dict[str, float]
    error_slope: Optional[float]  # a_i
    error_offset: float  # b_i
    lipschitz: Optional[float]  # L_i of the target layer
    target_coefficients: int
    random_coefficients: int
    kept_coefficients: int
    lower_bound: float  # n_coefficients · log2(1/(2ε)), ε = max coefficient residual
    widened_fields: int = 0  # input fields that got extra copies (policy "widen")
    fit_relative_error: Optional[float] = None  # neuron subnetworks: relative error of the layer's fit (traced)
    tol: Optional[float] = None  # the layer's per-coefficient tolerance (None in files of earlier releases)
    silent_rows: int = 0  # problems left empty: their feature is zero on every traced input (prune_silent)

    @property
    def n(self) -> int:
        """``N``: summands per pool before widening."""
        return self.copies // 2

    @classmethod
    def of(cls, layer, plan, solution, counts, terms: tuple, tol: float) -> "LayerCertificate":
        """The certificate of a solved layer: ``counts`` of its block's masks, ``terms`` its
        :func:`layer_error_terms`."""
        residuals = solution.weight_residuals(layer.input_nonnegative)
        max_residual = float(residuals.abs().max()) if residuals.numel() else 0.0
        neurons = solution.fit_relative_error is not None  # whole hidden fields: no coefficient residuals
        n_target = layer.alpha.numel() + layer.beta.numel()
        slope, offset, lipschitz = terms
        return cls(
            path=plan.path, copies=plan.copies, copies_added=plan.copies_added, widened_fields=len(plan.extra),
            pool_positive_mean=solution.pool_sizes["positive_mean"],
            pool_negative_mean=solution.pool_sizes["negative_mean"], bias_pool=plan.bias_pool, gain=plan.gain,
            input_nonnegative=layer.input_nonnegative, folded_norm=layer.folded_norm,
            n_problems=solution.n_problems, rows_over_tol=solution.rows_over(tol), silent_rows=solution.silent_rows,
            coefficient_residual={} if neurons else quantiles(residuals),
            bias_residual=quantiles(solution.bias_residual), fit_relative_error=solution.fit_relative_error, tol=tol,
            error_slope=slope, error_offset=offset, lipschitz=lipschitz if slope is not None else None,
            target_coefficients=n_target, random_coefficients=counts.total, kept_coefficients=counts.kept,
            lower_bound=lower_bound(n_target, max_residual) if plan.gain and not neurons else 0.0)

    @classmethod
    def from_dict(cls, data: dict) -> "LayerCertificate":
        data = dict(data)
        if "n" in data:  # equislt.ticket/2 called the copies "n" and the added copies "width_added"
            data["copies"] = data.pop("n")
        if "width_added" in data:
            data["copies_added"] = data.pop("width_added")
        return cls(**data)


@dataclass
class Certificate:
    """The construction's certificate: per-layer records, the certified bound on ``sup ‖f(x) − g(x)‖`` over
    ``‖x‖ ≤ input_radius`` (``None``, with ``bound_note``, when unavailable), the measured error and prediction
    agreement on the given inputs, and the seconds each phase took."""

    eps: Optional[float]
    tol: Optional[float]
    input_radius: float
    layers: List[LayerCertificate] = field(default_factory=list)
    bound: Optional[float] = None
    bound_note: str = ""
    measured_max_error: Optional[float] = None
    measured_relative_error: Optional[float] = None
    prediction_agreement: Optional[float] = None
    seconds: Dict[str, float] = field(default_factory=dict)
    measured_on: str = "literal"  # the network the measured numbers come from: "compact" or "literal"
    assumptions: List[str] = field(default_factory=list)  # what the bound takes for granted beyond the code
    method: str = "subset_sum"  # how the masks were chosen: "subset_sum" or "malach" (construct's method)
    feedback: bool = False  # the problems were solved with error feedback (construct's feedback=True)
    prune_silent: bool = False  # features silent on the traced inputs kept nothing (construct's prune_silent)

    @property
    def target_coefficients(self) -> int:
        return sum(layer.target_coefficients for layer in self.layers)

    @property
    def random_coefficients(self) -> int:
        return sum(layer.random_coefficients for layer in self.layers)

    @property
    def kept_coefficients(self) -> int:
        return sum(layer.kept_coefficients for layer in self.layers)

    @property
    def lower_bound(self) -> float:
        return sum(layer.lower_bound for layer in self.layers)

    @property
    def rows_over_tol(self) -> int:
        return sum(layer.rows_over_tol for layer in self.layers)

    @property
    def silent_rows(self) -> int:
        return sum(layer.silent_rows for layer in self.layers)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(target_coefficients=self.target_coefficients, random_coefficients=self.random_coefficients,
                   kept_coefficients=self.kept_coefficients, lower_bound=self.lower_bound,
                   rows_over_tol=self.rows_over_tol, silent_rows=self.silent_rows)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Certificate":
        data = dict(data)
        for key in ("target_coefficients", "random_coefficients", "kept_coefficients", "lower_bound",
                    "rows_over_tol", "silent_rows"):
            data.pop(key, None)
        layers = [LayerCertificate.from_dict(layer) for layer in data.pop("layers", [])]
        return cls(layers=layers, **data)

    @torch.no_grad()
    def measure(self, target, network, inputs) -> None:
        """Record the largest output error, the relative error and the prediction agreement of ``network``
        against ``target`` on ``inputs`` (both run in eval mode; their modes are restored)."""
        reference, approx = model_outputs(target, inputs), model_outputs(network, inputs)
        diff = (reference - approx).abs()
        self.measured_max_error = float(diff.max())
        self.measured_relative_error = float(diff.max() / reference.abs().max().clamp(min=1e-12))
        if reference.dim() == 2 and reference.shape[1] > 1:
            self.prediction_agreement = float((reference.argmax(1) == approx.argmax(1)).float().mean())
        else:
            self.prediction_agreement = 1.0

    def summary(self) -> str:
        lines = [f"{'layer':<18}{'N':>4}{'+fields':>8}{'+copies':>8}{'problems':>10}{'max|d|':>10}{'>tol':>6}{'target':>9}"
                 f"{'random':>10}{'kept':>9}{'lower bd':>10}"]
        for c in self.layers:
            lines.append(f"{c.path:<18}{c.n:>4}{c.widened_fields:>8}{c.copies_added:>8}{c.n_problems:>10}"
                         f"{c.coefficient_residual.get('max', math.nan):>10.1e}{c.rows_over_tol:>6}{c.target_coefficients:>9}"
                         f"{c.random_coefficients:>10}{c.kept_coefficients:>9}{c.lower_bound:>10.0f}")
        if self.silent_rows:
            lines.append(f"{self.silent_rows} problems of features silent on the traced inputs kept nothing "
                         "(prune_silent; not in >tol, their residuals are in max|d| and the bound)")
        bound = f"{self.bound:.3g}" if self.bound is not None else f"unavailable ({self.bound_note})"
        lines.append(f"certified sup error over ||x|| <= {self.input_radius:.3g}: {bound}")
        lines += [f"  assuming {assumption}" for assumption in self.assumptions]
        if self.measured_max_error is not None:
            lines.append(f"measured max |f(x) - g(x)| on the given inputs ({self.measured_on} network): "
                         f"{self.measured_max_error:.2e} (relative {self.measured_relative_error:.2e}), prediction "
                         f"agreement {self.prediction_agreement:.4f}")
        return "\n".join(lines)


def model_outputs(model, inputs) -> torch.Tensor:
    """``model(inputs)`` (or ``model(*inputs)``) as a tensor, in eval mode (the mode is restored)."""
    was = model.training
    model.eval()
    try:
        out = model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)
    finally:
        model.train(was)
    return tensor_of(out)


def operator_bound(target, coefficients: List[torch.Tensor]) -> Tuple[Optional[float], str]:
    """``(bound, note)``: Schur bound of the operator of the coefficient tensors in ``target``'s basis
    (:meth:`Family.operator_kernels <equislt.construct.families.Family.operator_kernels>`)."""
    kernels, note = target.family.operator_kernels(target, coefficients)
    if kernels is None:
        return None, note
    return max(schur_bound(kernel) for kernel in kernels), ""


def layer_error_terms(target, solution, gain: float) -> tuple:
    """``(a_i, b_i, L_i)`` of one layer (see module docstring); ``a_i = None`` (and ``L_i`` the reason) when
    the layer's operator cannot be bounded."""
    if solution.fit_relative_error is not None:
        return None, gain * target.family.bias_norm(target, solution.bias_residual.double()), \
            "a neuron subnetwork has no coefficient-wise residual to bound (method='malach_neurons')"
    residuals = [solution.weight_residual_pos.to(target.alpha.dtype)]
    if not target.input_nonnegative:
        residuals.append(solution.weight_residual_neg.to(target.alpha.dtype))
    slope, note = operator_bound(target, residuals)
    lipschitz, note_l = operator_bound(target, [target.alpha])
    offset = target.family.bias_norm(target, solution.bias_residual.double())
    if slope is None or lipschitz is None:  # bound unavailable for this layer: say why (network_bound)
        return None, gain * offset, note or note_l
    return gain * slope, gain * offset, lipschitz


def _pool_factor(module) -> Optional[float]:
    """``sqrt(Π ceil(k/s))`` for a pooling window ``k`` and stride ``s`` (``None``: no bound known, e.g. the
    antialiased pools, which blur first)."""
    if "Antialiased" in type(module).__name__:
        return None
    kernel = getattr(module, "kernel_size", None)
    stride = getattr(module, "stride", None) or kernel
    if kernel is None:
        return None
    dims = 2 if not hasattr(module, "d") else module.d
    ks = kernel if isinstance(kernel, (tuple, list)) else (kernel,) * dims
    ss = stride if isinstance(stride, (tuple, list)) else (stride,) * len(ks)
    return math.sqrt(math.prod(math.ceil(k / s) for k, s in zip(ks, ss)))


def network_bound(trace, terms: Dict[str, tuple], radius: float):
    """Propagate the per-layer terms along the traced execution order; ``(bound, note)``."""
    rho, err = radius, 0.0
    previous = None
    layers = {layer.path: layer for layer in trace.layers}
    for unit in trace.units:
        if previous is not None and not connected(previous.output, unit.inputs):
            return None, f"the input of {unit.path} is not the output of {previous.path}"
        name = type(unit.module).__name__
        if unit.kind == "linear":
            a, b, lip = terms[unit.path]
            if a is None:
                return None, str(lip)
            layer = layers[unit.path]
            err = lip * err + a * (rho + err) + b
            rho = lip * rho + layer.family.bias_norm(layer, layer.beta)
        elif unit.kind == "norm":
            pass  # folded into the preceding linear layer
        elif "Adaptive" in name:
            size = getattr(unit.module, "output_size", None)
            if size not in (1, (1,), (1, 1), (1, 1, 1)):
                return None, f"no Lipschitz bound for {unit.path} ({name} to {size})"
        elif "Pool" in name and name != "GroupPooling":
            factor = _pool_factor(unit.module)
            if factor is None:
                return None, f"no Lipschitz bound for {unit.path} ({name})"
            rho, err = rho * factor, err * factor
        previous = unit
    return err, ""
