"""Files and inputs as a hostile or a careless user would give them: no code runs from a file, artifacts are
verified, nothing finishes silently wrong, and bad input gets an error that names it."""
import os

import pytest
import torch
from torch import nn

import equislt
from equislt import Ticket


class _Payload:
    """Pickles to ``os.system("touch <marker>")``: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil(path, marker, **fields):
    torch.save({**fields, "payload": _Payload(marker)}, path)
    return path


# -- 1. no code from files ------------------------------------------------------------------------------------

def test_no_loader_runs_code_from_a_file(tmp_path):
    from equislt.data import load_graph_dataset
    from equislt.models import load_model
    from equislt.nn import load_masks
    from equislt.search._checkpoint import load_checkpoint

    marker = tmp_path / "marker"
    loaders = {
        "ticket": lambda p: Ticket.load(p),
        "masks": lambda p: load_masks(nn.Linear(2, 2), p),
        "model": lambda p: load_model(p),
        "checkpoint": lambda p: load_checkpoint(p),
        "graphs": lambda p: load_graph_dataset(p),
    }
    for name, load in loaders.items():
        path = _evil(tmp_path / f"{name}.pt", marker, format="equislt.ticket/3")
        with pytest.raises(ValueError, match="plain values"):
            load(path)
        assert not marker.exists(), name


def test_the_cli_runs_no_code_from_its_files(tmp_path, capsys):
    from equislt.cli import main
    from equislt.models import plain_cnn, save_model

    marker = tmp_path / "marker"
    save_model(plain_cnn(channels=(2,), kernel_size=3, input_size=5, num_classes=2), tmp_path / "target.pt")
    evil = _evil(tmp_path / "evil.pt", marker)
    for argv in (["--target", str(evil)], ["--target", str(tmp_path / "target.pt"), "--inputs", str(evil)]):
        with pytest.raises(SystemExit, match="plain values"):
            main(["construct", *argv, "--out", str(tmp_path / "t.pt"), "--no-progress"])
        assert not marker.exists()


def test_a_resumed_search_runs_no_code_from_the_run_directory(tmp_path):
    from equislt.search import SearchConfig, run_search

    marker = tmp_path / "marker"
    out = tmp_path / "run"
    out.mkdir()
    _evil(out / "checkpoint.pt", marker, format="equislt.search-checkpoint/2")
    config = SearchConfig(model_kwargs={"channels": [2], "kernel_size": 3},
                          data_kwargs={"size": 9, "train_limit": 32, "test_limit": 16}, epochs=1, batch_size=16,
                          out=str(out), progress=False)
    with pytest.raises(ValueError, match="plain values"):
        run_search(config, log=lambda *_: None)
    assert not marker.exists()


def test_a_pickled_model_checkpoint_of_an_earlier_release_needs_trust(tmp_path):
    from equislt.models import load_model, save_model

    model = nn.Sequential(nn.Linear(3, 2))
    torch.save({"format": "equislt.model/1", "module": model}, tmp_path / "old.pt")  # what 0.1.0 wrote
    with pytest.raises(ValueError, match="trust=True"):
        load_model(tmp_path / "old.pt")
    assert torch.equal(load_model(tmp_path / "old.pt", trust=True)[0].weight, model[0].weight)
    with pytest.raises(ValueError, match="records no architecture"):
        save_model(model, tmp_path / "new.pt")


def test_files_that_are_not_torch_files_are_named(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"text\.pt is not a readable file written with torch\.save"):
        Ticket.load(tmp_path / "text.pt")
    with pytest.raises(ValueError, match="does not exist"):
        Ticket.load(tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not an equislt ticket"):
        Ticket.load(tmp_path / "list.pt")


# -- 2. verified artifacts ------------------------------------------------------------------------------------

def _mlp(hidden=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3)).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A constructed ticket of an MLP (no architecture: loads with target=) and its file payload."""
    from equislt.construct import construct

    folder = tmp_path_factory.mktemp("tickets")
    ticket = construct(_mlp(), torch.randn(16, 6), tol=1e-3, progress=False)
    ticket.save(folder / "t.pt")
    return folder, torch.load(folder / "t.pt", weights_only=True)


def _tampered(folder, payload, name, change):
    import copy

    payload = copy.deepcopy(payload)
    change(payload)
    torch.save(payload, folder / name)
    return folder / name


def test_a_saved_ticket_loads_and_is_checked(saved):
    folder, _ = saved
    ticket = Ticket.load(folder / "t.pt", target=_mlp())
    assert ticket.probe is not None and ticket.sparsity() > 0


def test_missing_extra_and_truncated_masks_are_errors(saved):
    folder, payload = saved
    first = next(iter(payload["masks"]))
    cases = {
        "missing": (lambda p: p["masks"].pop(first), "missing: \\['0.lift.weight'\\]"),
        "extra": (lambda p: p["masks"].__setitem__("9.mix", {"weight": equislt.masks.pack(torch.ones(2, 2))}),
                  "extra: \\['9.mix.weight'\\]"),
        "truncated": (lambda p: p["masks"][first]["weight"].__setitem__("bits", p["masks"][first]["weight"]["bits"][:3]),
                      "cannot hold a mask of shape"),
        "huge": (lambda p: p["masks"][first]["weight"].__setitem__("shape", [10**6, 10**6]), "cannot hold a mask"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            Ticket.load(_tampered(folder, payload, f"{name}.pt", change), target=_mlp())


def test_every_flipped_bit_and_a_changed_seed_are_caught(saved):
    folder, payload = saved
    bits = payload["masks"]["0.mix"]["weight"]["bits"]
    for position in torch.randperm(bits.numel() * 8, generator=torch.Generator().manual_seed(0))[:64].tolist():
        def flip(p, position=position):
            p["masks"]["0.mix"]["weight"]["bits"][position // 8] ^= 1 << (position % 8)
        with pytest.raises(ValueError, match="masks"):
            Ticket.load(_tampered(folder, payload, "flipped.pt", flip), target=_mlp())
    with pytest.raises(ValueError, match="recipe .* differs"):
        Ticket.load(_tampered(folder, payload, "seed.pt", lambda p: p.__setitem__("seed", 1)), target=_mlp())


def test_a_wrong_target_is_caught(saved):
    folder, _ = saved
    with pytest.raises(ValueError, match="do not fit the planned blocks"):
        Ticket.load(folder / "t.pt", target=_mlp(hidden=9))  # other shapes
    swapped = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 3)).eval()  # same shapes, other function
    with pytest.raises(ValueError, match="outputs on the saved probe inputs differ"):
        Ticket.load(folder / "t.pt", target=swapped)


def test_a_searched_tickets_state_is_checked(tmp_path):
    from equislt.models import plain_cnn
    from equislt.nn import supermask
    from equislt.search import search_ticket

    network = supermask(plain_cnn(channels=(2,), kernel_size=3, input_size=5, num_classes=2), sparsity=0.5, seed=1)
    ticket = search_ticket(network.eval(), 1, "signed_constant", probe=(torch.rand(2, 1, 5, 5),))
    ticket.save(tmp_path / "s.pt")
    assert Ticket.load(tmp_path / "s.pt").method == "search"
    payload = torch.load(tmp_path / "s.pt", weights_only=True)
    key = next(iter(payload["state"]["batchnorm"]))
    payload["state"]["batchnorm"][key] = torch.zeros(7)
    torch.save(payload, tmp_path / "bn.pt")
    with pytest.raises(ValueError, match="state .* does not have the shapes"):
        Ticket.load(tmp_path / "bn.pt")
    payload["checks"]["state"]["batchnorm"][key] = [7]  # a consistent crafted file: the network rejects it
    torch.save(payload, tmp_path / "bn2.pt")
    with pytest.raises(ValueError, match=f"batch-norm state '{key}'"):
        Ticket.load(tmp_path / "bn2.pt")
