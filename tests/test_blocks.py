"""The coefficient view: layout of escnn's flat weights, torch layers, bias blocks."""
import pytest
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn

import equislt


def _mixed_c4_conv():
    g = gspaces.rot2dOnR2(4)
    in_type = enn.FieldType(g, [g.trivial_repr] * 2 + [g.regular_repr])
    out_type = enn.FieldType(g, [g.regular_repr] * 2 + [g.trivial_repr])
    return enn.R2Conv(in_type, out_type, 3, padding=1)


def test_escnn_blocks_cover_weights_once_and_are_views():
    conv = _mixed_c4_conv()
    blocks = equislt.blocks(conv)
    weights = [b for b in blocks if b.tensor == "weights"]
    covered = torch.cat([b.index.reshape(-1) for b in weights]).sort().values
    assert torch.equal(covered, torch.arange(conv.weights.numel()))
    assert [b.name for b in weights] == sorted(b.name for b in weights)  # sorted by representation pair
    view = weights[0].take(conv.weights)
    assert view.data_ptr() == conv.weights[weights[0].index.min()].data_ptr()  # a real view
    biases = [b for b in blocks if b.is_bias]
    assert sum(b.numel for b in biases) == conv.bias.numel()


def test_escnn_block_coefficient_touches_only_its_field_pair():
    """A one-hot coefficient at block position (a, b, k) expands to B_k placed at fields (a, b) only."""
    conv = _mixed_c4_conv()
    for block in equislt.blocks(conv):
        if block.is_bias:
            continue
        o, i, k = (s - 1 for s in block.shape)
        with torch.no_grad():
            conv.weights.zero_()
            conv.weights[block.index[o, i, k]] = 1.0
        filt, _ = conv.expand_parameters()
        a, b = block.out_fields[o], block.in_fields[i]
        rows = slice(int(conv.out_type.fields_start[a]), int(conv.out_type.fields_end[a]))
        cols = slice(int(conv.in_type.fields_start[b]), int(conv.in_type.fields_end[b]))
        assert torch.allclose(filt[rows, cols], block.basis[k], atol=1e-6)
        outside = filt.clone()
        outside[rows, cols] = 0
        assert outside.abs().max() == 0


def test_escnn_bias_block_basis_matches_expansion():
    conv = _mixed_c4_conv()
    with torch.no_grad():
        conv.bias.copy_(torch.randn_like(conv.bias))
    _, expanded = conv.expand_parameters()
    for block in equislt.blocks(conv):
        if not block.is_bias:
            continue
        theta = block.take(conv.bias)
        for o, field in enumerate(block.out_fields):
            rows = slice(int(conv.out_type.fields_start[field]), int(conv.out_type.fields_end[field]))
            expected = torch.einsum("k,kd->d", theta[o, 0], block.basis[..., 0])
            assert torch.allclose(expanded[rows], expected, atol=1e-6)


@pytest.mark.parametrize("layer", [nn.Linear(5, 3), nn.Conv1d(4, 2, 3), nn.Conv2d(3, 4, (3, 2)),
                                   nn.Conv3d(2, 2, 3, bias=False)])
def test_dense_blocks(layer):
    blocks = equislt.blocks(layer)
    weight = blocks[0]
    assert weight.shape == (layer.weight.shape[0], layer.weight.shape[1], layer.weight[0, 0].numel())
    recon = torch.einsum("oik,kab...->oi...", weight.take(layer.weight), weight.basis)
    assert torch.allclose(recon.reshape(layer.weight.shape), layer.weight)
    assert len(blocks) == (2 if layer.bias is not None else 1)


def test_unsupported_layer_error_names_it():
    with pytest.raises(TypeError, match="BatchNorm1d has no coefficient basis adapter"):
        equislt.blocks(nn.BatchNorm1d(3))


def test_init_std_varies_inside_an_escnn_layer():
    conv = _mixed_c4_conv()
    std = equislt.basis.init_std(conv)["weights"]
    assert std.shape == conv.weights.shape
    assert len(torch.unique(std)) > 1
