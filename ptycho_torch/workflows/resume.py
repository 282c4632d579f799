"""Exact resume: the position in the data order is saved in every checkpoint and restored.

Lightning restores the weights, the optimiser and its loop counters, but a plain data loader
restarts its epoch from the first batch.  This callback stores ``(epoch, batches done in
that epoch)`` in each checkpoint and, on resume, points the data module's sampler at the
same epoch's order with the done batches skipped, so an interrupted and resumed run sees
exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class DataOrderState(Callback):
    """Saves and restores the training data position (see module docstring)."""

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule
        self._trainer: Trainer | None = None
        self._restored: dict[str, int] | None = None

    @property
    def state_key(self) -> str:
        return "DataOrderState"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, int]:
        trainer = self._trainer
        if trainer is None:
            return {}
        return {
            "epoch": int(trainer.current_epoch),
            # at run time ``current`` is a _ProcessedTracker; Lightning annotates it as its parent class
            "batches_done": int(trainer.fit_loop.epoch_loop.batch_progress.current.processed),  # type: ignore[attr-defined]
            "batch_size": int(self.datamodule.batch_size),
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._restored = dict(state_dict) or None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._restored:
            return
        epoch, done = self._restored["epoch"], self._restored["batches_done"]
        batch_size = self._restored["batch_size"]
        sampler = self.datamodule.train_sampler
        batches_per_epoch = math.ceil(len(sampler) / batch_size)
        if done >= batches_per_epoch:
            epoch, done = epoch + 1, 0
        sampler.set_epoch(epoch)
        self.datamodule.skip_train_samples(min(done * batch_size, len(sampler)))
        self._restored = None
