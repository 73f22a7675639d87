"""One ticket artifact for both methods: a constructed and a searched ticket share class, format and loader."""
import pytest
import torch
from torch import nn

import equislt
from equislt.construct import construct
from equislt.nn import supermask
from equislt.search import search_ticket
from equislt.ticket import FORMAT
from equislt.ticket._checks import recipe_digest


def test_construct_and_search_tickets_are_one_artifact(tmp_path):
    from equislt.models import plain_cnn

    torch.manual_seed(0)
    target = plain_cnn(channels=(2, 3), kernel_size=3, input_size=9, num_classes=3).eval()
    x = torch.rand(16, 1, 9, 9)
    constructed = construct(target, x, tol=1e-3, input_nonnegative=True, progress=False)
    searched = search_ticket(supermask(plain_cnn(channels=(4, 6), kernel_size=3, input_size=9, num_classes=3),
                                       sparsity=0.5, seed=3), seed=3, weight_init="signed_constant")
    for name, ticket in (("c", constructed), ("s", searched)):
        assert isinstance(ticket, equislt.Ticket)
        ticket.save(tmp_path / f"{name}.pt")
        assert torch.load(tmp_path / f"{name}.pt", weights_only=False)["format"] == FORMAT
        again = equislt.Ticket.load(tmp_path / f"{name}.pt")  # no target needed: the factory is recorded
        assert again.method == ticket.method and again.seed == ticket.seed
        ticket.network.eval()
        with torch.no_grad():
            assert torch.equal(again(x), ticket(x))
            assert torch.allclose(again.export()(x), ticket(x), atol=1e-5)
        assert not any(isinstance(m, equislt.nn.MaskedLayer) for m in ticket.export().modules())
    assert constructed.certificate is not None and searched.certificate is None
    assert isinstance(constructed.compile(), nn.Module)


# -- tickets saved by earlier releases -------------------------------------------------------------------------
FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "tickets_v2"


def _mlp_target():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_tickets_of_the_previous_format_regenerate_bit_exactly(tmp_path, one_thread):
    """equislt.ticket/2 files (architectures as import paths) load and give the outputs they gave when saved
    (on one thread, as they were saved)."""
    expected = torch.load(FIXTURES / "expected.pt", weights_only=True)
    assert set(expected) == {"construct_c4", "construct_mlp", "search_gin", "search_plain_cnn_biprop"}
    for name, (x, y) in expected.items():
        assert torch.load(FIXTURES / f"{name}.pt", weights_only=True)["format"] == "equislt.ticket/2"
        target = _mlp_target() if name == "construct_mlp" else None
        ticket = equislt.Ticket.load(FIXTURES / f"{name}.pt", target=target)
        assert ticket.method == name.split("_")[0]
        args = x if isinstance(x, tuple) else (x,)
        with torch.no_grad():
            assert torch.equal(ticket.network(*args), y), name  # the literal pruned network, bit for bit
            assert torch.allclose(ticket(*args), y, rtol=1e-5, atol=1e-5 * float(y.abs().max())), name
        if target is None:  # equislt's own models: the import path became a registered name
            assert ticket.architecture.factory in equislt.models.registered_models()
        # saved again, it is a current-format file that reproduces the same outputs
        ticket.save(tmp_path / f"{name}.pt")
        again = equislt.Ticket.load(tmp_path / f"{name}.pt", target=target)
        assert torch.load(tmp_path / f"{name}.pt", weights_only=True)["format"] == FORMAT
        with torch.no_grad():
            assert torch.equal(again.network(*args), y), name
            assert torch.equal(again(*args), ticket(*args)), name  # the compact form, bit for bit
    certificate = equislt.Ticket.load(FIXTURES / "construct_c4.pt").certificate
    assert certificate.layers[0].copies == 2 * certificate.layers[0].n > 0  # "n" (= 2N) of /2 read as copies


def test_a_ticket_names_its_factory_and_only_registered_factories_run(tmp_path):
    """A ticket file cannot choose which code runs: an unregistered factory (here an import path that would run
    a shell command) is refused with how to register it, and nothing is executed."""
    from equislt.models import plain_cnn

    ticket = search_ticket(supermask(plain_cnn(channels=(2,), kernel_size=3, input_size=5, num_classes=2),
                                     sparsity=0.5, seed=1), seed=1, weight_init="signed_constant")
    ticket.save(tmp_path / "t.pt")
    payload = torch.load(tmp_path / "t.pt", weights_only=True)
    assert payload["architecture"]["factory"] == "equislt.plain_cnn"  # a registered name, not an import path
    marker = tmp_path / "marker"
    payload["architecture"] = {"factory": "os:system", "kwargs": {"command": f"touch {marker}"}}
    torch.save(payload, tmp_path / "changed.pt")
    with pytest.raises(ValueError, match="recipe .* differs from the one saved"):
        equislt.Ticket.load(tmp_path / "changed.pt")
    # a crafted file would also update its digest: the factory is still never called
    payload["checks"]["recipe_digest"] = recipe_digest("search", 1, payload["architecture"], payload["recipe"])
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"'os:system' is not registered.*register_model\('os:system'\)"):
        equislt.Ticket.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_user_factories_register_under_any_name():
    calls = []

    @equislt.register_model("tests.tiny_mlp")
    def tiny_mlp(width: int = 3):
        calls.append(width)
        return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1))

    model = equislt.Architecture("tests.tiny_mlp", {"width": 5}).build()
    assert calls == [5] and equislt.Architecture.of(model) == equislt.Architecture("tests.tiny_mlp", {"width": 5})
    equislt.register_model("tests.tiny_mlp", tiny_mlp)  # the same factory again: fine
    with pytest.raises(ValueError, match="already registered"):
        equislt.register_model("tests.tiny_mlp", lambda: nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"tests.tiny_mlp.*unexpected keyword"):
        equislt.Architecture("tests.tiny_mlp", {"depth": 2}).build()


def test_recipes_are_registered_by_kind():
    from equislt.construct import ConstructRecipe
    from equislt.search import SearchRecipe
    from equislt.ticket import recipe_class

    assert recipe_class("construct") is ConstructRecipe and recipe_class("search") is SearchRecipe
    with pytest.raises(ValueError, match="unknown"):
        recipe_class("magic")
    recipe = SearchRecipe(["a.b"], "normal", True)
    assert SearchRecipe.from_dict(recipe.to_dict()) == recipe
