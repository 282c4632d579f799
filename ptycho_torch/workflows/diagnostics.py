"""What the training logs hold beside the raw loss (TensorBoard, and the CSV for scalars).

Every step (rank 0's values, at the logger's cadence):

* ``train_loss_per_pixel``: the loss on a readable scale.  The Poisson loss is the negative
  log-likelihood summed over a sample's ``C*N*N`` detector pixels and divided by the batch's
  mean normalised amplitude (``physics/loss.py``); this undoes the division and the sum, so it
  is the NLL per detector pixel in photon counts (a perfect fit still pays the Poisson
  entropy, about ``0.5 * log(2*pi*e*k)`` for ``k`` counts).  In MAE mode the loss already is
  per pixel.  Not logged for a weighted mix of both.
* ``lr``, ``grad_norm`` (L2 over all parameters, before the optimiser step),
  ``intensity_scale`` (the learned prediction scale, normalised units) and
  ``intensity_scale_change`` (learned / initial: 1 at the start).

At each validation (or, without a test file, at the end of the training epoch), at most
``snapshots`` times per run (5) and always at the last epoch, rank 0 takes a snapshot on the
validation scan (else the training scan), limited to its first ``max_positions`` groups (256:
a snapshot predicts every group it stitches; ``bench/diagnostics.py`` measures what it costs):

* images (TensorBoard only): ``diffraction/measured_vs_predicted`` (log10 of counts, one colour
  scale for both), ``patches/amplitude`` and ``patches/phase`` (one shared scale, not per patch),
  ``object/amplitude`` and ``object/phase`` (the stitched object on its scanned area);
* scalars: ``snapshot/deviance_per_pixel`` (Poisson deviance of the sample batch, about 1 when
  the fit is within the noise) and, when the scan file holds ``objectGuess``,
  ``snapshot/amp_ssim``, ``snapshot/phase_ssim``, ``snapshot/amp_psnr_db``,
  ``snapshot/phase_psnr_db``, ``snapshot/amp_frc_cutoff_cpp``, ``snapshot/phase_frc_cutoff_cpp``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, Trainer

from ptycho_torch.errors import PtychoError

__all__ = ["TrainingDiagnostics", "colour_image", "per_pixel_loss"]

SNAPSHOT_BATCH = 32
"""Snapshots predict at least this many groups per batch (few large batches are faster)."""

SNAPSHOT_METRICS = ("amp_ssim", "phase_ssim", "amp_psnr_db", "phase_psnr_db", "amp_frc_cutoff_cpp", "phase_frc_cutoff_cpp")


def colour_image(image: np.ndarray, low: float, high: float, cmap: str = "viridis") -> np.ndarray:
    """A real ``(H, W)`` image as ``(3, H, W)`` RGB in [0, 1] between ``low`` and ``high`` (NaN -> 0)."""
    import matplotlib

    scaled = np.clip((np.nan_to_num(np.asarray(image, dtype=np.float64), nan=low) - low) / (high - low or 1e-12), 0, 1)
    return np.ascontiguousarray(matplotlib.colormaps[cmap](scaled)[..., :3].transpose(2, 0, 1)).astype(np.float32)


def per_pixel_loss(loss: torch.Tensor, normalised_amplitude: torch.Tensor, loss_cfg: dict) -> torch.Tensor | None:
    """The batch loss per detector pixel (module doc); None for a weighted mix of NLL and MAE."""
    if loss_cfg["torch_loss_mode"] == "mae":
        return loss.detach()
    if loss_cfg["mae_weight"]:
        return None
    pixels_per_sample = normalised_amplitude[0].numel()
    return loss.detach() * normalised_amplitude.mean() / (loss_cfg["nll_weight"] * pixels_per_sample)


def _deviance_per_pixel(rate: torch.Tensor, counts: torch.Tensor) -> float:
    rate = rate.double().clamp_min(1e-12)
    counts = counts.double()
    log_term = torch.where(counts > 0, counts * torch.log(counts.clamp_min(1e-12) / rate), 0.0)
    return float(2.0 * (rate - counts + log_term).mean())


class TrainingDiagnostics(Callback):
    """Logs the scalars and snapshots of the module doc (nothing without a logger)."""

    def __init__(self, snapshots: int = 5, max_positions: int = 256, sample_patterns: int = 4) -> None:
        self.snapshots, self.max_positions, self.sample_patterns = snapshots, max_positions, sample_patterns
        self._loader: Any = None
        self._reader: Any = None

    # --- every step -------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.loggers:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        size = int(batch["diffraction"].shape[0])
        if torch.is_tensor(loss):
            with torch.no_grad():
                value = per_pixel_loss(loss, pl_module.normalise(batch["diffraction"]), pl_module.loss_cfg)
            if value is not None:
                pl_module.log("train_loss_per_pixel", value, on_step=True, on_epoch=True, batch_size=size)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if optimizer is not None:
            pl_module.log("lr", float(optimizer.param_groups[0]["lr"]), on_step=True, on_epoch=False, batch_size=size)
        scale = torch.exp(pl_module.log_intensity_scale.detach())
        pl_module.log("intensity_scale", scale, on_step=True, on_epoch=False, batch_size=size)
        pl_module.log("intensity_scale_change", scale / pl_module.measured_scale, on_step=True, on_epoch=False,
                      batch_size=size)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: Any, optimizer: Any) -> None:
        if not trainer.loggers:
            return
        norms = [p.grad.detach().float().norm() for p in pl_module.parameters() if p.grad is not None]
        if norms:
            pl_module.log("grad_norm", torch.linalg.vector_norm(torch.stack(norms)), on_step=True, on_epoch=False)

    # --- snapshots ----------------------------------------------------------------------
    def _due(self, trainer: Trainer) -> bool:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        epoch = trainer.current_epoch + 1
        if total is None:
            return True
        every = max(1, math.ceil(total / max(self.snapshots, 1)))
        return epoch % every == 0 or epoch == total

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking and self._due(trainer):
            self._snapshot(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if not getattr(datamodule, "has_validation", False) and self._due(trainer):
            self._snapshot(trainer, pl_module)

    def _snapshot_data(self, datamodule: Any) -> tuple[Any, Any]:
        if self._loader is None:
            from torch.utils.data import DataLoader, Subset

            full = datamodule.predict_dataloader()
            dataset = full.dataset
            subset = Subset(dataset, range(min(len(dataset), self.max_positions)))
            self._loader = DataLoader(subset, batch_size=max(full.batch_size, SNAPSHOT_BATCH), shuffle=False)
            self._reader = datamodule.test_reader if datamodule.test_reader is not None else datamodule.train_reader
        return self._loader, self._reader

    def _snapshot(self, trainer: Trainer, pl_module: Any) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if not trainer.is_global_zero or not trainer.loggers or datamodule is None:
            return
        loader, reader = self._snapshot_data(datamodule)
        was_training = pl_module.training
        pl_module.eval()
        try:
            scalars, images = self._measure(pl_module, loader, reader)
        finally:
            pl_module.train(was_training)
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
            experiment = getattr(logger, "experiment", None)
            if experiment is not None and hasattr(experiment, "add_image"):
                for tag, image in images.items():
                    experiment.add_image(tag, image, step)

    @torch.no_grad()
    def _measure(self, pl_module: Any, loader: Any, reader: Any) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        from ptycho_torch.evaluate.metrics import evaluate_reconstruction
        from ptycho_torch.evaluate.stitch import ObjectStitcher, canvas_shape, scanned_bbox
        from ptycho_torch.workflows.infer import model_probe, predict_into

        device = pl_module.device
        batch = next(iter(loader))
        diffraction = batch["diffraction"][: self.sample_patterns].to(device)
        offsets = batch["offsets"][: self.sample_patterns].to(device)
        predicted_amplitude, patches = pl_module(diffraction, offsets)
        measured = (pl_module.measured_scale * pl_module.normalise(diffraction)).square()
        predicted = (torch.exp(pl_module.log_intensity_scale) * predicted_amplitude.float()).square()
        scalars = {"snapshot/deviance_per_pixel": _deviance_per_pixel(predicted, measured)}

        log_measured = torch.log10(1 + measured[:, 0]).cpu().numpy()
        log_predicted = torch.log10(1 + predicted[:, 0]).cpu().numpy()
        high = float(max(log_measured.max(), log_predicted.max()))
        pairs = np.concatenate([np.concatenate([m, p], axis=0) for m, p in zip(log_measured, log_predicted)], axis=1)
        first = patches[0].cpu().numpy()  # C patches of the first sample
        amplitude = np.concatenate(list(np.abs(first)), axis=1)
        phase = np.concatenate(list(np.angle(first)), axis=1)
        images = {
            "diffraction/measured_vs_predicted": colour_image(pairs, 0.0, high),
            "patches/amplitude": colour_image(amplitude, 0.0, float(amplitude.max())),
            "patches/phase": colour_image(phase, -np.pi, np.pi, "twilight"),
        }

        reference = reader.object_guess
        shape = reference.shape if reference is not None else canvas_shape(reader.positions, pl_module.N)
        stitcher = ObjectStitcher(shape, pl_module.N, "probe_weighted", model_probe(pl_module), device=device)
        positions = predict_into(pl_module, loader, device, stitcher, show_progress=False)
        stitched, _ = stitcher.finish()
        y0, y1, x0, x1 = scanned_bbox(positions, pl_module.N)
        y0, x0 = max(y0, 0), max(x0, 0)
        crop = stitched[y0:y1, x0:x1]
        amp = np.abs(crop)
        finite = amp[np.isfinite(amp)]
        images["object/amplitude"] = colour_image(amp, 0.0, float(np.percentile(finite, 99)) if finite.size else 1.0)
        images["object/phase"] = colour_image(np.angle(crop), -np.pi, np.pi, "twilight")
        if reference is not None:
            try:
                metrics = evaluate_reconstruction(stitched, reference, bbox=(y0, y1, x0, x1))
            except (PtychoError, ValueError, np.linalg.LinAlgError) as err:  # a snapshot must never end training
                scalars["snapshot/evaluation_failed"] = 1.0
                pl_module.print(f"warning: snapshot evaluation skipped ({err})")
            else:
                scalars.update({f"snapshot/{key}": float(metrics[key]) for key in SNAPSHOT_METRICS})
        return scalars, images
