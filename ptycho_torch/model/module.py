"""PtychoPINNModule: the LightningModule that trains the generator through the physics.

Data flow for a batch (docs/conventions.md)::

    diffraction X [B,C,N,N] (raw amplitude)
      -> X_norm = X * (N/2) / sqrt(mean_total_intensity)         (network input)
      [-> + physics estimate of each patch from X_norm and the probe (estimate_iters > 0),
          physics/estimate.py: [B, 3C, N, N]]
      -> generator (model.registry) -> object patches O [B,C,N,N] complex64
      -> ForwardModel: overlap constraint (g>1, object_big) -> O * P_n / probe_scale
         (x probe mask) -> far-field amplitude A [B,C,N,N]
      -> loss(A, X_norm) with photon scales (Poisson NLL and/or MAE)

Units.  The whole loss is evaluated in normalised units.  With
``s_norm = sqrt(nphotons) / (N/2)`` the measured counts ``(s_norm * X_norm)^2`` equal
``(s * X)^2`` with the docs/physics.md scale ``s = sqrt(nphotons / mean_total_intensity)``
on raw amplitudes, so the likelihood is the same; only the constant divisor "mean of
X" is taken on ``X_norm`` (so the loss value does not depend on the file's units).
The trainable ``log_intensity_scale`` starts at ``log(s_norm)`` and multiplies only the
prediction.

Probe normalisation.  The amplitude head is bounded (sigmoid <= 1), so the probe is
rescaled so that objects of amplitude <= 1 can explain the data: the effective
illumination (probe, smoothed, times the mask) gets L2 norm ``PROBE_NORM_PER_N * N``
(= 4N).  Then ``sum_hw |O P_n / probe_scale|^2 = (N/2)^2`` -- the mean total intensity
of ``X_norm`` -- for a uniform object of amplitude ``probe_scale / 8`` (0.5 at the
default probe_scale 4, the sigmoid's midpoint).  The normalised probe is what is stored
in the state_dict.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from ptycho_torch.config.bridge import ModulePlan, module_plan_from_values
from ptycho_torch.config.canonical import ModelConfig
from ptycho_torch.errors import ConfigError
from ptycho_torch.model.optim import build_optimizer, build_scheduler
from ptycho_torch.model.registry import build_generator
from ptycho_torch.physics.estimate import ESTIMATE_FEATURES, estimate_features
from ptycho_torch.physics.forward import ForwardModel, gaussian_smooth, probe_disk_mask
from ptycho_torch.physics.loss import combined_loss

__all__ = ["PROBE_NORM_PER_N", "normalise_probe", "PtychoPINNModule"]

PROBE_NORM_PER_N = 4.0
"""The normalised illumination has L2 norm ``PROBE_NORM_PER_N * N`` (see module doc)."""


def _bad(where: str, expected: str, found: object, hint: str) -> ConfigError:
    return ConfigError(where=where, expected=expected, found=repr(found), hint=hint)


def normalise_probe(probe: torch.Tensor, model: ModelConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale ``probe [N, N]`` complex so the effective illumination has norm 4N; build the mask.

    Returns ``(probe_n complex64 [N, N], mask float32 [N, N] or None)``.
    """
    n = model.N
    mask = probe_disk_mask(n, model.mask_diameter, model.probe_mask_sigma) if model.probe_mask else None
    effective = gaussian_smooth(probe, model.gaussian_smoothing_sigma)
    if mask is not None:
        effective = effective * mask
    norm = float(effective.abs().square().sum().sqrt())
    if not math.isfinite(norm) or norm <= 0:
        raise _bad("probe", "a probe with finite, non-zero illumination", f"L2 norm {norm}", "check probeGuess / the probe mask")
    return (probe * (PROBE_NORM_PER_N * n / norm)).to(torch.complex64), mask


class PtychoPINNModule(L.LightningModule):
    """Physics-informed ptychography model (generator + forward model + loss).

    Every setting comes from the canonical schema (:mod:`ptycho_torch.config.canonical`), the
    one place that defines the defaults and checks them: the training and inference workflows
    build the module with :meth:`from_plan` from the bridge's
    :class:`~ptycho_torch.config.bridge.ModulePlan`; building it by hand, the mappings below
    are validated (and completed with the defaults) by that same schema.

    Args:
        model: a :class:`~ptycho_torch.config.canonical.ModelConfig`, or a mapping of its fields.
        probe: ``(N, N)`` complex probe (numpy or torch); normalised, see module doc.
        mean_total_intensity: mean over training patterns of ``sum_hw X^2`` (raw units).
        nphotons: expected total counts per pattern (TrainingConfig.nphotons).
        loss: the loss fields of TrainingConfig (:data:`~ptycho_torch.config.bridge.LOSS_FIELDS`).
        intensity_scale_trainable: learn ``log_intensity_scale`` (init ``log s_norm``).
        probe_trainable: learn the probe.
        optim: the optimiser fields of TrainingConfig (:data:`~ptycho_torch.config.bridge.OPTIM_FIELDS`).
    """

    measured_scale: torch.Tensor  # buffer: sqrt(nphotons) / (N/2)
    log_intensity_scale: torch.Tensor  # parameter, or a buffer when the scale is fixed

    def __init__(
        self,
        model: ModelConfig | dict | None = None,
        probe: np.ndarray | torch.Tensor | None = None,
        mean_total_intensity: float = 1.0,
        nphotons: float = 1e9,
        loss: dict | None = None,
        intensity_scale_trainable: bool = True,
        probe_trainable: bool = False,
        optim: dict | None = None,
    ) -> None:
        super().__init__()
        plan = module_plan_from_values(model, loss, optim, nphotons=nphotons,
                                       intensity_scale_trainable=intensity_scale_trainable,
                                       probe_trainable=probe_trainable)
        cfg = plan.model
        n = cfg.N
        if probe is None:
            raise _bad("probe", f"a complex ({n}, {n}) array", None, "pass the scan's probeGuess")
        probe_t = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe).to(torch.complex64)
        if probe_t.shape != (n, n):
            raise _bad("probe", f"shape ({n}, {n}) to match model.N", tuple(probe_t.shape), "N must equal the probe size")
        if not (math.isfinite(mean_total_intensity) and mean_total_intensity > 0):
            raise _bad("mean_total_intensity", "a finite value > 0", mean_total_intensity, "compute it from the training diffraction")
        self.save_hyperparameters(ignore=["probe"])
        # the resolved values, as plain data (checkpoints reload them through this same constructor)
        self.hparams.update(model=cfg.model_dump(mode="python"), loss=dict(plan.loss), optim=dict(plan.optim))
        self.model_cfg = cfg
        self.loss_cfg, self.optim_cfg = dict(plan.loss), dict(plan.optim)
        self.N, self.C = n, cfg.channels
        self.mean_total_intensity = float(mean_total_intensity)
        self.estimate_iters = cfg.estimate_iters

        input_channels = self.C * (1 + ESTIMATE_FEATURES) if self.estimate_iters else self.C
        self.generator = build_generator(
            cfg.architecture, n, cfg.gridsize, cfg.n_filters_scale, cfg.amp_activation, cfg.probe_big, cfg.pad_object,
            input_channels=input_channels,
        )
        probe_n, mask = normalise_probe(probe_t, cfg)
        self.forward_model = ForwardModel(
            probe_n, cfg.probe_scale, mask, plan.probe_trainable, cfg.object_big, cfg.gaussian_smoothing_sigma
        )
        self.register_buffer("measured_scale", torch.tensor(math.sqrt(plan.nphotons) / (n / 2)))
        log_s = torch.log(self.measured_scale.clone())
        if plan.intensity_scale_trainable:
            self.log_intensity_scale = torch.nn.Parameter(log_s)
        else:
            self.register_buffer("log_intensity_scale", log_s)

    @classmethod
    def from_plan(cls, plan: ModulePlan, probe: np.ndarray | torch.Tensor, mean_total_intensity: float) -> "PtychoPINNModule":
        """The module of a bridge :class:`~ptycho_torch.config.bridge.ModulePlan` (training and inference)."""
        return cls(
            model=plan.model, probe=probe, mean_total_intensity=mean_total_intensity, nphotons=plan.nphotons,
            loss=dict(plan.loss), intensity_scale_trainable=plan.intensity_scale_trainable,
            probe_trainable=plan.probe_trainable, optim=dict(plan.optim),
        )

    # --- forward pieces -------------------------------------------------------------
    def normalise(self, diffraction: torch.Tensor) -> torch.Tensor:
        """``X_norm = X * (N/2) / sqrt(mean_total_intensity)``, float32."""
        return diffraction.float() * (self.N / 2 / math.sqrt(self.mean_total_intensity))

    def generator_input(self, x_norm: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        """What the generator sees: ``X_norm``, plus the physics estimate when ``estimate_iters > 0``."""
        if not self.estimate_iters:
            return x_norm
        illumination = self.forward_model.illumination().detach()
        return estimate_features(x_norm, illumination, self.estimate_iters, offsets)

    def generate(self, diffraction: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Raw diffraction ``[B, C, N, N]`` -> the generator's patches (before the overlap constraint)."""
        offsets = None if offsets is None else offsets.float()
        return self._generate_normalised(self.normalise(diffraction), offsets)

    def _generate_normalised(self, x_norm: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        return self.generator(self.generator_input(x_norm, offsets))

    def forward(self, diffraction: torch.Tensor, offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw diffraction ``[B, C, N, N]`` -> (predicted normalised amplitude, constrained patches)."""
        return self.forward_model(self.generate(diffraction, offsets), None if offsets is None else offsets.float())

    @torch.no_grad()
    def predict_patches(self, diffraction: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Object patches ``[B, C, N, N]`` complex64 (after the overlap constraint when g > 1)."""
        return self(diffraction, offsets)[1]

    def compute_loss(self, batch: dict) -> torch.Tensor:
        """Loss of one batch dict (keys ``diffraction``, ``offsets``)."""
        x_norm = self.normalise(batch["diffraction"])
        offsets = batch["offsets"].float()
        pred_amp, _ = self.forward_model(self._generate_normalised(x_norm, offsets), offsets)
        pred_scale = torch.exp(self.log_intensity_scale)
        if self.loss_cfg["torch_loss_mode"] == "mae":
            return combined_loss(pred_amp, x_norm, pred_scale, self.measured_scale, 0.0, 1.0)
        return combined_loss(
            pred_amp, x_norm, pred_scale, self.measured_scale, self.loss_cfg["nll_weight"], self.loss_cfg["mae_weight"]
        )

    # --- Lightning hooks --------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(batch)
        bs = batch["diffraction"].shape[0]
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(batch)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch["diffraction"].shape[0])
        return loss

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.predict_patches(batch["diffraction"], batch.get("offsets"))

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.optim_cfg)
        scheduler = build_scheduler(optimizer, self.optim_cfg)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    @property
    def intensity_scale(self) -> float:
        """Current prediction scale in raw units (``exp(log_intensity_scale)`` back-converted)."""
        return float(torch.exp(self.log_intensity_scale.detach())) * (self.N / 2) / math.sqrt(self.mean_total_intensity)
