"""Checkpoints: atomic writes, periodic and last checkpoints, finding where to resume.

Layout: ``<output_dir>/checkpoints/`` holds ``last.ckpt`` plus periodic
``step=<global step>.ckpt`` files (the newest ``keep_last`` of them); other writers (the
launcher's preemption callback) may add ``*.ckpt`` files there too.  On start, the training
workflow resumes from the checkpoint with the highest global step that loads cleanly.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ptycho_torch.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_DIRNAME = "checkpoints"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, then renames it.

    A reader (or a restarted job) therefore never sees a half-written checkpoint.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        if get_filesystem(str(target)).protocol not in ("file", ("file", "local")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_path(target) as tmp:
            torch.save(checkpoint, tmp)


def checkpoint_callbacks(options: Mapping[str, Any], directory: Path) -> list[ModelCheckpoint]:
    """Periodic checkpoints (every N steps, else every epoch) plus a time-based one if asked.

    Each keeps the newest ``keep_last`` files (ranked by global step) and ``last.ckpt``.
    ``save_top_k >= 1`` is required for ``save_last`` to write during training.
    """
    common: dict[str, Any] = dict(
        dirpath=str(directory),
        filename="step={step}",
        auto_insert_metric_name=False,
        monitor="step",
        mode="max",
        save_top_k=int(options["keep_last"]),
        save_last=True,
        save_on_train_epoch_end=True,
    )
    callbacks: list[ModelCheckpoint] = []
    if options.get("every_n_steps"):
        callbacks.append(ModelCheckpoint(every_n_train_steps=int(options["every_n_steps"]), **common))
    else:
        callbacks.append(ModelCheckpoint(every_n_epochs=1, **common))
    if options.get("every_minutes"):
        timed: dict[str, Any] = dict(common, filename="time-step={step}")
        callbacks.append(ModelCheckpoint(train_time_interval=timedelta(minutes=float(options["every_minutes"])), **timed))
    return callbacks


def _checkpoint_step(path: Path) -> int | None:
    """The global step stored in a checkpoint, or None when it cannot be read."""
    try:
        # mmap: only the small metadata is read, not every tensor of every candidate
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is skipped, not fatal
        log.warning("skipping unreadable checkpoint %s (%s)", path, type(exc).__name__)
        return None
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        log.warning("skipping incomplete checkpoint %s", path)
        return None
    return int(state["global_step"])


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The readable checkpoint with the highest global step (newest file on ties), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = sorted(directory.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    best: tuple[int, Path] | None = None
    for path in candidates:
        step = _checkpoint_step(path)
        if step is not None and (best is None or step > best[0]):
            best = (step, path)
    return None if best is None else best[1]
