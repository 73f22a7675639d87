"""The provable construction: target → random overparametrised network → batched Subset-Sum → Ticket.

Each target layer ``x ↦ σ(W x + β)`` is replaced by a random block ``c · (M2 σ(M1 x) + pooled bias)`` whose
masks are chosen by solving ``2 · n_in · n_out · |B|`` Subset-Sum problems (one per coefficient and sign),
batched and exact (Pensia et al. 2020; Ferbach et al. 2023 for equivariant bases). The random network is never
built: its coefficients are drawn from the seed one chunk of input fields at a time, solved and dropped, and the
ticket runs in its compact form. The modules: ``families/`` (what differs per kind of layer), ``_layout`` (the
plan, hidden copies and coefficient layout of a block), ``_block`` (its modules), ``_draw`` (the per-field
streams), ``_build`` (the literal random network, on request), ``_trace`` (reading the target), ``_solve`` (draws
→ pools → problems → solve → masks), ``_policy`` (rows over the tolerance), ``_certificate`` (the bound math),
``_feedback`` (error feedback; silent features), ``_compile`` (the compact form), ``_recipe`` (what a ticket stores), ``_construct``
(the entry point), ``_sparse`` (a tolerance per layer for sparse tickets, refined layer by layer), ``_neurons`` (Malach's neuron
subnetworks).
"""
from ._block import CompiledBlock, LiftMix, PooledBias
from ._certificate import Certificate, LayerCertificate
from ._construct import CONSTRUCT_METHODS, MALACH_MAX_N, VERIFY, construct, default_n
from ._feedback import FeedbackCache
from ._layout import BlockSpec, HiddenLayout, LayerPlan, WideTensor
from ._policy import POLICIES
from ._recipe import ConstructRecipe
from ._sparse import construct_sparse, margin_agreement, sparse_tolerances
from .families import Family, family_of

__all__ = ["CONSTRUCT_METHODS", "MALACH_MAX_N", "BlockSpec", "Certificate", "CompiledBlock", "ConstructRecipe", "Family", "FeedbackCache", "HiddenLayout",
           "LayerCertificate", "LayerPlan", "LiftMix", "POLICIES", "PooledBias", "VERIFY", "WideTensor", "construct", "construct_sparse",
           "default_n", "family_of", "margin_agreement", "sparse_tolerances"]
