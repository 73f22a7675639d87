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
bound a layer's operator (``Family.operator_bound`` returns ``None`` and a reason). Families whose operators
depend on the input size (IGN layers: the number of nodes) bound them for every size up to the traced one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch

__all__ = ["LayerCertificate", "Certificate", "schur_bound"]


def schur_bound(kernel: torch.Tensor) -> float:
    """Upper bound on the l2 operator norm of a (strided, zero-padded) convolution or matrix."""
    a = kernel.detach().double().abs()
    rows = a.reshape(a.shape[0], -1).sum(dim=1).max()
    cols = a.transpose(0, 1).reshape(a.shape[1], -1).sum(dim=1).max()
    return float(torch.sqrt(rows * cols))


def _quantiles(x: torch.Tensor) -> Dict[str, float]:
    x = x.detach().double().abs().reshape(-1)
    if x.numel() == 0:
        return {"median": 0.0, "q90": 0.0, "q99": 0.0, "max": 0.0}
    q = torch.quantile(x[: 2**24], torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))
    return {"median": float(q[0]), "q90": float(q[1]), "q99": float(q[2]), "max": float(x.max())}


@dataclass
class LayerCertificate:
    path: str
    n: int  # hidden copies per input field of the random block (= 2N) before widening
    width_added: int  # extra hidden copies added by the tolerance policy (all input fields together)
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
    error_slope: float  # a_i
    error_offset: float  # b_i
    lipschitz: float  # L_i of the target layer
    target_coefficients: int
    random_coefficients: int
    kept_coefficients: int
    lower_bound: float  # n_coefficients · log2(1/(2ε)), ε = max coefficient residual
    widened_fields: int = 0  # input fields that got extra copies (policy "widen")


@dataclass
class Certificate:
    eps: Optional[float]
    tol: Optional[float]
    input_radius: float
    layers: List[LayerCertificate] = field(default_factory=list)
    bound: Optional[float] = None  # sup_{‖x‖≤R} ‖f(x) − g(x)‖ bound, None if unavailable
    bound_note: str = ""
    measured_max_error: Optional[float] = None
    measured_relative_error: Optional[float] = None
    prediction_agreement: Optional[float] = None
    seconds: Dict[str, float] = field(default_factory=dict)

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

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(target_coefficients=self.target_coefficients, random_coefficients=self.random_coefficients,
                   kept_coefficients=self.kept_coefficients, lower_bound=self.lower_bound,
                   rows_over_tol=self.rows_over_tol)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Certificate":
        data = dict(data)
        for key in ("target_coefficients", "random_coefficients", "kept_coefficients", "lower_bound",
                    "rows_over_tol"):
            data.pop(key, None)
        layers = [LayerCertificate(**layer) for layer in data.pop("layers", [])]
        return cls(layers=layers, **data)

    def summary(self) -> str:
        lines = [f"{'layer':<18}{'N':>4}{'+fields':>8}{'+copies':>8}{'problems':>10}{'max|d|':>10}{'>tol':>6}{'target':>9}"
                 f"{'random':>10}{'kept':>9}{'lower bd':>10}"]
        for c in self.layers:
            lines.append(f"{c.path:<18}{c.n // 2:>4}{c.widened_fields:>8}{c.width_added:>8}{c.n_problems:>10}"
                         f"{c.coefficient_residual['max']:>10.1e}{c.rows_over_tol:>6}{c.target_coefficients:>9}"
                         f"{c.random_coefficients:>10}{c.kept_coefficients:>9}{c.lower_bound:>10.0f}")
        bound = f"{self.bound:.3g}" if self.bound is not None else f"unavailable ({self.bound_note})"
        lines.append(f"certified sup error over ||x|| <= {self.input_radius:.3g}: {bound}")
        if self.measured_max_error is not None:
            lines.append(f"measured max |f(x) - g(x)| on the given inputs: {self.measured_max_error:.2e} "
                         f"(relative {self.measured_relative_error:.2e}), prediction agreement "
                         f"{self.prediction_agreement:.4f}")
        return "\n".join(lines)


def layer_error_terms(target, solution, gain: float) -> tuple:
    """``(a_i, b_i, L_i)`` of one layer (see module docstring)."""
    family = target.family
    residuals = [solution.weight_residual_pos.to(target.alpha.dtype)]
    if not target.input_nonnegative:
        residuals.append(solution.weight_residual_neg.to(target.alpha.dtype))
    slope, note = family.operator_bound(target, residuals)
    lipschitz, note_l = family.operator_bound(target, [target.alpha])
    offset = family.bias_bound(target, solution.bias_residual.double())
    if slope is None or lipschitz is None:  # bound unavailable for this layer: say why (network_bound)
        return None, gain * offset, note or note_l
    return gain * slope, gain * offset, lipschitz


def _pool_factor(module) -> Optional[float]:
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
    for unit in trace.units:
        if previous is not None and not _connected(previous.output, unit.inputs):
            return None, f"the input of {unit.path} is not the output of {previous.path}"
        name = type(unit.module).__name__
        if unit.kind == "linear":
            a, b, lip = terms[unit.path]
            if a is None:
                return None, str(lip)
            layer = next(l for l in trace.layers if l.path == unit.path)
            bias_norm = layer.family.bias_bound(layer, layer.beta)
            err = lip * err + a * (rho + err) + b
            rho = lip * rho + bias_norm
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


def _connected(output: torch.Tensor, inputs: torch.Tensor) -> bool:
    """The next unit reads the previous output: unchanged, reshaped, or averaged over trailing dims."""
    if output.numel() == inputs.numel():
        # unchanged, or through a functional ReLU (``x = torch.relu(layer(x))``: 1-Lipschitz, maps 0 to 0)
        return (torch.equal(output.reshape(-1), inputs.reshape(-1))
                or torch.equal(torch.relu(output).reshape(-1), inputs.reshape(-1)))
    if output.dim() > inputs.dim() and output.shape[: inputs.dim()] == inputs.shape:
        mean = output.mean(dim=tuple(range(inputs.dim(), output.dim())))
        return torch.allclose(mean, inputs, atol=1e-6, rtol=1e-5)
    return False
