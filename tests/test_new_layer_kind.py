"""The recipe of docs/architecture.md, followed for a layer kind equislt does not ship: a cyclic convolution.

``CyclicLinear`` maps ``[B, C_in, n]`` to ``[B, C_out, n]`` by ``y[o, i] = Σ_c Σ_k θ[o, c, k] x[c, (i − k) mod n]``:
it commutes with cyclic shifts of the last axis (the group C_n acting on regular fields). Three pieces make it a
first-class layer: a basis adapter (``coefficient_blocks``), a ``Masked*`` class, and one ``Family``. Nothing in
equislt is changed; the test then masks it, constructs a ticket for a target made of it, and checks the ticket.
"""
import math

import pytest
import torch
from torch import nn

import equislt
from equislt.basis import Block
from equislt.construct import LiftMix, construct
from equislt.construct.families import Family, family_of
from equislt.nn import MaskedLayer
from equislt.testing import assert_equivariant, equivariance_error


class CyclicLinear(nn.Module):
    """Cyclic convolution over the last axis (see the module docstring); each channel is a regular C_n field."""

    def __init__(self, in_channels: int, out_channels: int, n: int, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.n = in_channels, out_channels, n
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, n) / math.sqrt(in_channels * n))
        self.bias = nn.Parameter(0.1 * torch.randn(out_channels)) if bias else None

    # 1. the basis adapter: θ[out_fields, in_fields, n_basis] over the shift matrices B_k = P^k
    def coefficient_blocks(self):
        shifts = torch.stack([torch.roll(torch.eye(self.n), k, dims=0) for k in range(self.n)])  # B_k[i, j]
        index = torch.arange(self.weight.numel()).view(self.out_channels, self.in_channels, self.n)
        out = [Block("weight", index, shifts, tuple(range(self.out_channels)), tuple(range(self.in_channels)),
                     "regular", "regular")]
        if self.bias is not None:
            out.append(Block("bias", torch.arange(self.out_channels).view(-1, 1, 1), torch.ones(1, self.n, 1),
                             tuple(range(self.out_channels)), (), "regular", "constant"))
        return out

    def coefficient_init_std(self):
        std = {"weight": torch.full_like(self.weight, (self.in_channels * self.n) ** -0.5)}
        if self.bias is not None:
            std["bias"] = torch.full_like(self.bias, (self.in_channels * self.n) ** -0.5)
        return std

    def coefficient(self, name):  # read coefficients through this method: the masked class overrides it
        return getattr(self, name)

    def dense(self, weight=None):
        """``[C_out·n, C_in·n]``: the operator as a matrix."""
        weight = self.coefficient("weight") if weight is None else weight.reshape(self.weight.shape)
        i = torch.arange(self.n)
        circulant = weight[:, :, (i[:, None] - i[None, :]) % self.n]  # [o, c, i, j]
        return circulant.permute(0, 2, 1, 3).reshape(self.out_channels * self.n, self.in_channels * self.n)

    def forward(self, x):
        y = (x.reshape(x.shape[0], -1) @ self.dense().T).view(x.shape[0], self.out_channels, self.n)
        bias = self.coefficient("bias")
        return y if bias is None else y + bias[None, :, None]


# 2. the masked class: registered for CyclicLinear by its base_class
class MaskedCyclicLinear(MaskedLayer, CyclicLinear):
    base_class = CyclicLinear


# 3. the family: how the construction builds a lift and a mix of this kind, and its dense operator
class CyclicFamily(Family):
    layer_types = (CyclicLinear,)

    def inputs(self, layer):
        return layer.in_channels

    def hidden(self, lift):
        return lift.out_channels

    def out_channels(self, layer):
        return layer.out_channels

    def lift(self, layer, widths):  # its basis holds the identity (k = 0); fields are permutation representations
        return CyclicLinear(layer.in_channels, int(sum(widths)), layer.n, bias=False)

    def like(self, layer, inputs):
        return CyclicLinear(int(inputs), layer.out_channels, layer.n, bias=False)

    def bias_expansion(self, layer):
        return torch.eye(layer.out_channels)

    def bias_coefficients(self, layer):
        return torch.zeros(layer.out_channels) if layer.bias is None else layer.bias.detach().clone()

    def dense(self, layer, coefficients):
        return layer.dense(coefficients)


def _target(n=6):
    torch.manual_seed(0)
    return nn.Sequential(CyclicLinear(2, 4, n), nn.ReLU(), CyclicLinear(4, 3, n)).eval()


def _shifts(n=6):
    return [(f"roll{s}", (lambda x, s=s: torch.roll(x, s, dims=-1)), (lambda y, s=s: torch.roll(y, s, dims=-1)))
            for s in range(1, n)]


def test_the_new_kind_is_a_coefficient_layer_that_masks_and_stays_equivariant():
    model = _target()
    assert isinstance(family_of(model[0]), CyclicFamily)
    assert [p for p, _ in equislt.nn.coefficient_layers(model)] == ["0", "2"]
    equislt.nn.supermask(model, sparsity=0.5, seed=0)
    assert isinstance(model[0], MaskedCyclicLinear) and len(equislt.nn.score_parameters(model)) == 4
    assert_equivariant(equivariance_error(model, torch.randn(8, 2, 6), _shifts()), 1e-5)


def test_a_constructed_ticket_of_the_new_kind(tmp_path):
    target = _target()
    x = torch.randn(256, 2, 6)
    radius = float(x.reshape(len(x), -1).norm(dim=1).max())
    ticket = construct(target, x[:128], tol=1e-4, seed=3, input_radius=radius, progress=False)
    cert = ticket.certificate
    assert isinstance(ticket.network[0], LiftMix) and isinstance(ticket.network[0].lift, MaskedCyclicLinear)
    assert cert.rows_over_tol == 0 and cert.bound is not None
    assert [c.input_nonnegative for c in cert.layers] == [False, True]
    with torch.no_grad():
        f, g = target(x[128:]), ticket(x[128:])
    assert float((f - g).abs().max()) <= cert.bound and float((f - g).abs().max()) < 1e-2
    assert_equivariant(equivariance_error(ticket.network, x[:16], _shifts()), 1e-5)  # exact C_n, both modes
    ticket.save(tmp_path / "t.pt")
    again = equislt.Ticket.load(tmp_path / "t.pt", target=_target())
    with torch.no_grad():
        assert torch.equal(again(x[128:]), g)
        assert torch.allclose(ticket.compile()(x[128:]), g, atol=1e-5)


def test_a_family_for_an_unknown_layer_is_none_and_construct_names_the_layer():
    class Opaque(nn.Module):
        def forward(self, x):
            return x * x

    assert family_of(nn.Tanh()) is None
    with pytest.raises(ValueError, match=r"layer 1 \(Opaque\) is not supported"):
        construct(nn.Sequential(CyclicLinear(2, 2, 4), Opaque()), torch.randn(4, 2, 4), progress=False)
