"""Supermask search: learn which random coefficients to keep (edge-popup) on the same coefficient layers.

:func:`run_search` / :class:`Searcher` run a :class:`SearchConfig` (models and data by name from
:data:`MODELS` / :data:`DATASETS`), with a sparsity ramp, per-layer or global top-k, checkpoints that resume,
``torchrun`` data parallelism, and a :class:`~equislt.Ticket` (seed + architecture + masks, the same artifact as
the construction's, with a :class:`SearchRecipe`) at the end.
"""
from ._biprop import BipropSupermask, bake_biprop, enable_biprop
from ._config import SearchConfig, load_config
from ._engine import Searcher, run_search
from ._recipe import SearchRecipe, random_network, search_ticket
from ._registry import MODELS, ModelEntry, build_model, model_architecture
from ._schedule import scheduled_sparsity
from ._tasks import DATA_OPTIONS, DATASETS, Task, build_task, task_from_path
from ._train import recalibrate_batchnorm, train_scores

__all__ = ["BipropSupermask", "DATA_OPTIONS", "DATASETS", "MODELS", "ModelEntry", "SearchConfig", "SearchRecipe",
           "Searcher", "Task", "bake_biprop", "build_model", "build_task", "enable_biprop", "load_config",
           "model_architecture", "random_network", "recalibrate_batchnorm", "run_search", "scheduled_sparsity",
           "search_ticket", "task_from_path", "train_scores"]
