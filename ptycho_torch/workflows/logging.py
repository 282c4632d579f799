"""Loggers and the callback that puts images of the current reconstruction in the logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger


METRICS_DIRNAME = "metrics"


def next_attempt_dir(root: Path) -> str:
    """``attempt-<k>``, one past the highest attempt folder under ``root``."""
    numbers = [int(p.name.split("-", 1)[1]) for p in Path(root).glob("attempt-*") if p.name.split("-", 1)[1].isdigit()]
    return f"attempt-{max(numbers, default=-1) + 1}"


def build_logger(backend: str, output_dir: Path) -> Logger | bool:
    """TensorBoard (default), CSV, or no logger, writing under ``<output_dir>/metrics``.

    History survives restarts (resume after a preemption or a crash): TensorBoard appends
    new event files to ``metrics/`` (TensorBoard shows them as one run); the CSV logger
    would delete an existing ``metrics.csv``, so each attempt writes its own
    ``metrics/attempt-<k>/metrics.csv`` and :func:`read_metrics_history` joins them.
    """
    root = Path(output_dir) / METRICS_DIRNAME
    if backend == "tensorboard":
        return TensorBoardLogger(save_dir=str(output_dir), name=METRICS_DIRNAME, version="")
    if backend == "csv":
        return CSVLogger(save_dir=str(output_dir), name=METRICS_DIRNAME, version=next_attempt_dir(root))
    return False


def read_metrics_history(output_dir: Path) -> list[dict[str, str]]:
    """All CSV metric rows of every attempt as one history, ordered by step.

    Where attempts overlap (a restart from a checkpoint older than the last logged step),
    the later attempt's rows win for those steps.
    """
    import csv

    root = Path(output_dir) / METRICS_DIRNAME
    attempts = sorted((p for p in root.glob("attempt-*/metrics.csv")), key=lambda p: int(p.parent.name.split("-", 1)[1]))
    rows: list[dict[str, str]] = []
    for path in attempts:
        with path.open(newline="", encoding="utf-8") as handle:
            new = [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(handle)]
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first] + new
    return sorted(rows, key=lambda r: int(r["step"]))


def _to_unit_range(image: torch.Tensor) -> torch.Tensor:
    low, high = image.min(), image.max()
    return (image - low) / (high - low + 1e-12)


class ReconstructionImages(Callback):
    """At the end of each training epoch, log amplitude and phase of a fixed sample (rank 0).

    Uses the first batch of the training data, so the images show the same patches
    throughout training.  Only loggers with an image API (TensorBoard) receive them.
    """

    def __init__(self, max_patches: int = 4) -> None:
        self.max_patches = max_patches
        self._batch: dict[str, torch.Tensor] | None = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._batch is None and trainer.is_global_zero:
            self._batch = {key: value[:1].detach().clone() for key, value in batch.items() if torch.is_tensor(value)}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or self._batch is None:
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        with torch.no_grad():
            patches = pl_module.predict_patches(
                self._batch["diffraction"].to(pl_module.device), self._batch["offsets"].to(pl_module.device)
            )[0, : self.max_patches].cpu()
        amplitude = torch.cat([_to_unit_range(p.abs()) for p in patches], dim=-1)
        phase = torch.cat([_to_unit_range(p.angle()) for p in patches], dim=-1)
        experiment.add_image("reconstruction/amplitude", amplitude.unsqueeze(0), trainer.global_step)
        experiment.add_image("reconstruction/phase", phase.unsqueeze(0), trainer.global_step)
