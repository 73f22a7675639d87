"""equislt: strong lottery tickets in equivariant neural networks.

Every equivariant linear layer is ``W = Σ θ[a,b,k] (E_ab ⊗ B_k)``; equislt masks the coefficients ``θ``
(never the expanded filter), so a ticket is exactly as equivariant as its layers.
"""
from . import basis, masks, nn, testing
from .ticket import Ticket
from .basis import Block, blocks

__version__ = "0.1.0"

__all__ = ["Block", "Ticket", "basis", "blocks", "masks", "nn", "testing", "__version__"]
