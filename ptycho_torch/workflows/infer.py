"""The inference workflow: ``run_inference(payload)`` -> stitched object, PNGs, metrics.

Loads the bundle strictly, predicts the object patches of every scan position in batches on
the chosen device, stitches their central crops at the scan positions (sub-pixel, overlaps
averaged), and writes ``reconstruction.npz``, ``amplitude.png``, ``phase.png`` and, when the
scan file holds a ground-truth ``objectGuess``, ``metrics.json``.  All writes are atomic.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptycho_torch.bundle import LoadedBundle, load_bundle, load_state_strict
from ptycho_torch.config.bridge import model_hparams
from ptycho_torch.config.canonical import TrainingConfig
from ptycho_torch.factory import InferencePayload
from ptycho_torch.workflows.outputs import save_npz_atomic, save_png_atomic, write_json_atomic


@dataclass(frozen=True)
class InferenceResult:
    """Where the outputs went, how fast prediction ran, and the metrics (if ground truth)."""

    output_dir: Path
    npz_path: Path
    amplitude_png: Path
    phase_png: Path
    metrics_path: Path | None
    n_patterns: int
    patterns_per_s: float
    metrics: dict[str, Any] = field(default_factory=dict)


def module_from_bundle(bundle: LoadedBundle, probe: np.ndarray):
    """Rebuild the trained module from a bundle (strict: every tensor must fit)."""
    from ptycho_torch.model.module import PtychoPINNModule

    training = TrainingConfig.model_validate(bundle.training_config)
    physics = bundle.physics
    module = PtychoPINNModule(
        model=model_hparams(training.model),
        probe=probe,
        mean_total_intensity=float(physics["mean_total_intensity"]),
        nphotons=float(physics["nphotons"]),
        loss={"nll_weight": training.nll_weight, "mae_weight": training.mae_weight, "torch_loss_mode": training.torch_loss_mode},
        intensity_scale_trainable=training.intensity_scale_trainable,
        probe_trainable=training.probe_trainable,
        optim={"optimizer": training.optimizer, "learning_rate": training.learning_rate, "weight_decay": training.weight_decay,
               "momentum": training.momentum, "adam_beta1": training.adam_beta1, "adam_beta2": training.adam_beta2,
               "scheduler": training.scheduler, "lr_warmup_epochs": training.lr_warmup_epochs,
               "lr_min_ratio": training.lr_min_ratio, "nepochs": training.nepochs},
    )
    load_state_strict(module, bundle.state_dict, where=str(bundle.path))
    return module.eval()


def _device(accelerator: str) -> torch.device:
    if accelerator == "gpu":
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def predict_scan(module: Any, loader: Any, device: torch.device, precision: str = "32-true") -> tuple[np.ndarray, np.ndarray]:
    """Object patches ``(n, N, N)`` complex64 and their ``(n, 2)`` (x, y) positions, for every batch."""
    module.to(device)
    patches, positions = [], []
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    with torch.inference_mode():
        for batch in loader:
            diffraction = batch["diffraction"].to(device, non_blocking=True)
            offsets = batch["offsets"].to(device, non_blocking=True)
            if autocast_dtype is not None:
                with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                    predicted = module.predict_patches(diffraction, offsets)
            else:
                predicted = module.predict_patches(diffraction, offsets)
            patches.append(predicted.to(torch.complex64).flatten(0, 1).cpu().numpy())
            positions.append(batch["positions"].flatten(0, 1).numpy())
    return np.concatenate(patches), np.concatenate(positions)


def run_inference(payload: InferencePayload) -> InferenceResult:
    """Reconstruct the payload's scan with its bundle and write the outputs."""
    from ptycho_torch.data.datamodule import PtychoDataModule
    from ptycho_torch.evaluate.metrics import evaluate_reconstruction
    from ptycho_torch.evaluate.stitch import canvas_shape, stitch_patches

    plan = payload.plan
    bundle = load_bundle(plan.model_path)
    model = payload.inference.model
    data = PtychoDataModule(
        plan.data["test_file"],
        gridsize=model.gridsize,
        n_groups=plan.data["n_groups"],
        neighbor_count=plan.data["neighbor_count"],
        batch_size=plan.data["batch_size"],
        predict_batch_size=plan.data["batch_size"],
        num_workers=plan.data["num_workers"],
        pin_memory=plan.data["pin_memory"],
        persistent_workers=plan.data.get("persistent_workers", False),
        prefetch_factor=plan.data.get("prefetch_factor"),
    )
    module = module_from_bundle(bundle, data.probe)
    device = _device(plan.accelerator)

    started = time.perf_counter()
    patches, positions = predict_scan(module, data.predict_dataloader(), device, plan.precision)
    reference = data.train_reader.object_guess
    shape = reference.shape if reference is not None else canvas_shape(positions, model.N)
    stitched, weights = stitch_patches(patches, positions, shape)
    elapsed = time.perf_counter() - started

    out = Path(plan.output_dir)
    npz_path = save_npz_atomic(
        out / "reconstruction.npz",
        object=stitched.astype(np.complex64),
        amplitude=np.abs(stitched).astype(np.float32),
        phase=np.angle(stitched).astype(np.float32),
        weights=weights.astype(np.float32),
        positions=positions,
    )
    amplitude_png = save_png_atomic(out / "amplitude.png", np.abs(stitched))
    phase_png = save_png_atomic(out / "phase.png", np.angle(stitched))
    metrics: dict[str, Any] = {}
    metrics_path = None
    if reference is not None:
        metrics = evaluate_reconstruction(stitched, reference, weights=weights)
        metrics_path = write_json_atomic(out / "metrics.json", metrics)
    return InferenceResult(
        output_dir=out,
        npz_path=npz_path,
        amplitude_png=amplitude_png,
        phase_png=phase_png,
        metrics_path=metrics_path,
        n_patterns=int(len(patches)),
        patterns_per_s=float(len(patches) / max(elapsed, 1e-9)),
        metrics=metrics,
    )


def dumps_metrics(metrics: dict[str, Any]) -> str:
    """Metrics as indented JSON (for printing)."""
    return json.dumps(metrics, indent=2, sort_keys=True, default=float)
