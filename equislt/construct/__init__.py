"""The provable construction: target → random overparametrised network → batched Subset-Sum → Ticket.

Each target layer ``x ↦ σ(W x + β)`` is replaced by a random block ``c · (M2 σ(M1 x) + pooled bias)`` whose
masks are chosen by solving ``2 · n_in · n_out · |B|`` Subset-Sum problems (one per coefficient and sign)
in one batched exact call; see ``DESIGN.md`` and ``reference/theory.md`` (A2–A4).
"""
from ._certificate import Certificate, LayerCertificate
from ._construct import construct, default_n
from ._modules import LiftMix, PooledBias
from ._ticket import Ticket

__all__ = ["Certificate", "LayerCertificate", "LiftMix", "PooledBias", "Ticket", "construct", "default_n"]
