"""Supermask search: learn which random coefficients to keep (edge-popup) on the same coefficient layers.

:func:`run_search` / :class:`Searcher` run a :class:`SearchConfig` (models and data by name from
:data:`MODELS` / :data:`DATASETS`), with a sparsity ramp, per-layer or global top-k, checkpoints that resume,
``torchrun`` data parallelism, and a :class:`~equislt.ticket.Ticket` (seed + architecture + masks, the same
artifact as the construction's) at the end.
"""
from ._biprop import BipropSupermask, bake_biprop, enable_biprop
from ._config import SearchConfig, load_config
from ._engine import Searcher, run_search
from ._registry import DATASETS, MODELS, Task, build_model, build_task
from ._schedule import scheduled_sparsity
from ._ticket import SearchTicket, load_ticket, mask_digest, random_network, search_ticket
from ._train import recalibrate_batchnorm, train_scores

__all__ = ["BipropSupermask", "bake_biprop", "enable_biprop",
           "DATASETS", "MODELS", "SearchConfig", "SearchTicket", "Searcher", "Task", "build_model", "build_task",
           "load_config", "load_ticket", "mask_digest", "random_network", "recalibrate_batchnorm", "run_search",
           "scheduled_sparsity", "search_ticket", "train_scores"]
