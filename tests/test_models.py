import pytest
import torch

from equislt.models import (
    PlainCNN,
    SteerableCNN,
    accuracy,
    c4_steerable_cnn,
    plain_cnn,
    steerable_cnn,
    train_classifier,
)

import escnn  # noqa: F401
import escnn.nn as enn


def _rot(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.rot90(x, k, dims=(-2, -1))


def _assert_same_logits(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@pytest.fixture(scope="module")
def c4_model():
    torch.manual_seed(0)
    return steerable_cnn("c4")


@pytest.fixture(scope="module")
def d4_model():
    torch.manual_seed(0)
    return steerable_cnn("d4", channels=(4, 8))


def test_structure_and_output_shape(c4_model):
    assert isinstance(c4_model, SteerableCNN) and isinstance(c4_model.features, enn.SequentialModule)
    assert isinstance(c4_model.head, torch.nn.Linear) and c4_model.head.in_features == 16
    assert len(c4_model.in_type) == 1 and c4_model.in_type.size == 1
    assert any(isinstance(m, enn.GroupPooling) for m in c4_model.features.modules())
    c4_model.eval()
    assert c4_model(torch.randn(3, 1, 17, 17)).shape == (3, 10)


def test_width_invariant_flag_and_plain_cnn():
    wide = c4_steerable_cnn(channels=(4, 6), width=2)
    assert wide.head.in_features == 12
    equi = steerable_cnn("c4", channels=(4, 6), invariant=False, num_classes=3)
    assert equi.head.in_features == 6 * 4
    assert equi(torch.randn(2, 1, 17, 17)).shape == (2, 3)
    plain = plain_cnn(channels=(4, 8), width=4)
    assert isinstance(plain, PlainCNN) and plain.head.in_features == 32
    assert plain(torch.randn(2, 1, 17, 17)).shape == (2, 10)


@pytest.mark.parametrize("train_mode", [False, True])
def test_c4_invariance_to_90_degree_rotations(c4_model, train_mode):
    x = torch.randn(8, 1, 17, 17)
    c4_model.train(train_mode)  # train mode: InnerBatchNorm uses each batch's own statistics
    with torch.no_grad():
        ref = c4_model(x)
        for k in (1, 2, 3):
            _assert_same_logits(c4_model(_rot(x, k)), ref)


@pytest.mark.parametrize("train_mode", [False, True])
def test_d4_invariance_to_rotations_and_flips(d4_model, train_mode):
    x = torch.randn(6, 1, 17, 17)
    d4_model.train(train_mode)
    with torch.no_grad():
        ref = d4_model(x)
        for k in range(4):
            _assert_same_logits(d4_model(_rot(x.flip(-1), k)), ref)
            if k:
                _assert_same_logits(d4_model(_rot(x, k)), ref)


def test_invariance_on_even_input_size():
    torch.manual_seed(1)
    model = steerable_cnn("c4", channels=(4, 4, 4), input_size=16).eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        _assert_same_logits(model(_rot(x, 1)), model(x))


def test_plain_cnn_is_not_invariant():
    model = plain_cnn().eval()
    x = torch.randn(4, 1, 17, 17)
    with torch.no_grad():
        assert not torch.allclose(model(_rot(x, 1)), model(x), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(group="so2"), "group"),
        (dict(group="c0"), "group"),
        (dict(channels=()), "channels"),
        (dict(channels=(8, 0)), "channels"),
        (dict(kernel_size=4), "kernel_size"),
        (dict(num_classes=0), "num_classes"),
        (dict(width=0), "width"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        steerable_cnn(**kwargs)


def test_accuracy_restores_mode_and_frozen_params_stay_fixed():
    model = plain_cnn(channels=(4,))
    data = torch.utils.data.TensorDataset(torch.randn(20, 1, 17, 17), torch.randint(0, 10, (20,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model.train()
    acc = accuracy(model, loader)
    assert 0.0 <= acc <= 1.0 and model.training
    model.eval()
    accuracy(model, loader)
    assert not model.training
    frozen = model.features[0].weight
    frozen.requires_grad_(False)
    before = frozen.clone()
    losses = train_classifier(model, loader, epochs=2, lr=1e-2, progress=False)
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert torch.equal(frozen, before)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(model, loader, epochs=-1)


def test_short_training_run_beats_chance():
    from equislt.data import rotated_digits_loaders

    train_loader, test_loader = rotated_digits_loaders(batch_size=16, seed=0, rotations="c4")
    torch.manual_seed(0)
    model = steerable_cnn("c4")
    losses = train_classifier(model, train_loader, epochs=3, lr=1e-2, progress=False)
    assert losses[-1] < losses[0]
    assert accuracy(model, test_loader) > 0.5
