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
``(s * X)^2`` with the physics.md scale ``s = sqrt(nphotons / mean_total_intensity)``
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

from ptycho_torch.errors import ConfigError
from ptycho_torch.model.generator import AMP_ACTIVATIONS
from ptycho_torch.model.optim import DEFAULT_OPTIM, OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from ptycho_torch.model.registry import ARCHITECTURES, build_generator
from ptycho_torch.physics.estimate import ESTIMATE_FEATURES, estimate_features
from ptycho_torch.physics.forward import ForwardModel, gaussian_smooth, probe_disk_mask
from ptycho_torch.physics.loss import combined_loss

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_LOSS",
    "UNUSED_MODEL_FIELDS",
    "PROBE_NORM_PER_N",
    "normalise_probe",
    "PtychoPINNModule",
]

DEFAULT_MODEL: dict[str, object] = {
    "N": 64,  # patch / diffraction size (pixels)
    "gridsize": 1,  # g; C = g*g patches per sample
    "n_filters_scale": 2,  # CNN width multiplier
    "amp_activation": "sigmoid",  # amplitude head activation
    "object_big": True,  # overlap constraint for g > 1
    "probe_big": True,  # predict the border outside the central N/2 too
    "probe_mask": False,  # multiply the illumination by a soft disk
    "probe_mask_sigma": 1.0,  # edge width of that disk (pixels)
    "probe_mask_diameter": None,  # its diameter (pixels); None = N/2
    "pad_object": True,  # predict the central N/2 and zero-pad (False: predict all N)
    "probe_scale": 4.0,  # the probe is divided by this
    "gaussian_smoothing_sigma": 0.0,  # Gaussian blur of the probe (pixels); 0 = off
    "model_type": "pinn",  # only 'pinn' (physics loss) is implemented
    "architecture": "resunet",  # generator, a key of model.registry.GENERATORS
    "estimate_iters": 5,  # single-pattern ePIE iterations of the physics estimate fed to the generator; 0 = off
}
"""Canonical ModelConfig fields with their defaults; the ``model`` dict may override any."""

DEFAULT_LOSS: dict[str, object] = {"nll_weight": 1.0, "mae_weight": 0.0, "torch_loss_mode": "poisson"}
"""``torch_loss_mode='poisson'``: ``nll_weight * NLL + mae_weight * MAE``;
``'mae'``: the MAE alone (weight 1; ``nll_weight`` is then not used)."""

UNUSED_MODEL_FIELDS: dict[str, str] = {}
"""Canonical model fields accepted but not used, with the reason: none (all implemented;
``model_type='supervised'`` and unknown architectures are rejected)."""

PROBE_NORM_PER_N = 4.0
"""The normalised illumination has L2 norm ``PROBE_NORM_PER_N * N`` (see module doc)."""


def _bad(where: str, expected: str, found: object, hint: str) -> ConfigError:
    return ConfigError(where=where, expected=expected, found=repr(found), hint=hint)


def _resolve(name: str, given: dict | None, defaults: dict) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise _bad(f"{name}.{unknown[0]}", f"one of {sorted(defaults)}", unknown[0], "check the spelling of the field")
    return {**defaults, **given}


def _validate(model: dict, loss: dict, optim: dict) -> None:
    n = model["N"]
    if not isinstance(n, int) or n < 16 or n & (n - 1):
        raise _bad("model.N", "a power of two >= 16 (64, 128 or 256)", n, "N is the diffraction pattern size")
    if model["model_type"] != "pinn":
        raise _bad("model.model_type", "'pinn'", model["model_type"], "supervised training is not implemented here; use 'pinn'")
    if model["architecture"] not in ARCHITECTURES:
        raise _bad("model.architecture", f"one of {ARCHITECTURES}", model["architecture"], "see docs/architectures.md")
    if model["amp_activation"] not in AMP_ACTIVATIONS:
        raise _bad("model.amp_activation", f"one of {AMP_ACTIVATIONS}", model["amp_activation"], "sigmoid is the default")
    if not (isinstance(model["estimate_iters"], int) and model["estimate_iters"] >= 0):
        raise _bad("model.estimate_iters", "an integer >= 0", model["estimate_iters"], "0 feeds the generator the amplitudes alone")
    if not (model["probe_scale"] > 0):
        raise _bad("model.probe_scale", "> 0", model["probe_scale"], "the default is 4.0")
    if model["gaussian_smoothing_sigma"] < 0:
        raise _bad("model.gaussian_smoothing_sigma", ">= 0", model["gaussian_smoothing_sigma"], "0 turns smoothing off")
    if loss["torch_loss_mode"] not in ("poisson", "mae"):
        raise _bad("loss.torch_loss_mode", "'poisson' or 'mae'", loss["torch_loss_mode"], "poisson is the default")
    if loss["torch_loss_mode"] == "poisson" and loss["nll_weight"] == 0 and loss["mae_weight"] == 0:
        raise _bad("loss.nll_weight", "nll_weight or mae_weight > 0", 0, "set nll_weight: 1.0")
    if optim["optimizer"] not in OPTIMIZERS:
        raise _bad("optim.optimizer", f"one of {OPTIMIZERS}", optim["optimizer"], "adam is the default")
    if optim["scheduler"] not in SCHEDULERS:
        raise _bad("optim.scheduler", f"one of {SCHEDULERS}", optim["scheduler"], "names are case-sensitive")


def normalise_probe(probe: torch.Tensor, model: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale ``probe [N, N]`` complex so the effective illumination has norm 4N; build the mask.

    Returns ``(probe_n complex64 [N, N], mask float32 [N, N] or None)``.
    """
    n = model["N"]
    mask = probe_disk_mask(n, model["probe_mask_diameter"], model["probe_mask_sigma"]) if model["probe_mask"] else None
    effective = gaussian_smooth(probe, model["gaussian_smoothing_sigma"])
    if mask is not None:
        effective = effective * mask
    norm = float(effective.abs().square().sum().sqrt())
    if not math.isfinite(norm) or norm <= 0:
        raise _bad("probe", "a probe with finite, non-zero illumination", f"L2 norm {norm}", "check probeGuess / the probe mask")
    return (probe * (PROBE_NORM_PER_N * n / norm)).to(torch.complex64), mask


class PtychoPINNModule(L.LightningModule):
    """Physics-informed ptychography model (generator + forward model + loss).

    Args:
        model: canonical ModelConfig fields (see :data:`DEFAULT_MODEL`; missing keys take
            the defaults, unknown keys raise ConfigError).
        probe: ``(N, N)`` complex probe (numpy or torch); normalised, see module doc.
        mean_total_intensity: mean over training patterns of ``sum_hw X^2`` (raw units).
        nphotons: expected total counts per pattern.
        loss: ``nll_weight``, ``mae_weight``, ``torch_loss_mode`` (:data:`DEFAULT_LOSS`).
        intensity_scale_trainable: learn ``log_intensity_scale`` (init ``log s_norm``).
        probe_trainable: learn the probe.
        optim: optimizer/scheduler values (:data:`~ptycho_torch.model.optim.DEFAULT_OPTIM`).
    """

    def __init__(
        self,
        model: dict | None = None,
        probe: np.ndarray | torch.Tensor | None = None,
        mean_total_intensity: float = 1.0,
        nphotons: float = 1e9,
        loss: dict | None = None,
        intensity_scale_trainable: bool = True,
        probe_trainable: bool = False,
        optim: dict | None = None,
    ) -> None:
        super().__init__()
        m = _resolve("model", model, DEFAULT_MODEL)
        lo = _resolve("loss", loss, DEFAULT_LOSS)
        op = _resolve("optim", optim, DEFAULT_OPTIM)
        _validate(m, lo, op)
        n = m["N"]
        if probe is None:
            raise _bad("probe", f"a complex ({n}, {n}) array", None, "pass the scan's probeGuess")
        probe_t = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe).to(torch.complex64)
        if probe_t.shape != (n, n):
            raise _bad("probe", f"shape ({n}, {n}) to match model.N", tuple(probe_t.shape), "N must equal the probe size")
        if not (math.isfinite(mean_total_intensity) and mean_total_intensity > 0):
            raise _bad("mean_total_intensity", "a finite value > 0", mean_total_intensity, "compute it from the training diffraction")
        if not (math.isfinite(nphotons) and nphotons > 0):
            raise _bad("nphotons", "a finite value > 0", nphotons, "the upstream default is 1e9")
        self.save_hyperparameters(ignore=["probe"])
        self.hparams.update(model=m, loss=lo, optim=op)  # store the resolved values
        self.model_cfg, self.loss_cfg, self.optim_cfg = m, lo, op
        self.N, self.C = n, m["gridsize"] ** 2
        self.mean_total_intensity = float(mean_total_intensity)
        self.estimate_iters = int(m["estimate_iters"])

        input_channels = self.C * (1 + ESTIMATE_FEATURES) if self.estimate_iters else self.C
        self.generator = build_generator(
            m["architecture"], n, m["gridsize"], m["n_filters_scale"], m["amp_activation"], m["probe_big"], m["pad_object"],
            input_channels=input_channels,
        )
        probe_n, mask = normalise_probe(probe_t, m)
        self.forward_model = ForwardModel(
            probe_n, m["probe_scale"], mask, probe_trainable, m["object_big"], m["gaussian_smoothing_sigma"]
        )
        self.register_buffer("measured_scale", torch.tensor(math.sqrt(nphotons) / (n / 2)))
        log_s = torch.log(self.measured_scale.clone())
        if intensity_scale_trainable:
            self.log_intensity_scale = torch.nn.Parameter(log_s)
        else:
            self.register_buffer("log_intensity_scale", log_s)

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
        return self.generator(self.generator_input(self.normalise(diffraction), offsets))

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
        pred_amp, _ = self.forward_model(self.generator(self.generator_input(x_norm, offsets)), offsets)
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
