"""``report.png``: one figure that shows how good a reconstruction is.

With a ground truth, the first two rows show amplitude and phase as truth | reconstruction |
error on the evaluated crop, after the same alignment the metrics use
(:func:`~ptycho_torch.evaluate.metrics.compared_images`); truth and reconstruction share one
colour scale, the error has its own, symmetric about 0.  The last row shows the FRC curves
with the half-bit threshold and, when the run's logs were found, the training loss.  Without a
ground truth, the figure shows the reconstruction's amplitude and phase and the loss.

matplotlib runs on its Agg backend (no display needed); the file is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.atomic import atomic_path

__all__ = ["LossCurve", "write_report", "save_colormapped_png"]

LossCurve = tuple[Sequence[float], Sequence[float]]
"""``(steps, values)`` of one logged loss series."""

AMPLITUDE_CMAP = "viridis"
PHASE_RANGE_CMAP = "cividis"  # phase between its 1st and 99th percentiles (a full -pi..pi scale hides detail)
ERROR_CMAP = "RdBu_r"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _limits(image: np.ndarray, clip_percent: float = 1.0) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite pixels (a few outliers do not set the scale)."""
    finite = np.asarray(image)[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [clip_percent, 100.0 - clip_percent])
    return float(low), float(high if high > low else low + 1e-12)


def _show(fig: Any, ax: Any, image: np.ndarray, title: str, cmap: str, limits: tuple[float, float], unit: str) -> None:
    shown = ax.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).set_label(unit, fontsize=8)


def _image_rows(fig: Any, grid: Any, compared: Any, metrics: Mapping[str, Any]) -> None:
    rows = (
        ("amplitude", compared.amp_ref, compared.amp_rec, AMPLITUDE_CMAP, "amplitude", "amp"),
        ("phase", compared.phase_ref, compared.phase_rec, PHASE_RANGE_CMAP, "rad", "phase"),
    )
    for row, (name, truth, recon, cmap, unit, key) in enumerate(rows):
        limits = _limits(truth)
        error = recon - truth
        bound = max(abs(v) for v in _limits(error)) or 1e-12
        scores = ""
        if f"{key}_ssim" in metrics:
            scores = f"\nSSIM {metrics[f'{key}_ssim']:.3f}, PSNR {metrics[f'{key}_psnr_db']:.1f} dB"
        _show(fig, fig.add_subplot(grid[row, 0:2]), truth, f"{name}: truth", cmap, limits, unit)
        _show(fig, fig.add_subplot(grid[row, 2:4]), recon, f"{name}: reconstruction{scores}", cmap, limits, unit)
        _show(fig, fig.add_subplot(grid[row, 4:6]), error, f"{name}: reconstruction - truth", ERROR_CMAP,
              (-bound, bound), unit)


def _frc_panel(ax: Any, curves: Mapping[str, Sequence[float]], metrics: Mapping[str, Any]) -> None:
    freq = np.asarray(curves["freq_cpp"])
    ax.plot(freq, curves["amp_frc"], label=f"amplitude (cut-off {metrics.get('amp_frc_cutoff_cpp', float('nan')):.3f})")
    ax.plot(freq, curves["phase_frc"], label=f"phase (cut-off {metrics.get('phase_frc_cutoff_cpp', float('nan')):.3f})")
    ax.plot(freq, curves["halfbit_threshold"], "k--", linewidth=1, label="half-bit threshold")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(min(-0.05, float(np.nanmin(curves["amp_frc"])) - 0.05), 1.05)
    ax.set_xlabel("spatial frequency (cycles/pixel)", fontsize=8)
    ax.set_ylabel("FRC", fontsize=8)
    ax.set_title("Fourier ring correlation against the truth", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)


def _loss_panel(ax: Any, losses: Mapping[str, LossCurve]) -> None:
    positive = True
    for name, (steps, curve) in losses.items():
        values = np.asarray(curve, dtype=float)
        positive = positive and bool((values[np.isfinite(values)] > 0).all())
        ax.plot(steps, values, marker="o" if len(values) < 30 else None, markersize=3, label=name)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("training step", fontsize=8)
    per_pixel = all("per_pixel" in name for name in losses)
    ax.set_ylabel("loss per detector pixel" if per_pixel else "loss", fontsize=8)
    ax.set_title("training loss (from the run's logs)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def write_report(
    path: Path,
    recon: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    bbox: tuple[int, int, int, int] | None = None,
    metrics: Mapping[str, Any] | None = None,
    losses: Mapping[str, LossCurve] | None = None,
    title: str = "",
) -> Path:
    """Write the report figure of ``recon`` (complex ``(H, W)``) to ``path`` (PNG, atomic).

    ``reference``: the ground-truth object (same shape) or None; ``bbox``: the evaluated crop
    ``(y0, y1, x0, x1)`` (as for the metrics); ``metrics``: the output of
    :func:`~ptycho_torch.evaluate.metrics.evaluate_reconstruction` (scores in the titles, FRC
    curves); ``losses``: named ``(steps, values)`` series, the panel is left out when empty.
    """
    from ptycho_torch.evaluate.metrics import compared_images

    plt = _pyplot()
    metrics = dict(metrics or {})
    losses = {name: curve for name, curve in (losses or {}).items() if len(curve[0])}
    recon = np.asarray(recon)
    if reference is not None:
        compared = compared_images(recon, np.asarray(reference), bbox=bbox)
        fig = plt.figure(figsize=(13, 12), layout="constrained")
        grid = fig.add_gridspec(3, 6, height_ratios=(1, 1, 0.8))
        _image_rows(fig, grid, compared, metrics)
        curves = metrics.get("frc_curves")
        if curves is not None:
            _frc_panel(fig.add_subplot(grid[2, 0:3]), curves, metrics)
        if losses:
            _loss_panel(fig.add_subplot(grid[2, 3:6]), losses)
    else:
        view = recon if bbox is None else recon[bbox[0]:bbox[1], bbox[2]:bbox[3]]
        fig = plt.figure(figsize=(13, 4.5), layout="constrained")
        grid = fig.add_gridspec(1, 3 if losses else 2)
        amplitude, phase = np.abs(view), np.angle(view)
        _show(fig, fig.add_subplot(grid[0, 0]), amplitude, "amplitude (no ground truth in the file)", AMPLITUDE_CMAP,
              _limits(amplitude), "amplitude")
        _show(fig, fig.add_subplot(grid[0, 1]), phase, "phase", PHASE_RANGE_CMAP, _limits(phase), "rad")
        if losses:
            _loss_panel(fig.add_subplot(grid[0, 2]), losses)
    if title:
        fig.suptitle(title, fontsize=10)
    try:
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as handle:
                fig.savefig(handle, format="png", dpi=90)
    finally:
        plt.close(fig)
    return Path(path)


def save_colormapped_png(path: Path, image: np.ndarray, *, kind: str, title: str = "") -> Path:
    """One real image with a colour map and a colour bar (``kind``: 'amplitude' or 'phase'), atomic."""
    plt = _pyplot()
    image = np.asarray(image, dtype=float)
    height, width = image.shape
    scale = 6.0 / max(height, width)
    fig = plt.figure(figsize=(max(width * scale, 2.5) + 1.4, max(height * scale, 2.5) + 0.4), layout="constrained")
    ax = fig.add_subplot()
    if kind == "phase":
        _show(fig, ax, image, title or "phase", PHASE_RANGE_CMAP, _limits(image), "rad")
    else:
        _show(fig, ax, image, title or "amplitude", AMPLITUDE_CMAP, _limits(image), "amplitude")
    try:
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as handle:
                fig.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(fig)
    return Path(path)
