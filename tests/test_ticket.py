"""One ticket artifact for both methods: a constructed and a searched ticket share class, format and loader."""
import torch
from torch import nn

import equislt
from equislt.construct import construct
from equislt.nn import supermask
from equislt.search import load_ticket, search_ticket
from equislt.ticket import FORMAT


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
        again = load_ticket(tmp_path / f"{name}.pt")  # no target needed: the factory is recorded
        assert again.method == ticket.method and again.seed == ticket.seed
        ticket.network.eval()
        with torch.no_grad():
            assert torch.equal(again(x), ticket(x))
            assert torch.allclose(again.export()(x), ticket(x), atol=1e-5)
        assert not any(isinstance(m, equislt.nn.MaskedLayer) for m in ticket.export().modules())
    assert constructed.certificate is not None and searched.certificate is None
    assert isinstance(constructed.compile(), nn.Module)
