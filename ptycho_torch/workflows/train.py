"""The training workflow: ``run_training(payload)`` -> a trained model bundle.

Builds the data module, the model and a Lightning Trainer from the payload's plan (the
bridge's output) and nothing else, resumes from the newest valid checkpoint of the run when
there is one, and writes ``<output_dir>/model.ptpinn`` from rank 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ptycho_torch.bundle import save_bundle
from ptycho_torch.config.io import config_to_dict
from ptycho_torch.errors import CheckpointError, ConfigError
from ptycho_torch.factory import TrainingPayload
from ptycho_torch.workflows.checkpoints import (
    CHECKPOINT_DIRNAME,
    AtomicCheckpointIO,
    checkpoint_callbacks,
    find_resume_checkpoint,
)
from ptycho_torch.workflows.diagnostics import TrainingDiagnostics
from ptycho_torch.workflows.guard import CollapseGuard
from ptycho_torch.workflows.logging import build_logger
from ptycho_torch.workflows.progress import EpochProgressLines, show_progress_bar
from ptycho_torch.workflows.resume import DataOrderState

log = logging.getLogger(__name__)

BUNDLE_NAME = "model.ptpinn"


@dataclass(frozen=True)
class TrainingResult:
    """Where the outputs went and how far training got."""

    bundle_path: Path
    checkpoint_dir: Path
    global_step: int
    config_hash: str
    world_size: int
    resumed_from: Path | None = None
    completed: bool = True
    metrics: dict[str, float] = field(default_factory=dict)


def build_datamodule(payload: TrainingPayload):
    """The data module of a payload (opens and contract-checks the files)."""
    from ptycho_torch.data.datamodule import PtychoDataModule

    if payload.training.train_data_file is None:
        raise ConfigError("no training data file given", where="train_data_file", hint="set train_data_file in the config or pass --train-data-file")
    return PtychoDataModule(**payload.plan.data)


def build_module(payload: TrainingPayload, datamodule: Any):
    """The LightningModule of a payload, scaled by the training data's physics scale."""
    from ptycho_torch.model.module import PtychoPINNModule

    return PtychoPINNModule.from_plan(payload.plan.module, datamodule.probe, float(datamodule.mean_total_intensity))


def _check_device(payload: TrainingPayload) -> None:
    if payload.accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "GPU requested but none is available",
            where="execution.accelerator",
            found="gpu",
            hint="use accelerator 'auto' or 'cpu' on this machine",
        )


def _resolve_resume(resume: str | Path | None, checkpoint_dir: Path) -> Path | None:
    if resume in (None, "never"):
        return None
    if resume == "auto":
        return find_resume_checkpoint(checkpoint_dir)
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError("checkpoint to resume from not found", where=str(path), hint="use resume='auto' to pick the newest")
    return path


def build_trainer(
    payload: TrainingPayload,
    datamodule: Any,
    *,
    extra_callbacks: Sequence[Any] = (),
    plugins: Sequence[Any] = (),
    trainer_overrides: dict[str, Any] | None = None,
) -> L.Trainer:
    """A Lightning Trainer with every execution knob of the plan wired in.

    Lightning's progress bar is shown only when it is enabled and stdout is a terminal;
    otherwise :class:`~ptycho_torch.workflows.progress.EpochProgressLines` prints one line
    per epoch (a bar in a log file would be one long line of carriage returns).
    """
    plan = payload.plan
    output_dir = Path(plan.output_dir)
    trainer_args = {**plan.trainer, **(trainer_overrides or {})}
    trainer_args["enable_progress_bar"] = show_progress_bar(trainer_args.get("enable_progress_bar", True))
    callbacks = [
        *checkpoint_callbacks(plan.checkpoint, output_dir / CHECKPOINT_DIRNAME),
        DataOrderState(datamodule),
        TrainingDiagnostics(),  # readable loss, lr, gradient norm, intensity scale, snapshots
        CollapseGuard(),  # a constant output branch fails loudly (TrainingCollapseError)
        *([] if trainer_args["enable_progress_bar"] else [EpochProgressLines()]),
        *extra_callbacks,
    ]
    all_plugins = list(plugins)
    if not any(isinstance(p, AtomicCheckpointIO) for p in all_plugins):
        all_plugins.append(AtomicCheckpointIO())
    return L.Trainer(
        **trainer_args,
        callbacks=callbacks,
        logger=build_logger(plan.logger["backend"], output_dir),
        plugins=all_plugins,
    )


def run_training(
    payload: TrainingPayload,
    *,
    extra_callbacks: Sequence[Any] = (),
    plugins: Sequence[Any] = (),
    resume: str | Path | None = "auto",
    trainer_overrides: dict[str, Any] | None = None,
) -> TrainingResult:
    """Train the model of ``payload`` and write its bundle.

    ``resume``: ``"auto"`` continues from the newest valid checkpoint in
    ``<output_dir>/checkpoints`` when there is one (same step, same optimiser state, same
    data order); ``"never"``/None starts afresh; a path resumes from that checkpoint.
    ``extra_callbacks`` and ``plugins`` are handed to the Trainer (the launcher adds its
    preemption callback and its SLURM environment here); ``trainer_overrides`` replaces Trainer
    arguments of the plan that only change how it runs (the launcher's DDP strategy object
    with a collective timeout).  A callback that stops training
    early for a restart sets its attribute ``interrupted_training = True``; the bundle is then
    not written and ``TrainingResult.completed`` is False.
    """
    _check_device(payload)
    plan = payload.plan
    output_dir = Path(plan.output_dir)
    checkpoint_dir = output_dir / CHECKPOINT_DIRNAME
    L.seed_everything(plan.seed, workers=True, verbose=False)
    datamodule = build_datamodule(payload)
    module = build_module(payload, datamodule)
    trainer = build_trainer(payload, datamodule, extra_callbacks=extra_callbacks, plugins=plugins,
                            trainer_overrides=trainer_overrides)
    resume_path = _resolve_resume(resume, checkpoint_dir)
    if resume_path is not None and trainer.is_global_zero:
        log.info("resuming from %s", resume_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_path) if resume_path else None)

    bundle_path = output_dir / BUNDLE_NAME
    completed = not trainer.interrupted and not any(getattr(cb, "interrupted_training", False) for cb in extra_callbacks)
    if trainer.is_global_zero and completed:
        save_bundle(
            bundle_path,
            state_dict=module.state_dict(),
            training=config_to_dict(payload.training),
            physics={
                "mean_total_intensity": float(datamodule.mean_total_intensity),
                "nphotons": float(payload.training.nphotons),
            },
            config_hash=payload.config_hash,
            extra={"trained_steps": int(trainer.global_step), "world_size": int(trainer.world_size)},
        )
    trainer.strategy.barrier("bundle-written")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    return TrainingResult(
        bundle_path=bundle_path,
        checkpoint_dir=checkpoint_dir,
        global_step=int(trainer.global_step),
        config_hash=payload.config_hash,
        world_size=int(trainer.world_size),
        resumed_from=resume_path,
        completed=completed,
        metrics=metrics,
    )
