"""Score-only training and batch-norm recalibration."""
import pytest
import torch
from torch import nn

from equislt.nn import supermask
from equislt.search import recalibrate_batchnorm, train_scores


def _data(n=96):
    x = torch.randn(n, 1, 6, 6)
    y = (x[:, 0, :3].sum(dim=(1, 2)) > 0).long()
    return list(zip(x.split(32), y.split(32)))


def test_train_scores_only_moves_scores_and_lowers_loss():
    model = supermask(nn.Sequential(nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(32 * 16, 2)), sparsity=0.5, seed=0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.endswith("_scores")}
    losses = train_scores(model, _data(), epochs=8, lr=0.1, progress=False)
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_train_scores_needs_a_supermask():
    with pytest.raises(ValueError, match="no supermask layers"):
        train_scores(nn.Linear(2, 2), _data(), progress=False)


def test_recalibrate_batchnorm_matches_batch_statistics():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    data = _data()
    recalibrate_batchnorm(model, data)
    x = torch.cat([b[0] for b in data])
    with torch.no_grad():
        features = model[0](x)
    assert torch.allclose(model[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1
