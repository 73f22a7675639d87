"""A model equislt did not write goes through the whole engine: search by its factory ``package.module:factory``
on data read from disk, resume, a ticket that reloads without ``target=`` (in a fresh process, importing the
factory only when trusted), and the construction from the factory plus a saved ``state_dict``."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from equislt import Ticket
from equislt.cli import main
from equislt.search import SearchConfig, Searcher, run_search

# a user's own models, in a module of their own (written into the test's directory)
USER_MODELS = '''
import torch
from torch import nn


class C8Mixed(nn.Module):
    """escnn layers under a torch root: C8, regular + quotient + trivial fields, group pooling, a torch head."""

    def __init__(self, num_classes=10, in_channels=1, width=1):
        super().__init__()
        from escnn import gspaces, nn as enn

        space = gspaces.rot2dOnR2(8)
        self.in_type = enn.FieldType(space, [space.trivial_repr] * in_channels)
        hidden = enn.FieldType(space, [space.regular_repr] * width + [space.quotient_repr(2)] * width
                               + [space.trivial_repr] * 2)
        self.body = enn.SequentialModule(enn.R2Conv(self.in_type, hidden, 3, padding=1), enn.ReLU(hidden),
                                         enn.R2Conv(hidden, hidden, 3, padding=1), enn.ReLU(hidden),
                                         enn.GroupPooling(hidden))
        self.head = nn.Linear(self.body.out_type.size, num_classes)

    def forward(self, x):
        from escnn import nn as enn

        features = self.body(enn.GeometricTensor(x, self.in_type)).tensor
        return self.head(features.mean(dim=(2, 3)))


class Sage(nn.Module):
    def __init__(self, in_channels, num_classes, hidden=8):
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.conv1, self.conv2 = SAGEConv(in_channels, hidden), SAGEConv(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x, edge_index, batch):
        from torch_geometric.nn import global_add_pool

        h = torch.relu(self.conv2(torch.relu(self.conv1(x, edge_index)), edge_index))
        return self.head(global_add_pool(h, batch))


def d4_sequential(num_classes=10, in_channels=1):
    """An escnn SequentialModule root (called on GeometricTensors), output 1x1 trivial fields as logits."""
    from escnn import gspaces, nn as enn

    space = gspaces.flipRot2dOnR2(4)
    inputs = enn.FieldType(space, [space.trivial_repr] * in_channels)
    hidden = enn.FieldType(space, [space.regular_repr] * 2)
    pooled = enn.FieldType(space, [space.trivial_repr] * 2)
    return enn.SequentialModule(enn.R2Conv(inputs, hidden, 3, padding=1), enn.ReLU(hidden),
                                enn.PointwiseAdaptiveAvgPool2D(hidden, 1), enn.GroupPooling(hidden),
                                enn.R2Conv(pooled, enn.FieldType(space, [space.trivial_repr] * num_classes), 1))


def c8_mixed(num_classes=10, in_channels=1, width=1):
    return C8Mixed(num_classes, in_channels, width)


def sage(in_channels, num_classes, hidden=8):
    return Sage(in_channels, num_classes, hidden)
'''


def _quiet(*_):
    pass


@pytest.fixture
def user_module(module_on_disk):
    return module_on_disk(USER_MODELS, "usermodels")


def _fresh_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_an_escnn_model_of_yours_is_searched_resumed_and_reloaded_without_target(tmp_path, user_module, idx_digits):
    folder = idx_digits(tmp_path / "digits", side=8)
    args = ["search", "--model", f"{user_module}:c8_mixed", "--data-path", str(folder), "--data-kwargs",
            '{"train_limit": 128, "test_limit": 32}', "--epochs", "2", "--batch-size", "32", "--checkpoint-every",
            "2", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "result.json").read_text())
    assert full["config"]["model"] == f"{user_module}:c8_mixed"
    assert full["data"] == f"IDX images in {folder}"  # the header and the result name the data used
    # the model got the data set's sizes it asks for (num_classes, in_channels), not input_size
    ticket = Ticket.load(tmp_path / "full" / "ticket.pt")
    assert dict(ticket.architecture.kwargs) == {"num_classes": 10, "in_channels": 1}

    # interrupted after 3 steps, then resumed: the masks of the uninterrupted run
    config = SearchConfig(model=f"{user_module}:c8_mixed", data_path=str(folder), epochs=2, batch_size=32,
                          data_kwargs={"train_limit": 128, "test_limit": 32}, checkpoint_every=2, progress=False,
                          out=str(tmp_path / "cut"))
    assert run_search(config, log=_quiet, max_steps=3) is None
    assert main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["mask_digest"] == full["mask_digest"]

    # a fresh process: the ticket names the factory by its import path, imported only when trusted
    run = _fresh_python(f"""
        import torch, equislt
        try:
            equislt.Ticket.load({str(tmp_path / "full" / "ticket.pt")!r})
        except ValueError as err:
            assert "trust=True" in str(err), err
        else:
            raise AssertionError("an untrusted import path was imported")
        ticket = equislt.Ticket.load({str(tmp_path / "full" / "ticket.pt")!r}, trust=True)
        x = torch.rand(3, 1, 9, 9)
        with torch.no_grad():
            print(float((ticket(x) - ticket.network(x)).abs().max()))
    """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout.split()[-1]) < 1e-5


def test_a_factory_passed_in_python_is_recorded_by_name(tmp_path, user_module, idx_digits):
    import importlib

    module = importlib.import_module(user_module)
    folder = idx_digits(tmp_path / "digits", side=8)
    config = SearchConfig(model=module.c8_mixed, model_kwargs={"width": 1}, data_path=str(folder), epochs=1,
                          batch_size=32, data_kwargs={"train_limit": 64, "test_limit": 16}, progress=False, out=None)
    assert config.model == f"{user_module}:c8_mixed"  # JSON-able, and what the ticket records
    searcher = Searcher(config, log=_quiet)
    searcher.run()
    assert searcher.ticket.architecture.factory == f"{user_module}:c8_mixed"
    with pytest.raises(ValueError, match="not a registered model"):
        Searcher(SearchConfig(model="no_such_model", out=None, progress=False), log=_quiet)
    with pytest.raises(ValueError, match="has no 'missing'"):
        Searcher(SearchConfig(model=f"{user_module}:missing", out=None, progress=False), log=_quiet)


def test_an_escnn_sequential_module_root_gets_geometric_tensors(tmp_path, user_module, idx_digits):
    from escnn import nn as enn

    folder = idx_digits(tmp_path / "digits", side=8)
    config = SearchConfig(model=f"{user_module}:d4_sequential", data_path=str(folder), epochs=1, batch_size=32,
                          data_kwargs={"train_limit": 64, "test_limit": 16}, progress=False,
                          out=str(tmp_path / "run"))
    result = run_search(config, log=_quiet)
    assert 0.45 <= result["sparsity"] <= 0.55
    ticket = Ticket.load(tmp_path / "run" / "ticket.pt")  # its fingerprint ran the probe as GeometricTensors
    x = torch.rand(2, 1, 9, 9)
    rotated = torch.rot90(x, 1, dims=(2, 3))
    with torch.no_grad():
        a, b = (ticket(enn.GeometricTensor(v, ticket.network.in_type)).tensor for v in (x, rotated))
    assert torch.allclose(a, b, atol=1e-5)  # invariant logits


def test_a_pyg_model_of_yours_is_searched_on_a_graph_file(tmp_path, user_module):
    from equislt.data import GraphAtlas

    atlas = GraphAtlas("connected", min_nodes=1, max_nodes=5)
    torch.save([atlas[i] for i in range(len(atlas))], tmp_path / "graphs.pt")
    assert main(["search", "--model", f"{user_module}:sage", "--data", "graph_atlas", "--data-path",
                 str(tmp_path / "graphs.pt"), "--epochs", "1", "--batch-size", "8", "--no-progress", "--out",
                 str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["data"] == f"graphs in {tmp_path / 'graphs.pt'}" and 0.45 <= result["sparsity"] <= 0.55
    ticket = Ticket.load(tmp_path / "run" / "ticket.pt")  # registered in this process by the search
    assert dict(ticket.architecture.kwargs) == {"in_channels": atlas.num_features, "num_classes": atlas.num_classes}


def test_construct_from_a_factory_and_its_weights(tmp_path, user_module):
    import importlib

    target = importlib.import_module(user_module).c8_mixed(width=1).eval()
    torch.save(target.state_dict(), tmp_path / "weights.pt")
    torch.save(torch.rand(16, 1, 9, 9), tmp_path / "inputs.pt")
    out = tmp_path / "ticket.pt"
    assert main(["construct", "--target", f"{user_module}:c8_mixed", "--model-kwargs", '{"width": 1}',
                 "--weights", str(tmp_path / "weights.pt"), "--inputs", str(tmp_path / "inputs.pt"), "--tol", "1e-3",
                 "--no-progress", "--out", str(out)]) == 0
    ticket = Ticket.load(out)  # the factory is registered in this process; the target's weights are in the masks
    x = torch.rand(4, 1, 9, 9)
    with torch.no_grad():
        assert torch.allclose(ticket(x), target(x), atol=1e-2 * float(target(x).abs().max()))
    with pytest.raises(SystemExit, match="--weights"):
        main(["construct", "--target", f"{user_module}:c8_mixed", "--inputs", str(tmp_path / "inputs.pt")])
    with pytest.raises(SystemExit, match="--inputs is required"):
        main(["construct", "--target", f"{user_module}:c8_mixed", "--weights", str(tmp_path / "weights.pt"),
              "--model-kwargs", '{"width": 1}'])
    torch.save({"body.nonsense": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(SystemExit, match="do not fit C8Mixed"):
        main(["construct", "--target", f"{user_module}:c8_mixed", "--weights", str(tmp_path / "wrong.pt"),
              "--inputs", str(tmp_path / "inputs.pt")])


def test_a_registered_factory_called_directly_records_its_architecture():
    import equislt
    from equislt.models import Architecture, registered_models

    def make(width, depth=2, **extra):
        return torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])

    factory = equislt.register_model("tests.recorded")(make)
    model = factory(4, depth=3, note="x")
    assert Architecture.of(model) == Architecture("tests.recorded", {"width": 4, "depth": 3, "note": "x"})
    assert registered_models()["tests.recorded"] is make  # the registry keeps the function itself
    assert equislt.register_model("tests.recorded")(factory) is not None  # the wrapper registers again as itself
    rebuilt = Architecture.of(model).build()
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in model.parameters()]
