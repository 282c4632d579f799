"""Collapse guard: fail loudly when an output branch of the generator goes constant.

A known failure of this kind of training (issue 8; upstream PtychoPINN saw it too): the phase
(or amplitude) head saturates or dies, its output becomes one constant over every pixel of
every sample, and the loss stays stuck about 10x above a healthy run's for the rest of
training.  Nothing recovers from it, so spending the remaining budget is waste, and a bundle
written from it reconstructs nothing.

:class:`CollapseGuard` looks, every ``every_n_steps`` optimisation steps from ``start_step``
on, at the generator's output for the current batch (one extra forward pass without
gradients, well under 1% of the training cost at the defaults): the standard deviation over
the batch and the central ``N/2 x N/2`` pixels of the phase (radians) and of the amplitude
(relative to its mean).  When one of them is below ``min_std`` on ``patience`` consecutive
checks it raises :class:`~ptycho_torch.errors.TrainingCollapseError` naming the branch, the
step and the value, with the hint to retry with another seed (or a lower learning rate).
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch import Callback

from ptycho_torch.errors import TrainingCollapseError

__all__ = ["CollapseGuard", "branch_spread"]


@torch.no_grad()
def branch_spread(patches: torch.Tensor) -> dict[str, float]:
    """``{'amplitude': std/mean, 'phase': std (rad)}`` over the batch and the central N/2 region.

    ``patches``: ``[B, C, N, N]`` complex object patches from the generator.
    """
    n = patches.shape[-1]
    q = n // 4
    centre = patches[..., q : q + n // 2, q : q + n // 2]
    amp = centre.abs().float()
    phase = torch.atan2(centre.imag, centre.real).float()
    amp_mean = float(amp.mean().abs())
    return {
        "amplitude": float(amp.std()) / max(amp_mean, 1e-12),
        "phase": float(phase.std()),
    }


class CollapseGuard(Callback):
    """Raise :class:`TrainingCollapseError` when an output branch is constant (see module doc).

    Args:
        every_n_steps: check cadence in optimisation steps.
        start_step: first step checked (the very first steps may still be near the init).
        min_std: a branch whose spread (see :func:`branch_spread`) is below this is constant.
        patience: consecutive constant checks before raising.
    """

    def __init__(self, every_n_steps: int = 100, start_step: int = 200, min_std: float = 1e-3, patience: int = 2) -> None:
        super().__init__()
        if every_n_steps < 1 or patience < 1 or start_step < 0 or not (min_std > 0):
            raise ValueError("CollapseGuard: every_n_steps, patience >= 1, start_step >= 0, min_std > 0")
        self.every_n_steps, self.start_step = every_n_steps, start_step
        self.min_std, self.patience = min_std, patience
        self.strikes: dict[str, int] = {"amplitude": 0, "phase": 0}
        self.last: dict[str, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)
        if step < self.start_step or step % self.every_n_steps:
            return
        was_training = pl_module.generator.training
        pl_module.generator.eval()
        try:
            patches = pl_module.generate(batch["diffraction"], batch.get("offsets"))
        finally:
            pl_module.generator.train(was_training)
        self.last = branch_spread(patches)
        for branch, spread in self.last.items():
            if not math.isfinite(spread) or spread < self.min_std:
                self.strikes[branch] += 1
            else:
                self.strikes[branch] = 0
            if self.strikes[branch] >= self.patience:
                raise TrainingCollapseError(
                    f"the {branch} output of the generator went constant (training collapsed)",
                    where=f"training step {step}",
                    expected=f"{branch} spread >= {self.min_std:g} over the batch",
                    found=f"{spread:.3g} on {self.strikes[branch]} checks in a row",
                    hint="train again with another seed or a lower learning_rate (architecture 'resunet' did not collapse in the benchmark)",
                )
