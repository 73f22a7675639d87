"""equislt: strong lottery tickets in equivariant neural networks.

Every equivariant linear layer is ``W = Σ θ[a,b,k] (E_ab ⊗ B_k)``; equislt masks the coefficients ``θ``
(never the expanded filter), so a ticket is exactly as equivariant as its layers. Data flows one way, from
bases to masked layers to the construction and the search to tickets (see ``docs/architecture.md``).
"""
from . import basis, masks, nn, testing
from .basis import Block, blocks
from .models import Architecture, register_model
from .ticket import Recipe, Ticket
from . import construct, search  # noqa: E402  (their recipes register with the Ticket)

__version__ = "0.1.0"

__all__ = ["Architecture", "Block", "Recipe", "Ticket", "basis", "blocks", "construct", "masks", "nn",
           "register_model", "search", "testing", "__version__"]
