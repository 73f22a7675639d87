"""The search engine: score-only training, exact sparsity, ramp, resume after a kill, tickets, config, CLI."""
import json

import pytest
import torch

from equislt import Ticket
from equislt.masks import n_keep
from equislt.nn import masks_of
from equislt.search import SearchConfig, Searcher, load_config, run_search, scheduled_sparsity

TINY = dict(model_kwargs={"channels": [2, 4], "kernel_size": 3},
            data_kwargs={"size": 9, "train_limit": 192, "test_limit": 96},
            epochs=2, batch_size=32, lr=0.05, progress=False)


def _config(tmp_path=None, **changes):
    return SearchConfig(**{**TINY, "out": None if tmp_path is None else str(tmp_path), **changes})


def _quiet(*_):
    pass


def test_scores_train_while_random_coefficients_stay_bitwise_fixed():
    searcher = Searcher(_config(), log=_quiet)
    frozen = {n: p.detach().clone() for n, p in searcher.model.named_parameters() if not n.endswith("_scores")}
    scores = {n: p.detach().clone() for n, p in searcher.model.named_parameters() if n.endswith("_scores")}
    assert frozen and scores
    searcher.run()
    params = dict(searcher.model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert all(not params[n].requires_grad for n in frozen)
    assert any(not torch.equal(params[n], v) for n, v in scores.items())


@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_layer_scope_prunes_the_requested_fraction_of_every_tensor(sparsity):
    searcher = Searcher(_config(sparsity=sparsity, epochs=1), log=_quiet)
    result = searcher.run()
    masks = masks_of(searcher.model)
    for named in masks.values():
        for m in named.values():
            assert int(m.sum()) == n_keep(m.numel(), sparsity)
    assert result["coefficients_kept"] == sum(n_keep(m.numel(), sparsity) for d in masks.values() for m in d.values())


def test_global_scope_prunes_exactly_the_requested_fraction_overall():
    searcher = Searcher(_config(sparsity=0.7, scope="global", epochs=1), log=_quiet)
    result = searcher.run()
    masks = [m for named in masks_of(searcher.model).values() for m in named.values()]
    total = sum(m.numel() for m in masks)
    assert sum(int(m.sum()) for m in masks) == n_keep(total, 0.7) == result["coefficients_kept"]
    densities = [float(m.float().mean()) for m in masks]
    assert max(densities) - min(densities) > 0.01  # one global threshold, not the same fraction per tensor


def test_sparsity_ramp_schedule_and_its_use_in_training(tmp_path):
    assert scheduled_sparsity(0, 100, 0.9, ramp=0.5) == 0.0
    assert scheduled_sparsity(49, 100, 0.9, ramp=0.5) == pytest.approx(0.9)
    assert scheduled_sparsity(80, 100, 0.9, ramp=0.5) == pytest.approx(0.9)
    values = [scheduled_sparsity(s, 100, 0.9, ramp=0.5, start=0.2) for s in range(100)]
    assert values[0] == pytest.approx(0.2) and all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    cubic = [scheduled_sparsity(s, 100, 0.9, ramp=0.5, shape="cubic") for s in range(50)]
    assert cubic[10] > values[10] and cubic[-1] == pytest.approx(0.9)
    assert scheduled_sparsity(0, 100, 0.9, ramp=0.0) == 0.9
    run_search(_config(tmp_path, sparsity=0.8, ramp=0.5, scope="global"), log=_quiet)
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scheduled = [r["scheduled_sparsity"] for r in steps if r["kind"] == "step"]
    assert scheduled[0] == 0.0 and scheduled[-1] == pytest.approx(0.8) and scheduled == sorted(scheduled)


@pytest.mark.parametrize("mask", [{}, {"scope": "global", "sparsity": 0.8, "ramp": 0.75}], ids=["layer", "global-ramp"])
def test_resume_after_a_kill_reaches_the_masks_of_an_uninterrupted_run(tmp_path, mask):
    full = run_search(_config(tmp_path / "full", checkpoint_every=2, **mask), log=_quiet)
    # "kill" in the middle of epoch 1, right after the checkpoint of step 4 (the run stops there)
    assert run_search(_config(tmp_path / "cut", checkpoint_every=2, **mask), log=_quiet, max_steps=4) is None
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["position"]["step"] == 4
    # a second interruption at the end of epoch 1, before its evaluation
    assert run_search(_config(tmp_path / "cut", checkpoint_every=2, **mask), log=_quiet, max_steps=6) is None
    resumed = run_search(_config(tmp_path / "cut", checkpoint_every=2, **mask), log=_quiet)
    assert resumed["mask_digest"] == full["mask_digest"]
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert [h["test_accuracy"] for h in resumed["history"]] == [h["test_accuracy"] for h in full["history"]]
    a, b = Ticket.load(tmp_path / "full" / "ticket.pt"), Ticket.load(tmp_path / "cut" / "ticket.pt")
    assert all(torch.equal(a.masks()[p][n], b.masks()[p][n]) for p in a.masks() for n in a.masks()[p])
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "step"] == list(range(1, full["steps"] + 1))


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    run_search(_config(tmp_path, epochs=1), log=_quiet, max_steps=2)
    with pytest.raises(ValueError, match="different \\['sparsity'\\]"):
        run_search(_config(tmp_path, epochs=1, sparsity=0.6), log=_quiet)


def test_the_exported_ticket_reproduces_the_search_accuracy(tmp_path):
    result = run_search(_config(tmp_path, first_layer_dense=True), log=_quiet)
    ticket = Ticket.load(tmp_path / "ticket.pt")
    assert isinstance(ticket, Ticket) and ticket.method == "search" and ticket.seed == 0
    assert "features.0" not in ticket.recipe.masked  # the first layer stayed dense
    searcher = Searcher(_config(), log=_quiet)  # the same test set
    test = torch.utils.data.DataLoader(searcher.task.test, batch_size=64)
    plain = ticket.export()
    assert not any(n.endswith("_scores") for n, _ in plain.named_parameters())
    with torch.no_grad():
        correct = sum(int((plain(x).argmax(-1) == y).sum()) for x, y in test)
        reference = sum(int((ticket(x).argmax(-1) == y).sum()) for x, y in test)
    assert correct / len(searcher.task.test) == result["test_accuracy"] == reference / len(searcher.task.test)
    assert ticket.sparsity() == pytest.approx(result["sparsity"])
    # the training-set accuracy beside it (under- or over-fitting), of the same ticket
    train = torch.utils.data.DataLoader(searcher.task.train, batch_size=64)
    with torch.no_grad():
        correct = sum(int((plain(x).argmax(-1) == y).sum()) for x, y in train)
    assert correct / len(searcher.task.train) == result["train_accuracy"]


@pytest.mark.parametrize("model", ["plain_cnn", "gin", "ign"])
def test_torch_pyg_and_ign_models_search_too(model):
    if model == "plain_cnn":
        config = _config(model=model, model_kwargs={"channels": [4, 8], "kernel_size": 3}, epochs=1, scope="global")
    else:
        config = SearchConfig(model=model, data="graph_atlas", data_kwargs={"max_nodes": 5}, epochs=1,
                              batch_size=16, out=None, progress=False, scope="global")
    searcher = Searcher(config, log=_quiet)
    frozen = {n: p.detach().clone() for n, p in searcher.model.named_parameters() if not n.endswith("_scores")}
    result = searcher.run()
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-3) and 0.0 <= result["test_accuracy"] <= 1.0
    assert all(torch.equal(p, frozen[n]) for n, p in searcher.model.named_parameters() if n in frozen)


def test_config_files_and_errors(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"sparsity": 0.7, "scope": "global", "model_kwargs": {"channels": [4]}}))
    config = load_config(path)
    assert config.sparsity == 0.7 and config.scope == "global" and config.model_kwargs == {"channels": [4]}
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("sparsity: 0.7\nscope: global\nmodel_kwargs:\n  channels: [4]\n")
    assert load_config(yaml_path) == config
    path.write_text(json.dumps({"prune_rate": 0.7}))
    with pytest.raises(ValueError, match="unknown field.*prune_rate"):
        load_config(path)
    with pytest.raises(ValueError, match="fraction pruned"):
        SearchConfig(sparsity=1.0)
    with pytest.raises(ValueError, match="scope"):
        SearchConfig(scope="tensor")
    with pytest.raises(ValueError, match="my_images/: no such file or directory"):
        Searcher(SearchConfig(data_path="my_images/"), log=_quiet)
    with pytest.raises(ValueError, match="'resnet' is not a registered model"):
        Searcher(SearchConfig(model="resnet", out=None), log=_quiet)
    with pytest.raises(ValueError, match="takes graph data"):
        Searcher(SearchConfig(model="gin", out=None), log=_quiet)
    torch.save({"format": "something/1"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an equislt ticket"):
        Ticket.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an equislt ticket"):
        Ticket.load(tmp_path / "other.pt")


def test_cli_search_writes_a_run_directory(tmp_path, capsys):
    from equislt.cli import main

    config = tmp_path / "run.json"
    config.write_text(json.dumps({**{k: v for k, v in TINY.items() if k != "progress"}, "epochs": 1}))
    out = tmp_path / "run"
    assert main(["search", "--config", str(config), "--sparsity", "0.6", "--scope", "global", "--out", str(out),
                 "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["sparsity"] == 0.6 and result["config"]["scope"] == "global"
    assert result["config"]["batch_size"] == 32
    for name in ("metrics.jsonl", "checkpoint.pt", "ticket.pt", "accuracy.png"):
        assert (out / name).exists(), name
    with pytest.raises(SystemExit, match="x: no such file or directory"):
        main(["search", "--data-path", "x", "--out", str(tmp_path / "bad")])


def test_search_on_your_own_idx_images(tmp_path, idx_digits):
    folder = idx_digits(tmp_path / "mine", side=8)  # padded to 9x9 (odd: exact 90° rotations)
    config = _config(data_path=str(folder), data_kwargs={"train_limit": 192, "test_limit": 96}, epochs=1)
    searcher = Searcher(config, log=_quiet)
    assert len(searcher.task.train) == 192 and len(searcher.task.test) == 96
    assert searcher.task.train[0][0].shape == (1, 9, 9) and searcher.task.num_classes == 10
    result = searcher.run()
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["config"]["data_path"] == str(folder)
    with pytest.raises(ValueError, match="data_kwargs for the data in .*size.*data options: train_limit"):
        Searcher(_config(data_path=str(folder), data_kwargs={"size": 9}), log=_quiet)


@pytest.mark.parametrize("model", ["gin", "gcn"])
def test_search_on_your_own_graph_file(tmp_path, model):
    from torch_geometric.data import Batch

    from equislt.data import GraphAtlas
    from equislt.testing import assert_equivariant, node_permutation_error

    atlas = GraphAtlas("connected", min_nodes=1, max_nodes=5)
    graphs = [atlas[i] for i in range(len(atlas))]
    path = tmp_path / "graphs.pt"
    torch.save(graphs, path)
    config = SearchConfig(model=model, model_kwargs={"hidden_channels": 8, "num_layers": 2}, data="graph_atlas",
                          data_path=str(path), data_kwargs={"test_fraction": 0.25}, epochs=2, batch_size=16,
                          progress=False, out=None)
    searcher = Searcher(config, log=_quiet)
    assert len(searcher.task.train) + len(searcher.task.test) == len(graphs)
    assert searcher.task.num_classes == atlas.num_classes
    result = searcher.run()
    assert 0.0 <= result["test_accuracy"] <= 1.0 and 0.45 <= result["sparsity"] <= 0.55
    batch = Batch.from_data_list(searcher.task.test)

    class WholeGraph(torch.nn.Module):  # the test graphs as one union graph: its pooled logits are invariant
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, x, edge_index):
            return self.network(x, edge_index, None)

    report = node_permutation_error(WholeGraph(searcher.ticket.network), batch.x.float(), batch.edge_index,
                                    node_level=False, generator=torch.Generator().manual_seed(0))
    assert_equivariant(report, atol=1e-5)
    torch.save({"not": "graphs"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="expected a PyG Dataset"):
        Searcher(SearchConfig(model="gin", data="graph_atlas", data_path=str(tmp_path / "bad.pt"), out=None),
                 log=_quiet)


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_masks(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    # 8 epochs of 6 steps: long enough that a loaded machine still sees the run alive after step 3
    settings = {**{k: v for k, v in TINY.items() if k != "progress"}, "epochs": 8, "checkpoint_every": 1}
    (tmp_path / "run.json").write_text(json.dumps(settings))
    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-m", "equislt.cli", "search", "--config", str(tmp_path / "run.json"),
                              "--out", str(out), "--no-progress"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    checkpoint, step = out / "checkpoint.pt", 0
    deadline = time.monotonic() + 300  # a loaded machine may take minutes to import and reach step 3
    while time.monotonic() < deadline and child.poll() is None and step < 3:
        time.sleep(0.05)
        if checkpoint.exists():
            step = torch.load(checkpoint, weights_only=False)["position"]["step"]
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and 3 <= step < 48, (child.returncode, step)
    assert not (out / "result.json").exists()
    resumed = run_search(SearchConfig(**settings, out=str(out), progress=False), log=_quiet)
    full = run_search(SearchConfig(**settings, out=str(tmp_path / "full"), progress=False), log=_quiet)
    assert resumed["mask_digest"] == full["mask_digest"]
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert os.path.exists(out / "ticket.pt")


def test_biprop_binarises_kept_coefficients_with_a_straight_through_gradient():
    from equislt.nn import supermask
    from equislt.search import BipropSupermask, enable_biprop

    layer = enable_biprop(supermask(torch.nn.Linear(6, 4), sparsity=0.5, seed=1))
    assert isinstance(layer.mask, BipropSupermask)
    theta, scores = layer.weight, layer.mask.weight_scores
    w = layer.coefficient("weight")
    kept = layer.mask.mask("weight")
    assert int(kept.sum()) == 12 and torch.all(w[~kept] == 0)
    alpha = theta[kept].abs().mean()  # constant init std here: exactly biprop's alpha
    assert torch.allclose(w[kept], torch.sign(theta[kept]) * alpha)
    g = torch.randn(4, 6)
    (w * g).sum().backward()
    # edge-popup's straight-through gradient (through |score|, as the plain Supermask)
    assert torch.allclose(scores.grad, g * theta * torch.sign(scores.detach()))


def test_a_biprop_search_ticket_exports_and_stays_invariant(tmp_path):
    result = run_search(_config(tmp_path, biprop=True, epochs=1), log=_quiet)
    ticket = Ticket.load(tmp_path / "ticket.pt")
    assert ticket.recipe.biprop
    live = Searcher(_config(), log=_quiet)
    x, y = next(iter(torch.utils.data.DataLoader(live.task.test, batch_size=len(live.task.test))))
    plain = ticket.export()
    with torch.no_grad():
        logits = plain(x)
        assert (logits.argmax(-1) == y).float().mean().item() == pytest.approx(result["test_accuracy"])
        assert torch.allclose(ticket(torch.rot90(x, 1, dims=(2, 3))), ticket(x), atol=1e-4)
    head = plain.head.weight  # torch layer: kept coefficients are ±alpha (one magnitude per tensor)
    magnitudes = head[head != 0].abs()
    assert torch.allclose(magnitudes, magnitudes[0].expand_as(magnitudes))
