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


# -- 3. the search never finishes with a broken state ---------------------------------------------------------

TINY = dict(model_kwargs={"channels": [2, 4], "kernel_size": 3}, data_kwargs={"size": 9, "train_limit": 64,
            "test_limit": 32}, epochs=1, batch_size=32, progress=False, out=None)


def _search(**changes):
    from equislt.search import SearchConfig, run_search

    return run_search(SearchConfig(**{**TINY, **changes}), log=lambda *_: None)


@pytest.mark.parametrize("field, value, message", [("lr", float("inf"), "lr: must be a finite number"),
                                                   ("momentum", float("nan"), "momentum: must be a finite number"),
                                                   ("momentum", 1.5, r"momentum: must be in \[0, 1\)"),
                                                   ("weight_decay", -1.0, "weight_decay: must be non-negative")])
def test_optimiser_settings_that_cannot_work_are_refused(field, value, message):
    from equislt.search import SearchConfig

    with pytest.raises(ValueError, match=message):
        SearchConfig(**{**TINY, field: value})


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step():
    from equislt.search import SearchConfig, Searcher, build_task

    task = build_task("rotated_digits", TINY["data_kwargs"])
    calls, forward = [], task.logits_and_labels

    def poisoned(model, batch):  # the check of the model against the data, step 1, then a NaN at step 2
        logits, labels = forward(model, batch)
        calls.append(1)
        return (logits * float("nan") if len(calls) == 3 else logits), labels

    task.logits_and_labels = poisoned
    searcher = Searcher(SearchConfig(**TINY), task=task, log=lambda *_: None)
    with pytest.raises(FloatingPointError, match="the loss became NaN or inf at step 2"):
        searcher.run()


def _write_float_idx(path, array):
    import numpy as np

    array = np.asarray(array, dtype=">f4")
    path.write_bytes(bytes([0, 0, 0x0D, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes() + array.tobytes())


def _write_int_idx(path, array):
    import numpy as np

    array = np.asarray(array, dtype=">i4")
    path.write_bytes(bytes([0, 0, 0x0C, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes() + array.tobytes())


def test_bad_pixels_and_labels_in_idx_files_are_named(tmp_path, idx_digits):
    import numpy as np

    folder = idx_digits(tmp_path / "digits", side=9)
    images = np.random.default_rng(0).random((4, 9, 9)).astype(np.float32)
    images[2, 3, 3] = np.nan
    _write_float_idx(folder / "train-images-idx3-ubyte", images)
    _write_int_idx(folder / "train-labels-idx1-ubyte", [0, 1, 2, 3])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: image 2 has NaN or infinite values"):
        _search(data_path=str(folder), data_kwargs={})
    images[2, 3, 3] = 0.5
    _write_float_idx(folder / "train-images-idx3-ubyte", images)
    _write_int_idx(folder / "train-labels-idx1-ubyte", [0, 1, 10**9, 3])
    with pytest.raises(ValueError, match="label 1000000000 at index 2 is outside"):
        _search(data_path=str(folder), data_kwargs={})
    _write_float_idx(folder / "train-labels-idx1-ubyte", [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="labels must be integers"):
        _search(data_path=str(folder), data_kwargs={})


def test_graphs_with_bad_features_or_edges_are_named():
    from torch_geometric.data import Data

    from equislt.data import load_graph_dataset

    good = dict(edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([0]))
    cases = {"NaN or infinite node features": Data(x=torch.tensor([[float("nan")], [1.0]]), **good),
             "negative index": Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0, -1], [1, 0]]), y=torch.tensor([0])),
             "has no nodes": Data(x=torch.ones(0, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.tensor([0]))}
    for message, graph in cases.items():
        with pytest.raises(ValueError, match=f"graph 1 .*{message}"):
            load_graph_dataset([Data(x=torch.ones(2, 1), **good), graph])  # the message names graph 1


def test_a_model_that_does_not_fit_the_data_is_named_before_the_run():
    with pytest.raises(ValueError, match="does not take the data's batches"):
        _search(model_kwargs={"channels": [2], "kernel_size": 3, "in_channels": 3})


def test_a_sparsity_that_leaves_a_layer_empty_is_an_error():
    with pytest.raises(ValueError, match="keeps no coefficient"):
        _search(model="plain_cnn", model_kwargs={"channels": [2], "kernel_size": 3}, sparsity=0.99)


def test_no_epochs_and_no_test_samples_behave():
    result = _search(epochs=0)
    assert result["steps"] == 0 and result["test_accuracy"] is not None
    result = _search(data_kwargs={**TINY["data_kwargs"], "test_limit": 0})
    assert result["test_accuracy"] is None and result["steps"] == 2


# -- 4. one run per directory; resume notices changed data ----------------------------------------------------

def test_a_second_run_in_the_same_directory_fails_at_once(tmp_path):
    from equislt.search._engine import RunLock

    with RunLock(tmp_path / "run"):
        with pytest.raises(ValueError, match="another search is running"):
            _search(out=str(tmp_path / "run"))
    assert _search(out=str(tmp_path / "run"))["steps"] == 2  # free again


def test_resume_refuses_changed_data_and_survives_a_torn_metrics_line(tmp_path, idx_digits):
    from equislt.search import SearchConfig, run_search

    folder = idx_digits(tmp_path / "digits", side=9)
    config = SearchConfig(**{**TINY, "data_path": str(folder), "data_kwargs": {"train_limit": 96, "test_limit": 32},
                             "out": str(tmp_path / "run"), "epochs": 2})
    assert run_search(config, log=lambda *_: None, max_steps=2) is None
    with open(tmp_path / "run" / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "step", "st')  # killed mid-write
    assert run_search(config, log=lambda *_: None, max_steps=4) is None  # resumes past the torn line
    idx_digits(folder, side=9)  # the same files ...
    equislt.data.write_idx(folder / "train-labels-idx1-ubyte", [(v + 1) % 10 for v in range(1200)])  # ... relabelled
    with pytest.raises(ValueError, match="the data changed since it was written"):
        run_search(config, log=lambda *_: None)


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    from equislt.search import _checkpoint

    path = tmp_path / "checkpoint.pt"
    _checkpoint.save_checkpoint({"step": 1}, path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_checkpoint.torch, "save", full)
    with pytest.raises(OSError, match="no space left on device.*previous checkpoint is kept"):
        _checkpoint.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert _checkpoint.load_checkpoint(path)["step"] == 1 and not (tmp_path / "checkpoint.pt.tmp").exists()


# -- 5. the certificate never claims what it cannot -----------------------------------------------------------

def test_construct_refuses_inputs_it_cannot_certify():
    from equislt.construct import construct

    target, x = _mlp(), torch.randn(16, 6)
    cases = [(dict(input_radius=-1.0), "input_radius must be finite"),
             (dict(input_radius=float("inf")), "input_radius must be finite"),
             (dict(input_nonnegative=True), "input_nonnegative=True but the inputs reach")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            construct(target, x, progress=False, **kwargs)
    nan = x.clone()
    nan[3, 2] = float("nan")
    with pytest.raises(ValueError, match="input sample 3 holds NaN or inf"):
        construct(target, nan, progress=False)
    with torch.no_grad():
        target[2].bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"layer 2 \(Linear\) has NaN or infinite bias"):
        construct(target, x, progress=False)


def test_glue_recognised_only_on_the_traces_is_an_assumption_of_the_certificate():
    from equislt.construct import construct

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    torch.manual_seed(0)
    cert = construct(Functional(), torch.randn(32, 6), tol=1e-3, progress=False).certificate
    assert cert.layers[1].input_nonnegative and len(cert.assumptions) == 1 and "b is torch.relu" in cert.assumptions[0]
    assert "assuming the input of b" in cert.summary()


# -- 6. checks that do not change the model -------------------------------------------------------------------

def test_equivariance_checks_leave_the_model_bitwise_unchanged():
    from equislt.models import steerable_cnn
    from equislt.testing import equivariance_error, escnn_equivariance_error

    torch.manual_seed(0)
    model = steerable_cnn("d4", channels=(2, 3), kernel_size=3, input_size=9, num_classes=4)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 1, 9, 9))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    actions = [("rot", lambda z: torch.rot90(z, 1, (2, 3)), lambda y: y)]
    equivariance_error(model, torch.rand(4, 1, 9, 9), actions)
    escnn_equivariance_error(model.features)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_the_default_escnn_check_input_fits_strided_pooling():
    from escnn import gspaces
    from escnn import nn as enn

    from equislt.testing import default_spatial_size, escnn_equivariance_error

    g = gspaces.rot2dOnR2(4)
    t_in, t = enn.FieldType(g, [g.trivial_repr]), enn.FieldType(g, 2 * [g.regular_repr])
    model = enn.SequentialModule(enn.R2Conv(t_in, t, 3, padding=1), enn.PointwiseMaxPool2D(t, 3, 2, 1),
                                 enn.R2Conv(t, t, 3, padding=1), enn.PointwiseMaxPool2D(t, 3, 2, 1)).eval()
    assert default_spatial_size(model) == 17
    assert escnn_equivariance_error(model, modes=("eval",)).max() < 1e-5


# -- 7. malformed inputs get named errors ---------------------------------------------------------------------

def test_malformed_construction_inputs_are_named():
    from escnn import gspaces
    from escnn import nn as enn

    from equislt.construct import construct

    cases = [(_mlp().double(), torch.randn(8, 6).double(), "inputs are torch.float64"),
             (_mlp().double(), torch.randn(8, 6), "the target has torch.float64 parameters"),
             (_mlp(), torch.randn(0, 6), "non-empty batch")]
    for target, x, message in cases:
        with pytest.raises(ValueError, match=message):
            construct(target, x, progress=False)
    g = gspaces.rot2dOnR2(4)
    conv = enn.R2Conv(enn.FieldType(g, [g.trivial_repr]), enn.FieldType(g, [g.regular_repr]), 3)
    with pytest.raises(ValueError, match="give its inputs as a GeometricTensor"):
        construct(enn.SequentialModule(conv), torch.rand(2, 1, 7, 7), progress=False)
    from equislt.models import gin_classifier

    gin = gin_classifier(3, 4, 2, num_layers=1).eval()
    with pytest.raises(ValueError, match="negative index -1"):
        construct(gin, (torch.randn(3, 3), torch.tensor([[0, -1], [1, 0]])), progress=False)


def test_yaml_configs_cannot_expand(tmp_path):
    from equislt.search import load_config

    bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n"
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(ValueError, match="anchors and aliases"):
        load_config(tmp_path / "bomb.yaml")
    (tmp_path / "tag.yaml").write_text("model: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match="not a plain YAML config"):
        load_config(tmp_path / "tag.yaml")


def test_cli_errors_are_messages(tmp_path):
    from equislt.cli import main
    from equislt.models import plain_cnn, save_model

    save_model(plain_cnn(channels=(2,), kernel_size=3, input_size=5, num_classes=2), tmp_path / "target.pt")
    torch.save(torch.rand(8, 1, 5, 5), tmp_path / "x.pt")
    with pytest.raises(SystemExit, match="certified bound .* does not meet eps=1e-09"):
        main(["construct", "--target", str(tmp_path / "target.pt"), "--inputs", str(tmp_path / "x.pt"),
              "--eps", "1e-9", "--tol", "1e-2", "--out", str(tmp_path / "t.pt"), "--no-progress"])
    (tmp_path / "graphs.pt").write_text("id,label\n1,0\n")
    with pytest.raises(SystemExit, match="graphs.pt is not a readable file"):
        main(["search", "--model", "gin", "--data", "graph_atlas", "--data-path", str(tmp_path / "graphs.pt"),
              "--no-progress", "--out", str(tmp_path / "run")])


# -- 8. determinism, stated -----------------------------------------------------------------------------------

def test_the_demo_does_not_depend_on_the_thread_count():
    """Float sums run in another order on another number of threads, so training is bit-reproducible only for a
    fixed thread count; the demo's target training is robust to it (README: Safety and reproducibility)."""
    from equislt.demo import DemoConfig, run_demo

    threads, results = torch.get_num_threads(), []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(run_demo(DemoConfig(out=None, progress=False), log=lambda *_: None))
    finally:
        torch.set_num_threads(threads)
    accuracies = [r["target_accuracy"] for r in results]
    assert abs(accuracies[0] - accuracies[1]) <= 0.02 and min(accuracies) > 0.85
    assert all(r["prediction_agreement"] == 1.0 for r in results)


def test_constructed_masks_do_not_depend_on_the_thread_count():
    """The draws (torch's CPU generator) and the exact solver involve no thread-dependent float sums: the same
    target gives the same masks on any number of threads."""
    from equislt.construct import construct
    from equislt.masks import mask_digest
    from equislt.models import steerable_cnn

    torch.manual_seed(0)
    target = steerable_cnn("c4", channels=(2, 3), kernel_size=3, input_size=9, num_classes=4).eval()
    x = torch.rand(32, 1, 9, 9)
    threads, digests = torch.get_num_threads(), []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            digests.append(mask_digest(construct(target, x, tol=1e-4, input_nonnegative=True, progress=False).masks()))
    finally:
        torch.set_num_threads(threads)
    assert digests[0] == digests[1]


def test_ctrl_c_is_a_message(monkeypatch, capsys):
    import equislt.search
    from equislt.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(equislt.search, "run_search", interrupted)
    assert main(["search", "--no-progress", "--out", "unused"]) == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_as_a_named_error(tmp_path_factory, data):
    from equislt._files import load_plain

    path = tmp_path_factory.mktemp("fuzz") / "file.pt"
    path.write_bytes(data)
    try:
        value = load_plain(path, "fuzz")
    except ValueError as err:
        assert "fuzz:" in str(err)
    else:  # only a genuine pickle of plain data can load
        assert value is None or isinstance(value, (int, float, str, bytes, bool, list, tuple, dict, torch.Tensor))
