"""The device option: one reading of ``device`` everywhere, clear errors for a device the machine lacks, the engine
moving batches (never a hidden ``.cuda()``), bfloat16 autocast for the search. Runs on the CPU."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import equislt
from equislt._device import resolve_device
from equislt.search import SearchConfig, Searcher, run_search

TINY = dict(model="plain_cnn", model_kwargs={"channels": [4]}, data_kwargs={"train_limit": 64, "test_limit": 32},
            epochs=1, batch_size=32, progress=False, out=None)


def _quiet(*_):
    pass


def test_devices_are_read_the_same_way_everywhere():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="search: 'gpu' is not a device; use one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu", "search")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="construct: device: 'cuda:1' asked for, but this torch .* sees no CUDA"):
            equislt.construct.construct(nn.Linear(2, 2), torch.rand(4, 2), device="cuda:1")
    with pytest.raises(ValueError, match="SearchConfig.device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        SearchConfig(device="tpu")
    with pytest.raises(ValueError, match="SearchConfig.amp: must be one of"):
        SearchConfig(amp="fp8")


def test_no_hidden_cuda_calls_in_the_package():
    root = Path(equislt.__file__).parent
    offenders = [f"{path.relative_to(root)}:{number}" for path in root.rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\.cuda\(\)|device=['\"]cuda", line)]
    assert offenders == []


class DeviceWitness(nn.Module):
    """A model that records the device of every input it is called on."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)
        self.seen = set()

    def forward(self, x):
        self.seen.add(x.device.type)
        assert x.device == self.head.weight.device, "a batch on another device than the model"
        return self.head(x.mean(dim=(2, 3)))


def test_an_explicit_cpu_search_moves_batches_to_the_model_and_autocasts_in_bf16(tmp_path):
    searcher = Searcher(SearchConfig(**{**TINY, "model": DeviceWitness, "model_kwargs": {}}, device="cpu", amp="bf16"),
                        log=_quiet)
    assert searcher.device == torch.device("cpu")
    result = searcher.run()
    assert result["device"] == "cpu" and 0.0 <= result["test_accuracy"] <= 1.0
    assert result["config"]["amp"] == "bf16"
    full = run_search(SearchConfig(**{**TINY, "out": str(tmp_path / "a"), "device": "cpu"}), log=_quiet)
    # the device is not part of the result: a run resumes under another device setting
    again = run_search(SearchConfig(**{**TINY, "out": str(tmp_path / "a"), "device": "auto"}), log=_quiet)
    assert again["mask_digest"] == full["mask_digest"]


def test_bf16_autocast_changes_the_training_not_the_evaluation():
    plain = Searcher(SearchConfig(**TINY, device="cpu"), log=_quiet)
    mixed = Searcher(SearchConfig(**TINY, device="cpu", amp="bf16"), log=_quiet)
    with mixed._autocast():
        logits, _ = mixed._forward(mixed.model, next(iter(mixed.task.loader(mixed.task.train, batch_size=4))))
    assert logits.dtype == torch.bfloat16
    assert plain.evaluate() == mixed.evaluate()  # same seed, same random network, float32 evaluation
