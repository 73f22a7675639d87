"""The provable construction: target → random overparametrised network → batched Subset-Sum → Ticket.

Each target layer ``x ↦ σ(W x + β)`` is replaced by a random block ``c · (M2 σ(M1 x) + pooled bias)`` whose
masks are chosen by solving ``2 · n_in · n_out · |B|`` Subset-Sum problems (one per coefficient and sign)
in one batched exact call (Pensia et al. 2020; Ferbach et al. 2023 for equivariant bases). The modules:
``families/`` (what differs per kind of layer), ``_layout`` (the plan and hidden copies of a block), ``_block``
(its modules), ``_draw`` / ``_build`` (the random network from a seed), ``_trace`` (reading the target),
``_solve`` (pools → problems → solve → masks), ``_policy`` (rows over the tolerance), ``_certificate`` (the bound
math), ``_compile`` (the compact form), ``_recipe`` (what a ticket stores), ``_construct`` (the entry point).
"""
from ._block import CompiledBlock, LiftMix, PooledBias
from ._certificate import Certificate, LayerCertificate
from ._construct import construct, default_n
from ._layout import HiddenLayout, LayerPlan
from ._policy import POLICIES
from ._recipe import ConstructRecipe
from .families import Family, family_of

__all__ = ["Certificate", "CompiledBlock", "ConstructRecipe", "Family", "HiddenLayout", "LayerCertificate",
           "LayerPlan", "LiftMix", "POLICIES", "PooledBias", "construct", "default_n", "family_of"]
