"""The search engine: ``Searcher(config).run()`` / :func:`run_search` (edge-popup on coefficient masks).

One step: set the scheduled sparsity (per-layer ``_keep`` counts, or the global hook's budget), forward,
cross-entropy, backward into the scores only, optimizer and lr-schedule step. Each epoch ends with batch-norm
recalibration under the current mask and a test evaluation. Everything a run needs to continue is checkpointed
(``out/checkpoint.pt``); the final ticket is ``out/ticket.pt`` (an :class:`equislt.ticket.Ticket`).
Run under ``torchrun`` it trains with ``DistributedDataParallel`` (see ``_distributed``).
"""
from __future__ import annotations

import json
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .._device import resolve_device
from ..masks import Supermask, count_masks, mask_digest, n_keep
from ..models import Architecture
from ..nn import (GlobalTopK, MaskedLayer, coefficient_layers, coverage, mask_sources, masks_of, refresh,
                  score_parameters)
from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import SearchConfig
from ._distributed import DistributedContext, GlobalBatchSampler
from ._recipe import random_network, search_ticket
from ._registry import build_model
from ._schedule import scheduled_sparsity
from ._tasks import Task, build_task
from ._train import recalibrate_batchnorm

__all__ = ["Searcher", "run_search"]


def _version() -> str:
    from .. import __version__

    return __version__


class RunLock:
    """An exclusive lock on a run directory (``.lock``): a second search in the same ``out`` fails at once instead
    of interleaving the first one's metrics and overwriting its ticket. POSIX (``fcntl``; where there is none, as
    on Windows, runs are not locked); released on exit."""

    def __init__(self, folder: Optional[Path]):
        self.folder, self.handle = folder, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # no POSIX file locks on this platform
            return self
        if self.folder is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.folder / ".lock", "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            self.handle = None
            raise ValueError(f"search: another search is running in {self.folder} (it holds {self.folder / '.lock'}); "
                             "wait for it, or use another out directory") from None
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
        return False


def _accuracy(value: Optional[float]) -> str:
    return "n/a (no test samples)" if value is None else f"{value:.4f}"


def _numpy_state(saved=None):
    """numpy's global RNG state as plain values (a checkpoint holds no numpy objects), or back from them."""
    if saved is None:
        name, keys, position, has_gauss, gauss = np.random.get_state()
        return [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)]
    name, keys, position, has_gauss, gauss = saved
    return name, keys.numpy().astype(np.uint32), position, has_gauss, gauss


class Searcher:
    """Supermask search for one :class:`SearchConfig`.

    ``task``: a :class:`~equislt.search.Task` to search on instead of ``config.data`` (your own data).
    ``log``: where one-line messages go (rank 0 only).
    """

    def __init__(self, config: SearchConfig, task: Optional[Task] = None, log: Callable[[str], None] = tqdm.write):
        self.config = config
        self.device = resolve_device(config.device, "SearchConfig.device")
        self.ctx = DistributedContext.from_environment(self.device)
        self.log = log if self.ctx.is_main else (lambda *_: None)
        self.out = Path(config.out) if config.out else None
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)

        self.task = task if task is not None else build_task(config.data, config.data_kwargs, config.data_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            probe = build_model(config.model, config.model_kwargs, self.task)
        self.architecture = Architecture.of(probe)
        layers = [p for p, _ in coefficient_layers(probe)]
        if not layers:
            raise ValueError(f"search: model {config.model!r} has no layer equislt can mask")
        dense = (({layers[0]} if config.first_layer_dense else set())
                 | ({layers[-1]} if config.last_layer_dense else set()))
        self.masked = [p for p in layers if p not in dense]
        if not self.masked:
            raise ValueError("search: first_layer_dense/last_layer_dense leave no layer to mask")
        self._check_model_takes_data(probe)
        del probe

        self.steps_per_epoch = len(self.task.train) // config.batch_size
        if config.epochs and not self.steps_per_epoch:
            raise ValueError(f"search: the training set ({len(self.task.train)} samples) is smaller than one batch "
                             f"(batch_size={config.batch_size})")
        self.total_steps = config.epochs * self.steps_per_epoch
        self.model = random_network(self.architecture, config.seed, self.masked,
                                    sparsity=self._sparsity_at(0), scope=config.scope,
                                    weight_init=config.weight_init, include=config.include).to(self.device)
        self.task.move_graph(self.device)
        self._check_every_layer_keeps_something()
        if config.biprop:
            from ._biprop import enable_biprop

            enable_biprop(self.model)
        self.scores = score_parameters(self.model)
        if config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.scores, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(self.scores, lr=config.lr, momentum=config.momentum,
                                             weight_decay=config.weight_decay)
        self.schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(self.total_steps, 1))
                         if config.cosine else None)
        self.trainer = self.model
        if self.ctx.distributed:
            import inspect

            from torch.nn.parallel import DistributedDataParallel

            # batch-norm buffers are re-estimated identically on every process before each evaluation, so
            # they need no broadcast before every forward (torch >= 2.13 renamed broadcast_buffers)
            sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
                DistributedDataParallel.__init__).parameters else "broadcast_buffers"
            devices = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.trainer = DistributedDataParallel(self.model, **devices, **{sync: not config.recalibrate_bn})
        self.sampler = GlobalBatchSampler(len(self.task.train), config.batch_size, config.seed,
                                          self.ctx.rank, self.ctx.world_size)
        self.epoch, self.batch, self.step = 0, 0, 0
        self.history: List[dict] = []
        self.epoch_seconds: List[float] = []

    # -- schedule ------------------------------------------------------------------------------------------
    def _sparsity_at(self, step: int) -> float:
        c = self.config
        return scheduled_sparsity(step, self.total_steps, c.sparsity, c.ramp, c.ramp_start, c.ramp_shape)

    def set_sparsity(self, sparsity: float) -> None:
        """Apply ``sparsity`` now: per-layer ``_keep`` counts, or the global hook's budget."""
        if self.config.scope == "global":
            GlobalTopK.of(self.model).sparsity = float(sparsity)
            return
        for _, source in mask_sources(self.model):
            if isinstance(source, Supermask):
                source.sparsity = float(sparsity)
                for name in source.names:
                    source.set_keep(name, n_keep(source.scores(name).numel(), sparsity))

    def _check_finite(self, what: str, *tensors: torch.Tensor) -> None:
        """Stop the run, naming the step, as soon as ``tensors`` hold NaN or inf (nothing finishes broken)."""
        if not all(bool(torch.isfinite(t).all()) for t in tensors):
            raise FloatingPointError(f"search: {what} became NaN or inf at step {self.step + 1} (epoch "
                                     f"{self.epoch + 1}); lower the learning rate (lr={self.config.lr}) or check the "
                                     "data; the last checkpoint is kept")

    def _check_model_takes_data(self, model: nn.Module) -> None:
        """One forward pass on a training batch: a model that does not fit the data fails now, named."""
        batch = next(iter(self.task.loader(self.task.train, batch_size=2, shuffle=False)), None)
        if batch is None:
            raise ValueError("search: the training set is empty")
        try:
            with torch.no_grad():  # on the CPU, before anything moves to the device
                logits, labels = self.task.logits_and_labels(model.eval(), batch)
        except (RuntimeError, ValueError, AssertionError, TypeError) as err:
            raise ValueError(f"search: model {self.config.model!r} does not take the data's batches: "
                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        if logits.dim() != 2 or logits.shape[1] < self.task.num_classes:
            raise ValueError(f"search: model {self.config.model!r} gives logits of shape {list(logits.shape)} for "
                             f"{self.task.num_classes} classes")

    def _check_every_layer_keeps_something(self) -> None:
        """Per-layer top-k at this sparsity: a layer that would keep no coefficient at all is an error, a tensor
        that would keep none (a small bias, say) is said in the log."""
        if self.config.scope != "layer":
            return
        for path, layer in coefficient_layers(self.model):
            if isinstance(layer, MaskedLayer) and isinstance(layer.mask, Supermask):
                empty = [n for n in layer.mask.names if n_keep(layer.mask.scores(n).numel(), self.config.sparsity) == 0]
                if empty and len(empty) == len(layer.mask.names):
                    raise ValueError(f"search: at sparsity {self.config.sparsity} layer {path} keeps no coefficient "
                                     "(too few coefficients); lower the sparsity or leave the layer dense "
                                     "(first_layer_dense/last_layer_dense)")
                if empty:
                    self.log(f"warning: at sparsity {self.config.sparsity} layer {path} keeps none of its {empty}")

    # -- evaluation ----------------------------------------------------------------------------------------
    def _forward(self, model, batch):
        return self.task.logits_and_labels(model, self.task.to(batch, self.device))

    def _autocast(self):
        """bfloat16 autocast for the training forward passes (``amp="bf16"``); evaluation stays float32, so the
        reported accuracy is the ticket's."""
        if self.config.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def recalibrate(self) -> None:
        """Re-estimate batch-norm statistics with the current mask on the whole training set (every process
        the same pass, so the statistics agree across processes)."""
        loader = self.task.loader(self.task.train, batch_size=self.config.batch_size, shuffle=False)
        recalibrate_batchnorm(self.model, loader, forward=lambda m, b: self._forward(m, b))

    @torch.no_grad()
    def evaluate(self, dataset=None) -> Optional[float]:
        """Accuracy on ``dataset`` (default the test set), split over the processes; ``None`` without samples."""
        dataset = self.task.test if dataset is None else dataset
        shard = self.task.subset(dataset, range(self.ctx.rank, len(dataset), self.ctx.world_size))
        loader = self.task.loader(shard, batch_size=256, shuffle=False)
        was = self.model.training
        self.model.eval()
        refresh(self.model)
        correct = count = 0
        try:
            for batch in loader:
                logits, labels = self._forward(self.model, batch)
                correct += int((logits.argmax(-1) == labels).sum())
                count += len(labels)
        finally:
            self.model.train(was)
        correct, count = self.ctx.sum([correct, count])
        return correct / count if count else None

    # -- checkpoints ---------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.out / "checkpoint.pt" if self.out else None

    def _trainable_state(self) -> Dict[str, torch.Tensor]:
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None or not self.ctx.is_main:
            return
        save_checkpoint({
            "version": _version(), "seed": self.config.seed, "config": self.config.as_dict(),
            "world_size": self.ctx.world_size, "position": {"epoch": self.epoch, "batch": self.batch,
                                                            "step": self.step},
            "state": self._trainable_state(), "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_state()},
            "history": self.history, "epoch_seconds": self.epoch_seconds, "data": self.task.fingerprint(),
        }, self.checkpoint_path)

    def load_checkpoint(self, path) -> None:
        payload = load_checkpoint(path)
        saved = SearchConfig.from_dict(payload["config"]).result_fields()
        mine = self.config.result_fields()
        changed = sorted(k for k in mine if saved.get(k) != mine[k])
        if changed:
            raise ValueError(f"search: cannot resume {path}: it was written with different {changed} "
                             f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); use another out directory")
        data = self.task.fingerprint()
        if payload.get("data") != data:
            raise ValueError(f"search: cannot resume {path}: the data changed since it was written (saved: "
                             f"{payload.get('data')}, now: {data}); restore the data, or start again (--no-resume) "
                             "or in another out directory")
        missing, unexpected = self.model.load_state_dict(payload["state"], strict=False)
        if unexpected:
            raise ValueError(f"search: checkpoint {path} has state this model lacks: {unexpected[:5]}")
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(payload["schedule"])
        torch.set_rng_state(payload["rng"]["torch"])
        random.setstate(payload["rng"]["python"])
        np.random.set_state(_numpy_state(payload["rng"]["numpy"]))
        position = payload["position"]
        self.epoch, self.batch, self.step = position["epoch"], position["batch"], position["step"]
        self.history = list(payload["history"])
        self.epoch_seconds = list(payload["epoch_seconds"])
        # the global hook's budget is not state: set it (and the per-layer counts) as at the last step done
        self.set_sparsity(self._sparsity_at(max(self.step - 1, 0)))
        self.log(f"resumed {path} at epoch {self.epoch + 1}, step {self.step}/{self.total_steps} "
                 f"(written by equislt {payload['version']})")

    # -- metrics -------------------------------------------------------------------------------------------
    def _metrics(self, record: dict) -> None:
        if record.get("kind") == "epoch":
            self.history.append(record)
        if self.out is not None and self.ctx.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _trim_metrics(self) -> None:
        """After a resume, drop metric lines written after the checkpoint (they will be written again)."""
        path = self.out / "metrics.jsonl" if self.out else None
        if path is None or not path.exists() or not self.ctx.is_main:
            return
        records = []
        for line in path.read_text().splitlines():
            try:  # a line torn by a kill mid-write is dropped (it is written again)
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("step", 0) <= self.step and not (
                    record.get("kind") == "epoch" and record.get("epoch", 0) > self.epoch):
                records.append(line)
        path.write_text("".join(line + "\n" for line in records))

    # -- the run -------------------------------------------------------------------------------------------
    def run(self, max_steps: Optional[int] = None) -> Optional[dict]:
        """Search to the end and return the result, or stop after ``max_steps`` steps in all (counting steps done
        before a resume), having written a checkpoint, and return ``None``."""
        with RunLock(self.out if self.ctx.is_main else None):
            return self._run(max_steps)

    def _run(self, max_steps: Optional[int]) -> Optional[dict]:
        c = self.config
        if c.resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
            self._trim_metrics()
        elif self.out is not None and self.ctx.is_main and (self.out / "metrics.jsonl").exists():
            (self.out / "metrics.jsonl").unlink()
        self.ctx.barrier()
        if self.step == 0:
            self.log(f"search: {c.model} on {self.task.source}, {len(self.task.train)} training samples, "
                     f"{self.total_steps} steps, sparsity {c.sparsity} ({c.scope}), "
                     f"{self.ctx.world_size} process(es) on {self.device}" + (" (bf16 autocast)" if c.amp else ""))
            frozen = coverage(self.model).named("frozen")
            if frozen:
                self.log(f"search: {len(frozen)} parameter(s) no mask covers stay dense at their random value: "
                         f"{', '.join(frozen[:8])}{', ...' if len(frozen) > 8 else ''} (equislt.nn.coverage)")
        loss_fn = nn.CrossEntropyLoss()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (c.progress and self.ctx.is_main),
                   desc="search", leave=False)
        try:
            while self.epoch < c.epochs:
                if self.batch < self.steps_per_epoch:
                    self.sampler.set_epoch(self.epoch, self.batch)
                    loader = self.task.loader(self.task.train, batch_sampler=self.sampler)
                    start = time.perf_counter()
                    self.model.train()
                    for batch in loader:
                        sparsity = self._sparsity_at(self.step)
                        self.set_sparsity(sparsity)
                        with self._autocast():
                            logits, labels = self._forward(self.trainer, batch)
                        loss = loss_fn(logits.float(), labels)
                        self._check_finite("the loss", loss)
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        self.optimizer.step()
                        self._check_finite("the scores", *self.scores)
                        if self.schedule is not None:
                            self.schedule.step()
                        self.step += 1
                        self.batch += 1
                        if c.log_every and self.step % c.log_every == 0:
                            mean_loss = self.ctx.sum([float(loss.detach())])[0] / self.ctx.world_size
                            self._metrics({"kind": "step", "step": self.step, "epoch": self.epoch + 1,
                                           "loss": mean_loss, "lr": self.optimizer.param_groups[0]["lr"],
                                           "scheduled_sparsity": sparsity})
                            bar.set_postfix(loss=f"{mean_loss:.3f}", sparsity=f"{sparsity:.2f}", refresh=False)
                        bar.update(1)
                        if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                            self.save_checkpoint()
                        if max_steps is not None and self.step >= max_steps:
                            self.save_checkpoint()
                            return None
                    self.epoch_seconds.append(time.perf_counter() - start)
                while len(self.epoch_seconds) < self.epoch + 1:  # an epoch resumed at its very end: no time
                    self.epoch_seconds.append(None)
                self._end_epoch()
                if max_steps is not None and self.step >= max_steps:
                    return None
            return self._finish()
        finally:
            bar.close()  # no barrier here: after an error on one process the others must not wait forever

    def _end_epoch(self) -> None:
        if self.config.recalibrate_bn:
            self.recalibrate()
        accuracy = self.evaluate()
        counts = count_masks(masks_of(self.model))
        self.epoch += 1
        self.batch = 0
        # wall time of this epoch's steps in this process (partial after a resume; None if resumed at its end)
        seconds = self.epoch_seconds[self.epoch - 1]
        self._metrics({"kind": "epoch", "step": self.step, "epoch": self.epoch, "test_accuracy": accuracy,
                       "sparsity": counts.sparsity, "epoch_seconds": seconds})
        self.log(f"epoch {self.epoch}/{self.config.epochs}: test accuracy {_accuracy(accuracy)}, "
                 f"sparsity {counts.sparsity:.3f}" + (f", {seconds:.1f} s" if seconds else ""))
        self.save_checkpoint()

    def _finish(self) -> dict:
        c = self.config
        if c.recalibrate_bn:
            self.recalibrate()
        accuracy = self.evaluate()
        train_accuracy = self.evaluate(self.task.train)  # beside the held-out one: under- or over-fitting
        self.model.eval().cpu()  # the ticket, its masks and its probe fingerprint live on the CPU
        self.task.move_graph(torch.device("cpu"))
        masks = masks_of(self.model)
        digest = mask_digest(masks)
        digests = self.ctx.gather_objects(digest)
        counts = count_masks(masks)
        all_coefficients = sum(p.numel() for n, p in self.model.named_parameters()
                               if not n.endswith("_scores") and any(n.startswith(f"{path}.") for path, _ in
                                                                   coefficient_layers(self.model)))
        per_layer = {path: {n: float(m.float().mean()) for n, m in named.items()} for path, named in masks.items()}
        ticket = search_ticket(self.model, c.seed, c.weight_init, biprop=c.biprop,
                               metadata={"test_accuracy": accuracy, "config": c.as_dict()},
                               probe=self.task.probe(self.model))
        result = {
            "version": _version(), "config": c.as_dict(), "data": self.task.source, "device": str(self.device),
            "seed": c.seed,
            "world_size": self.ctx.world_size,
            "steps": self.step, "test_accuracy": accuracy, "train_accuracy": train_accuracy,
            "sparsity": counts.sparsity,
            "coefficients_kept": counts.kept, "coefficients_masked": counts.total,
            "coefficients_all_layers": all_coefficients, "density_per_layer": per_layer,
            "coverage": coverage(self.model).counts(),
            "epoch_seconds": self.epoch_seconds,
            "mean_epoch_seconds": (float(np.mean([t for t in self.epoch_seconds if t is not None]))
                                   if any(t is not None for t in self.epoch_seconds) else None),
            "mask_digest": digest, "rank_mask_digests": digests, "ranks_agree": len(set(digests)) == 1,
            "history": self.history,
        }
        if not result["ranks_agree"]:
            raise RuntimeError(f"search: the processes ended with different masks ({digests})")
        self.ticket = ticket
        if self.out is not None and self.ctx.is_main:
            ticket.save(self.out / "ticket.pt")
            result["ticket"] = str(self.out / "ticket.pt")
            (self.out / "result.json").write_text(json.dumps(result, indent=2))
            try:
                from ._plots import plot_run

                plot_run(self.out / "metrics.jsonl", self.out / "accuracy.png")
                result["plot"] = str(self.out / "accuracy.png")
            except ImportError:
                pass
        self.ctx.barrier()  # rank 0 has written the ticket when any process returns
        self.log(f"search done: test accuracy {_accuracy(accuracy)} (training set {_accuracy(train_accuracy)}) "
                 f"at sparsity {counts.sparsity:.3f} ({counts.kept}/{counts.total} coefficients kept)"
                 + (f"; ticket saved to {self.out / 'ticket.pt'}" if self.out else ""))
        return result

    def close(self) -> None:
        self.ctx.close()


def run_search(config: SearchConfig, task: Optional[Task] = None, log: Callable[[str], None] = tqdm.write,
               max_steps: Optional[int] = None) -> Optional[dict]:
    """Run (or resume) a search; returns the result dict (``None`` if stopped early by ``max_steps``)."""
    searcher = Searcher(config, task=task, log=log)
    try:
        return searcher.run(max_steps=max_steps)
    finally:
        searcher.close()
