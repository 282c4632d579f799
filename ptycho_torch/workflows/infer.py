"""The inference workflow: ``run_inference(payload)`` -> stitched object, PNGs, metrics.

Loads the bundle strictly, predicts the object patches of every scan position in batches on
the chosen device and stitches each batch as it comes out (probe-weighted by default, see
:mod:`ptycho_torch.evaluate.stitch`; no stack of patches is kept), optionally refines the
whole object against the measured data (:mod:`ptycho_torch.refine`, ``refine_iters``), and
writes ``reconstruction.npz``, ``amplitude.png`` and ``phase.png`` (colour map and bar),
``report.png`` (:mod:`ptycho_torch.evaluate.report`: truth | reconstruction | error, FRC and
the training loss read from the bundle's run folder), ``refinement.json`` (when refining)
and, when the scan file holds a ground-truth ``objectGuess``, ``metrics.json``
(scored on the area the central N/2 crops cover, whatever the stitching mode; with
refinement, the network's own object is scored too, under ``network``).  All writes are
atomic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptycho_torch.bundle import LoadedBundle, load_bundle, load_state_strict
from ptycho_torch.config.bridge import ModulePlan, module_plan
from ptycho_torch.config.canonical import TrainingConfig
from ptycho_torch.factory import InferencePayload
from ptycho_torch.workflows.outputs import save_npz_atomic, write_json_atomic


@dataclass(frozen=True)
class InferenceResult:
    """Where the outputs went, how fast prediction ran, and the metrics (if ground truth)."""

    output_dir: Path
    npz_path: Path
    amplitude_png: Path
    phase_png: Path
    report_png: Path
    metrics_path: Path | None
    n_patterns: int
    patterns_per_s: float
    metrics: dict[str, Any] = field(default_factory=dict)


def module_from_bundle(bundle: LoadedBundle, probe: np.ndarray):
    """Rebuild the trained module from a bundle (strict: every tensor must fit), through the bridge."""
    trained = TrainingConfig.from_mapping(bundle.training_config, where=f"{bundle.path}:training")
    return module_from_plan(module_plan(trained), bundle, probe)


def module_from_plan(plan: ModulePlan, bundle: LoadedBundle, probe: np.ndarray):
    """The module of ``plan`` with the bundle's weights and physics scale (strict: every tensor must fit)."""
    from ptycho_torch.model.module import PtychoPINNModule

    module = PtychoPINNModule.from_plan(plan, probe, float(bundle.physics["mean_total_intensity"]))
    load_state_strict(module, bundle.state_dict, where=str(bundle.path))
    return module.eval()


SUMMARY_METRICS = ("amp_ssim", "phase_ssim", "amp_psnr_db", "phase_psnr_db", "amp_frc_cutoff_cpp", "phase_frc_cutoff_cpp")
"""The headline quality numbers (also reported for the network's own object when refining)."""


def _device(accelerator: str) -> torch.device:
    if accelerator == "gpu":
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


CPU_FORWARD_PATTERNS = 64
"""On the CPU the network runs on at most this many patterns (groups x gridsize^2) at a time,
whatever the inference batch: measured as fast as larger forwards on a 2-core CPU (the
activations stay cache-sized), and it bounds the temporary memory of a batch, so the peak
does not depend on the batch size or, through allocator fragmentation, on the scan's length.
Accelerators run the whole batch in one forward."""


def predict_into(
    module: Any, loader: Any, device: torch.device, stitcher: Any, precision: str = "32-true", show_progress: bool = True
) -> np.ndarray:
    """Predict every batch and stitch it at once (no stack of patches is kept); the positions ``(n, 2)``.

    Shows progress on stderr (:func:`~ptycho_torch.workflows.progress.track`) unless ``show_progress`` is False.
    """
    module.to(device)
    from ptycho_torch.workflows.progress import track

    positions = []
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    with torch.inference_mode():
        for batch in track(loader, len(loader), "predict + stitch") if show_progress else loader:
            diffraction = batch["diffraction"].to(device, non_blocking=True)
            offsets = batch["offsets"].to(device, non_blocking=True)
            batch_positions = batch["positions"].flatten(0, 1).numpy()
            per_group = diffraction.shape[1]  # patterns per group (gridsize^2)
            groups = diffraction.shape[0] if device.type != "cpu" else max(1, CPU_FORWARD_PATTERNS // per_group)
            for first in range(0, diffraction.shape[0], groups):
                part = slice(first, first + groups)
                with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32,
                                    enabled=autocast_dtype is not None):
                    predicted = module.predict_patches(diffraction[part], offsets[part])
                rows = slice(first * per_group, (first + groups) * per_group)
                stitcher.add(predicted.to(torch.complex64).flatten(0, 1), batch_positions[rows])
            positions.append(batch_positions)
    return np.concatenate(positions)


def model_probe(module: Any) -> np.ndarray:
    """The illumination the model trained with (normalised probe, smoothing, mask): ``(N, N)`` complex."""
    from ptycho_torch.physics.forward import gaussian_smooth

    forward = module.forward_model
    probe = gaussian_smooth(forward.probe.detach(), forward.gaussian_smoothing_sigma)
    if forward.probe_mask is not None:
        probe = probe * forward.probe_mask
    return probe.cpu().numpy().astype(np.complex64)


def _refine(plan: Any, reader: Any, start: np.ndarray, physics: dict, device: torch.device, out: Path):
    """Physics refinement of ``start`` against the scan's own data; writes its misfit curve."""
    from ptycho_torch.refine import refine_object

    count_scale = float(physics["nphotons"]) / reader.mean_total_intensity()
    result = refine_object(
        start, reader.probe, reader.positions,
        lambda index: count_scale * np.square(reader.read_frames(index).astype(np.float64)),
        int(plan.refine["iterations"]), refine_probe=bool(plan.refine["refine_probe"]),
        tolerance=float(plan.refine["tolerance"]), device=device, progress=True,
    )
    write_json_atomic(out / "refinement.json", {
        "iterations": result.iterations, "seconds": result.seconds, "stopped_early": result.stopped_early,
        "misfit_before": result.misfit_before, "misfit_after": result.misfit_after,
        "kept_start": result.kept_start, "misfit_curve": result.misfit_curve,
        "holdout_curve": result.holdout_curve, "best_iteration": result.best_iteration,
        "stop_reason": result.stop_reason,
        "misfit": "mean Poisson deviance per detector pixel (about 1 = fits within the noise)",
        "holdout": "the same on the held-out detector pixels (never fitted): rises when refinement over-fits the noise",
    })
    return result


def run_inference(payload: InferencePayload) -> InferenceResult:
    """Reconstruct the payload's scan with its bundle and write the outputs."""
    from ptycho_torch.data.datamodule import PtychoDataModule
    from ptycho_torch.evaluate.metrics import evaluate_reconstruction
    from ptycho_torch.evaluate.report import save_colormapped_png, write_report
    from ptycho_torch.evaluate.stitch import ObjectStitcher, canvas_shape, scanned_bbox
    from ptycho_torch.workflows.logging import read_loss_curves

    plan = payload.plan
    bundle = load_bundle(plan.model_path)
    model = plan.module.model
    data = PtychoDataModule(
        plan.data["test_file"],
        gridsize=plan.data["gridsize"],
        n_groups=plan.data["n_groups"],
        neighbor_count=plan.data["neighbor_count"],
        batch_size=plan.data["batch_size"],
        predict_batch_size=plan.data["batch_size"],
        num_workers=plan.data["num_workers"],
        pin_memory=plan.data["pin_memory"],
        persistent_workers=plan.data.get("persistent_workers", False),
        prefetch_factor=plan.data.get("prefetch_factor"),
    )
    module = module_from_plan(plan.module, bundle, data.probe)
    device = _device(plan.accelerator)
    reader = data.train_reader
    reference = reader.object_guess
    shape = reference.shape if reference is not None else canvas_shape(reader.positions, model.N)
    stitcher = ObjectStitcher(shape, model.N, plan.stitching, model_probe(module), device=device)

    started = time.perf_counter()
    positions = predict_into(module, data.predict_dataloader(), device, stitcher, plan.precision)
    stitched, weights = stitcher.finish()
    elapsed = time.perf_counter() - started
    bbox = scanned_bbox(positions, model.N)

    out = Path(plan.output_dir)
    metrics: dict[str, Any] = {}
    network_object = stitched
    refinement = None
    if plan.refine["iterations"] > 0:
        refinement = _refine(plan, reader, stitched, bundle.physics, device, out)
        stitched = refinement.object
        weights = refinement.illumination
    npz_path = save_npz_atomic(
        out / "reconstruction.npz",
        object=stitched.astype(np.complex64),
        amplitude=np.abs(stitched).astype(np.float32),
        phase=np.angle(stitched).astype(np.float32),
        weights=weights.astype(np.float32),
        positions=positions,
        **({"network_object": network_object.astype(np.complex64)} if refinement is not None else {}),
    )
    amplitude_png = save_colormapped_png(out / "amplitude.png", np.abs(stitched), kind="amplitude")
    phase_png = save_colormapped_png(out / "phase.png", np.angle(stitched), kind="phase")
    if refinement is not None:
        metrics["refinement"] = {"iterations": refinement.iterations, "seconds": refinement.seconds,
                                 "misfit_before": refinement.misfit_before, "misfit_after": refinement.misfit_after,
                                 "kept_start": refinement.kept_start}
    metrics_path = None
    if reference is not None:
        metrics.update(evaluate_reconstruction(stitched, reference, bbox=bbox))
        if refinement is not None:
            network = evaluate_reconstruction(network_object, reference, bbox=bbox)
            metrics["network"] = {key: network[key] for key in SUMMARY_METRICS}
        metrics_path = write_json_atomic(out / "metrics.json", metrics)
    report_png = write_report(
        out / "report.png", stitched, reference, bbox=bbox, metrics=metrics,
        losses=read_loss_curves(Path(plan.model_path).parent),
        title=f"{Path(plan.data['test_file']).name} reconstructed with {Path(plan.model_path).parent.name}/"
              f"{Path(plan.model_path).name}" + (f", {refinement.iterations} refinement passes" if refinement else ""),
    )
    return InferenceResult(
        output_dir=out,
        npz_path=npz_path,
        amplitude_png=amplitude_png,
        phase_png=phase_png,
        report_png=report_png,
        metrics_path=metrics_path,
        n_patterns=int(len(positions)),
        patterns_per_s=float(len(positions) / max(elapsed, 1e-9)),
        metrics=metrics,
    )


def summary_lines(result: InferenceResult) -> list[str]:
    """A short human summary of an inference: where the files are, speed, quality, refinement."""
    lines = [
        f"reconstruction: {result.npz_path}",
        f"report figure:  {result.report_png}",
        f"images:         {result.amplitude_png}, {result.phase_png}",
        f"patterns:       {result.n_patterns} at {result.patterns_per_s:.0f}/s (prediction + stitching)",
    ]
    metrics = result.metrics
    refinement = metrics.get("refinement")
    if refinement is not None:
        lines.append(f"refinement:     {refinement['iterations']} passes in {refinement['seconds']:.1f} s, data misfit "
                     f"{refinement['misfit_before']:.3g} -> {refinement['misfit_after']:.3g} (1 = noise level)"
                     + ("; the end was worse, the network object is kept" if refinement["kept_start"] else ""))
    if "amp_ssim" in metrics:
        quality = lambda m: (f"amplitude SSIM {m['amp_ssim']:.3f}, phase SSIM {m['phase_ssim']:.3f}, "  # noqa: E731
                             f"amplitude FRC cut-off {m['amp_frc_cutoff_cpp']:.3f} c/px")
        if "network" in metrics:
            lines.append(f"network alone:  {quality(metrics['network'])}")
        label = "refined:" if refinement is not None else "quality:"
        lines.append(f"{label:<16}{quality(metrics)}")
        lines.append(f"metrics:        {result.metrics_path}")
    return lines
