"""Edge-popup swap-in: scores train, random coefficients stay fixed, exact sparsity, export matches."""
import copy

import pytest
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn

import equislt
from equislt.masks import Supermask
from equislt.nn import MaskedLayer, coefficient_layers, score_parameters, supermask
from equislt.testing import assert_equivariant, escnn_equivariance_error


def _escnn_model(width=4):
    gspace = gspaces.rot2dOnR2(4)
    t0 = enn.FieldType(gspace, [gspace.trivial_repr])
    t1 = enn.FieldType(gspace, [gspace.regular_repr] * width)
    t2 = enn.FieldType(gspace, [gspace.regular_repr] * 2 * width)
    return enn.SequentialModule(
        enn.R2Conv(t0, t1, 5, padding=2), enn.InnerBatchNorm(t1), enn.ReLU(t1),
        enn.R2Conv(t1, t2, 5, padding=2), enn.ReLU(t2), enn.GroupPooling(t2),
    )


def _coefficients(model):
    return {f"{p}.{n}": getattr(layer, n).detach().clone()
            for p, layer in coefficient_layers(model) for n in layer.mask.names}


def test_swap_in_escnn_sequential_replaces_layers_and_keeps_equivariance():
    model = supermask(_escnn_model(), sparsity=0.5, seed=1)
    layers = [m for _, m in coefficient_layers(model)]
    assert len(layers) == 2 and all(isinstance(m.mask, Supermask) for m in layers)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("_scores") for n in trainable)
    assert_equivariant(escnn_equivariance_error(model, spatial=9), 1e-5)


def test_swap_in_does_not_touch_the_original_model():
    original = _escnn_model()
    before = _coefficients(equislt.nn.mask_model(copy.deepcopy(original)))
    supermask(copy.deepcopy(original), sparsity=0.5)
    after = _coefficients(equislt.nn.mask_model(copy.deepcopy(original)))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_same_seed_same_network_different_seed_different():
    a = _coefficients(supermask(_escnn_model(), 0.5, seed=3))
    b = _coefficients(supermask(_escnn_model(), 0.5, seed=3))
    c = _coefficients(supermask(_escnn_model(), 0.5, seed=4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 1.0])
def test_per_layer_sparsity_is_exact(sparsity):
    model = supermask(_escnn_model(), sparsity=sparsity, scope="layer")
    for _, layer in coefficient_layers(model):
        for name in layer.mask.names:
            n = getattr(layer, name).numel()
            assert int(layer.mask.mask(name).sum()) == n - round(sparsity * n)


def test_global_sparsity_is_exact_and_uneven_across_layers():
    model = supermask(_escnn_model(), sparsity=0.7, scope="global", weight_init="normal")
    masks = equislt.nn.masks_of(model)
    total = sum(m.numel() for named in masks.values() for m in named.values())
    kept = sum(int(m.sum()) for named in masks.values() for m in named.values())
    assert kept == total - round(0.7 * total)
    fractions = [float(m.float().mean()) for named in masks.values() for m in named.values()]
    assert max(fractions) - min(fractions) > 0.01  # a global budget is not a per-layer one


def test_scores_are_scaled_by_each_coefficients_init_std():
    model = supermask(_escnn_model(), sparsity=0.5)
    layer = [m for _, m in coefficient_layers(model)][1]
    std = equislt.basis.init_std(layer)["weights"]
    scores = layer.mask.scores("weights")
    assert torch.all(scores.abs() <= std + 1e-7)
    assert torch.allclose(layer.weights.abs(), std)  # signed constant init: ±std


def _train_scores(model, x, y, steps=30, lr=0.1):
    optimizer = torch.optim.Adam(score_parameters(model), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_torch_sequential_scores_train_coefficients_bitwise_fixed(scope):
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 6, 6), torch.randint(0, 3, (64,))
    model = supermask(nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)),
                      sparsity=0.5, scope=scope)
    coefficients = _coefficients(model)
    masks_before = equislt.nn.masks_of(model)
    scores_before = [s.detach().clone() for s in score_parameters(model)]
    _train_scores(model, x, y)
    assert all(torch.equal(coefficients[k], v) for k, v in _coefficients(model).items())
    assert any(not torch.equal(a, b) for a, b in zip(scores_before, score_parameters(model)))
    masks_after = equislt.nn.masks_of(model)
    assert any(not torch.equal(masks_before[p][n], masks_after[p][n]) for p in masks_before for n in masks_before[p])


def _digits_loaders():
    from equislt.data import rotated_digits

    train, test = rotated_digits("train", seed=0), rotated_digits("test", seed=0)
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    return loader, test.tensors


def _torch_sequential():
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


@pytest.mark.parametrize("family", ["escnn", "torch"])
def test_supermask_learns_rotated_digits_and_exports(family):
    """Acceptance: scores train, ticket accuracy clearly above chance (0.1) after a short run, random
    coefficients bitwise unchanged, folded/exported model equal to the ticket (≤ 1e-5)."""
    from equislt.models import steerable_cnn
    from equislt.search import train_scores

    loader, (xt, yt) = _digits_loaders()
    model = steerable_cnn("c4", channels=(12, 24)) if family == "escnn" else _torch_sequential()
    model = supermask(model, sparsity=0.5, seed=0)
    coefficients = _coefficients(model)
    train_scores(model, loader, epochs=3, lr=0.01, optimizer="adam", progress=False)
    model.eval()
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    assert accuracy > 0.4
    assert all(torch.equal(coefficients[k], v) for k, v in _coefficients(model).items())
    folded = equislt.nn.fold(model)
    assert not any(isinstance(m, MaskedLayer) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(xt[:64]), model(xt[:64]), atol=1e-5)
        if family == "escnn":  # escnn's export() of the SequentialModule: plain torch, same features
            plain = equislt.nn.export(model.features)
            assert not any(isinstance(m, enn.EquivariantModule) for m in plain.modules())
            reference = model.features(enn.GeometricTensor(xt[:64], model.features.in_type)).tensor
            assert torch.allclose(plain(xt[:64]), reference, atol=1e-5)
