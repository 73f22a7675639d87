import math

import pytest
import torch


from equislt.data import RotatedDigits, rotate_images, rotated_digits, rotated_digits_loaders

N_DIGITS = 1797


@pytest.fixture(scope="module")
def unrotated():
    return rotated_digits("train", rotations="none")


def test_shapes_dtypes_and_ranges():
    for split in ("train", "test"):
        ds = rotated_digits(split)
        assert isinstance(ds, RotatedDigits) and isinstance(ds, torch.utils.data.TensorDataset)
        m = len(ds)
        assert ds.images.shape == (m, 1, 17, 17) and ds.images.dtype == torch.float32
        assert ds.labels.shape == (m,) and ds.labels.dtype == torch.long
        assert ds.source_index.shape == (m,) and ds.angles.shape == (m,)
        assert set(ds.labels.tolist()) == set(range(10))
        assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
        x, y = ds[0]
        assert x.shape == (1, 17, 17) and y.dim() == 0
    assert len(rotated_digits("train")) + len(rotated_digits("test")) == N_DIGITS
    assert len(rotated_digits("test")) == math.ceil(0.25 * N_DIGITS)


def test_other_size_and_zero_border():
    ds = rotated_digits("test", size=21, rotations="continuous")
    assert ds.images.shape[-2:] == (21, 21)
    img = rotated_digits("test", size=21, rotations="none").images
    # inner digit is 13x13 (largest odd side <= 21/sqrt(2)) on a 4-pixel zero border
    assert img[..., :4, :].abs().max() == 0 and img[..., -4:, :].abs().max() == 0
    assert img[..., :, :4].abs().max() == 0 and img[..., :, -4:].abs().max() == 0


def test_deterministic_for_fixed_seed():
    for rotations in ("c4", "continuous"):
        a = rotated_digits("train", rotations=rotations, seed=3)
        b = rotated_digits("train", rotations=rotations, seed=3)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.source_index, b.source_index) and torch.equal(a.angles, b.angles)
    c = rotated_digits("train", rotations="c4", seed=4)
    assert not torch.equal(c.source_index, a.source_index)


def test_train_test_disjoint_and_stratified():
    train, test = rotated_digits("train", seed=1), rotated_digits("test", seed=1)
    src_train, src_test = set(train.source_index.tolist()), set(test.source_index.tolist())
    assert not src_train & src_test
    assert len(src_train | src_test) == N_DIGITS
    counts = torch.bincount(test.labels, minlength=10).float()
    assert counts.min() >= 0.8 * counts.mean()


def test_c4_rotations_are_exact(unrotated):
    rotated = rotated_digits("train", rotations="c4")
    assert torch.equal(rotated.source_index, unrotated.source_index)
    assert set(rotated.quarter_turns.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(rotated.angles, rotated.quarter_turns.float() * (math.pi / 2))
    for k in range(4):
        sel = rotated.quarter_turns == k
        assert torch.equal(rotated.images[sel], torch.rot90(unrotated.images[sel], k, dims=(-2, -1)))


def test_continuous_rotations(unrotated):
    ds = rotated_digits("train", rotations="continuous")
    assert ds.quarter_turns is None
    assert ds.angles.min() >= 0 and ds.angles.max() < 2 * math.pi
    assert ds.angles.std() > 1.0  # spread over the circle
    torch.testing.assert_close(ds.images, rotate_images(unrotated.images, ds.angles).clamp(0, 1))
    # rotate_images agrees with rot90 at multiples of 90 degrees, about the centre pixel
    x = unrotated.images[:16]
    for k in range(4):
        out = rotate_images(x, torch.full((16,), k * math.pi / 2))
        torch.testing.assert_close(out, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)
    # the digit stays inside the canvas: mass is (nearly) preserved by continuous rotation
    mass_ratio = ds.images.sum((1, 2, 3)) / unrotated.images.sum((1, 2, 3))
    assert mass_ratio.min() > 0.9 and mass_ratio.max() < 1.1


def test_none_is_unrotated(unrotated):
    assert torch.all(unrotated.angles == 0) and torch.all(unrotated.quarter_turns == 0)


def test_loaders():
    train_loader, test_loader = rotated_digits_loaders(batch_size=32, seed=0, rotations="c4")
    x, y = next(iter(train_loader))
    assert x.shape == (32, 1, 17, 17) and y.shape == (32,)
    x2, _ = next(iter(rotated_digits_loaders(batch_size=32, seed=0)[0]))
    assert torch.equal(x, x2)  # shuffling is seeded
    assert len(test_loader.dataset) == math.ceil(0.25 * N_DIGITS)
    xt, _ = next(iter(test_loader))
    assert torch.equal(xt, test_loader.dataset.images[:32])  # test loader is not shuffled


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(split="val"), "split"),
        (dict(rotations="c8"), "rotations"),
        (dict(size=16), "size"),
        (dict(size=7), "size"),
        (dict(size=17.0), "size"),
        (dict(test_fraction=0.0), "test_fraction"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(test_fraction=0.001), "test_fraction"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rotated_digits(**kwargs)


def test_bad_loader_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        rotated_digits_loaders(batch_size=0)
    with pytest.raises(ValueError, match="split"):
        rotated_digits_loaders(split="train")


def test_write_idx_round_trips_through_read_idx(tmp_path):
    import numpy as np

    from equislt.data import read_idx, write_idx

    array = np.arange(2 * 3 * 5).reshape(2, 3, 5) % 256
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        path = write_idx(tmp_path / name, array)
        back = read_idx(path)
        assert back.dtype == np.uint8 and back.shape == (2, 3, 5) and np.array_equal(back, array)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        write_idx(tmp_path / "c", np.array([-1, 3]))


def test_idx_images_are_padded_to_an_odd_side_and_rotated_exactly(tmp_path, idx_digits):
    from equislt.data import idx_images

    folder = idx_digits(tmp_path / "mine", side=8)
    plain = idx_images(folder, "train", rotations="none")
    rotated = idx_images(folder, "train", rotations="c4", seed=3)
    assert plain.tensors[0].shape == (1200, 1, 9, 9) and float(plain.tensors[0].max()) == 1.0
    assert torch.equal(plain.tensors[1], rotated.tensors[1])
    for a, b in zip(plain.tensors[0][:20], rotated.tensors[0][:20]):  # each image is one of its 4 rotations
        assert any(torch.equal(torch.rot90(a, k, dims=(-2, -1)), b) for k in range(4))
