"""Optimizers and learning-rate schedulers named by the canonical TrainingConfig.

Everything here takes plain values (the ``optim`` dict of
:class:`~ptycho_torch.model.module.PtychoPINNModule`) and returns what Lightning's
``configure_optimizers`` expects.  Schedulers step once per epoch.

Scheduler meanings (a documented choice where upstream has no extra knobs):

- ``Default``: constant learning rate (no scheduler).
- ``Exponential``: ``lr * gamma**epoch`` with ``gamma = lr_min_ratio ** (1 / nepochs)``,
  so the rate reaches ``lr * lr_min_ratio`` after ``nepochs`` epochs.
- ``WarmupCosine``: linear warm-up over ``lr_warmup_epochs`` (from ``lr / W`` to
  ``lr``), then a half cosine from ``lr`` down to ``lr * lr_min_ratio`` at ``nepochs``.
- ``ReduceLROnPlateau``: halve the rate after 2 epochs without improvement of the
  monitored metric (``PLATEAU_MONITOR``), never below ``lr * lr_min_ratio``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable

import torch

from ptycho_torch.config.canonical import TrainingConfig

__all__ = ["OPTIMIZERS", "SCHEDULERS", "PLATEAU_MONITOR", "build_optimizer", "build_scheduler"]

OPTIMIZERS: tuple[str, ...] = typing.get_args(TrainingConfig.model_fields["optimizer"].annotation)
"""Accepted ``optimizer`` names (the schema's choices; each is built below)."""

SCHEDULERS: tuple[str, ...] = typing.get_args(TrainingConfig.model_fields["scheduler"].annotation)
"""Accepted ``scheduler`` names (the schema's choices; each is built below)."""

PLATEAU_MONITOR = "train_loss"
"""Metric ReduceLROnPlateau watches: logged every epoch whether or not validation runs."""


def build_optimizer(params: Iterable[torch.nn.Parameter], optim: dict) -> torch.optim.Optimizer:
    """The optimizer named by ``optim['optimizer']`` over ``params``."""
    name, lr, wd = optim["optimizer"], float(optim["learning_rate"]), float(optim["weight_decay"])
    betas = (float(optim["adam_beta1"]), float(optim["adam_beta2"]))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(optim["momentum"]), weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; valid: {OPTIMIZERS}")


def warmup_cosine_factor(epoch: int, warmup: int, nepochs: int, min_ratio: float) -> float:
    """Learning-rate multiplier of WarmupCosine at ``epoch`` (0-based)."""
    if warmup > 0 and epoch < warmup:
        return (epoch + 1) / warmup
    span = max(1, nepochs - warmup)
    t = min(1.0, (epoch - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, optim: dict) -> dict | None:
    """Lightning ``lr_scheduler`` config dict for ``optim['scheduler']`` (None for Default)."""
    name = optim["scheduler"]
    ratio, nepochs = float(optim["lr_min_ratio"]), max(1, int(optim["nepochs"]))
    if name == "Default":
        return None
    if name == "Exponential":
        gamma = ratio ** (1.0 / nepochs)
        exponential = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
        return {"scheduler": exponential, "interval": "epoch"}
    if name == "WarmupCosine":
        warmup = int(optim["lr_warmup_epochs"])
        warmup_cosine = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: warmup_cosine_factor(e, warmup, nepochs, ratio)
        )
        return {"scheduler": warmup_cosine, "interval": "epoch"}
    if name == "ReduceLROnPlateau":
        min_lr = float(optim["learning_rate"]) * ratio
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2, min_lr=min_lr)
        return {"scheduler": plateau, "interval": "epoch", "monitor": PLATEAU_MONITOR}
    raise ValueError(f"unknown scheduler {name!r}; valid: {SCHEDULERS}")
