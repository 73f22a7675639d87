"""Orbit bases of permutation representations and the OrbitLinear layer."""
import itertools

import pytest
import torch
from escnn import gspaces
from escnn import nn as enn

import equislt
from equislt.basis import orbit_basis, permutation_action
from equislt.nn import OrbitLinear
from equislt.testing import assert_equivariant, escnn_equivariance_error


def _check_basis(basis, rho_out, rho_in, group):
    assert set(basis.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(basis.sum(0) == 1)  # disjoint supports covering all pairs
    for g in group.elements:
        ro = torch.as_tensor(rho_out(g), dtype=basis.dtype)
        ri = torch.as_tensor(rho_in(g), dtype=basis.dtype)
        for b in basis:
            assert torch.allclose(ro @ b, b @ ri)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_cyclic_regular_has_n_orbits_and_identity(n):
    group = gspaces.rot2dOnR2(n).fibergroup
    rho = group.regular_representation
    perm = permutation_action(rho)
    basis = orbit_basis(perm, perm)
    assert basis.shape[0] == n
    assert torch.equal(basis[0], torch.eye(n))
    _check_basis(basis, rho, rho, group)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_dihedral_regular_has_2n_orbits(n):
    group = gspaces.flipRot2dOnR2(n).fibergroup
    rho = group.regular_representation
    basis = orbit_basis(permutation_action(rho), permutation_action(rho))
    assert basis.shape[0] == 2 * n
    assert torch.equal(basis[0], torch.eye(2 * n))
    _check_basis(basis, rho, rho, group)


def test_quotient_and_trivial_fields():
    group = gspaces.flipRot2dOnR2(4).fibergroup
    quotient = group.quotient_representation((0, 1))  # D4 / flips: 4 cosets
    trivial, regular = group.trivial_representation, group.regular_representation
    for rho_out, rho_in in itertools.product([quotient, trivial, regular], repeat=2):
        basis = orbit_basis(permutation_action(rho_out), permutation_action(rho_in))
        _check_basis(basis, rho_out, rho_in, group)
        # orbit count = dim Hom_G = <χ_out, χ_in> (Burnside for permutation characters)
        fixed = sum(torch.as_tensor(rho_out(g)).trace() * torch.as_tensor(rho_in(g)).trace() for g in group.elements)
        assert basis.shape[0] == round(float(fixed) / group.order())
    q = permutation_action(quotient)
    assert torch.equal(orbit_basis(q, q)[0], torch.eye(quotient.size))


def test_non_permutation_representation_is_rejected_with_reason():
    group = gspaces.rot2dOnR2(8).fibergroup
    with pytest.raises(ValueError, match="not a permutation representation"):
        permutation_action(group.irrep(1))


@pytest.mark.parametrize("gspace", [gspaces.rot2dOnR2(4), gspaces.flipRot2dOnR2(4),
                                    gspaces.no_base_space(gspaces.rot2dOnR2(5).fibergroup)])
def test_orbit_linear_equivariant_masked_and_exported(gspace):
    in_type = enn.FieldType(gspace, [gspace.regular_repr, gspace.trivial_repr])
    out_type = enn.FieldType(gspace, [gspace.regular_repr] * 2 + [gspace.trivial_repr])
    layer = OrbitLinear(in_type, out_type)
    with torch.no_grad():
        layer.bias.normal_()
    assert_equivariant(escnn_equivariance_error(layer), 1e-5)
    masked = equislt.nn.mask_model(layer)
    masked.mask.set("weights", torch.rand(layer.weights.shape) < 0.5)
    assert_equivariant(escnn_equivariance_error(masked), 1e-5)
    shape = (2, in_type.size) + (5,) * gspace.dimensionality
    x = enn.GeometricTensor(torch.randn(*shape), in_type)
    assert torch.allclose(masked.export()(x.tensor), masked(x).tensor, atol=1e-6)
    rr = [b for b in equislt.blocks(layer) if b.name == "weights[regular->regular]"][0]
    assert rr.shape == (2, 1, gspace.fibergroup.order())


def test_orbit_linear_identity_coefficient_is_identity_map():
    g = gspaces.rot2dOnR2(4)
    t = enn.FieldType(g, [g.regular_repr] * 3)
    layer = OrbitLinear(t, t, bias=False)
    block = equislt.blocks(layer)[0]
    theta = torch.zeros(block.shape)
    theta[torch.arange(3), torch.arange(3), 0] = 1.0
    block.put(layer.weights, theta)
    x = enn.GeometricTensor(torch.randn(2, t.size, 3, 3), t)
    assert torch.allclose(layer(x).tensor, x.tensor)


def test_orbit_linear_rejects_irrep_fields():
    g = gspaces.rot2dOnR2(4)
    with pytest.raises(ValueError, match="irrep_1.*not a permutation representation"):
        OrbitLinear(enn.FieldType(g, [g.irrep(1)]), enn.FieldType(g, [g.regular_repr]))
