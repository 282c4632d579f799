"""report.png and the colour-mapped PNGs: layout, colours, the loss panel, atomic writes; loss curves from logs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from ptycho_torch.evaluate.metrics import evaluate_reconstruction
from ptycho_torch.evaluate.report import save_colormapped_png, write_report
from ptycho_torch.workflows.logging import read_loss_curves


def _object(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    smooth = np.real(np.fft.ifft2(spectrum * np.exp(-(fx**2 + fy**2) / 0.005)))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return ((0.4 + 0.5 * smooth) * np.exp(1j * (smooth - 0.5))).astype(np.complex64)


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _coloured_fraction(rgb: np.ndarray) -> float:
    """Share of pixels whose channels differ (grey and white pixels have R = G = B)."""
    return float((np.ptp(rgb, axis=-1) > 30).mean())


@pytest.fixture(scope="module")
def truth_and_recon():
    truth = _object()
    rng = np.random.default_rng(1)
    recon = truth * np.exp(0.3j) * (1 + 0.05 * rng.standard_normal(truth.shape))
    bbox = (8, 88, 8, 88)
    return truth, recon.astype(np.complex64), bbox, evaluate_reconstruction(recon, truth, bbox=bbox)


def test_report_with_truth_shows_six_colour_images_frc_and_loss(tmp_path, truth_and_recon):
    truth, recon, bbox, metrics = truth_and_recon
    losses = {"train_loss_per_pixel_epoch": ([10, 20, 30], [30.0, 12.0, 9.0])}
    with_loss = write_report(tmp_path / "report.png", recon, truth, bbox=bbox, metrics=metrics, losses=losses, title="t")
    without_loss = write_report(tmp_path / "no-loss.png", recon, truth, bbox=bbox, metrics=metrics)
    a, b = _rgb(with_loss), _rgb(without_loss)
    assert a.shape == b.shape == (1080, 1170, 3)  # 13 x 12 inches at 90 dpi: two image rows and a plot row
    images = a[: 2 * a.shape[0] // 3]
    assert _coloured_fraction(images) > 0.3  # colour maps, not grey
    bottom_right = (slice(800, 1050), slice(700, 1150))
    assert (a[bottom_right] < 250).any(axis=-1).mean() > 0.02  # the loss panel is drawn
    assert (b[bottom_right] >= 250).all()  # and left out without a loss history
    bottom_left = (slice(800, 1050), slice(50, 550))
    assert (b[bottom_left] < 250).any(axis=-1).mean() > 0.02  # the FRC panel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-loss.png", "report.png"]  # no temporary files left


def test_report_without_truth_shows_the_reconstruction_only(tmp_path, truth_and_recon):
    _, recon, bbox, _ = truth_and_recon
    path = write_report(tmp_path / "report.png", recon, None, bbox=bbox, losses={"val_loss": ([1, 2], [5.0, 4.0])})
    rgb = _rgb(path)
    assert rgb.shape == (405, 1170, 3)  # one row: amplitude, phase, loss
    assert _coloured_fraction(rgb) > 0.15


def test_report_failure_leaves_the_previous_file(tmp_path, truth_and_recon):
    truth, recon, bbox, metrics = truth_and_recon
    path = write_report(tmp_path / "report.png", recon, truth, bbox=bbox, metrics=metrics)
    before = path.read_bytes()
    with pytest.raises(Exception):
        write_report(path, recon, truth[:10], bbox=bbox, metrics=metrics)  # shapes disagree
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["report.png"]


@pytest.mark.parametrize("kind", ["amplitude", "phase"])
def test_single_images_have_a_colour_map_and_bar(tmp_path, truth_and_recon, kind):
    _, recon, _, _ = truth_and_recon
    image = np.abs(recon) if kind == "amplitude" else np.angle(recon)
    rgb = _rgb(save_colormapped_png(tmp_path / f"{kind}.png", image, kind=kind))
    assert rgb.shape[1] > rgb.shape[0]  # room for the colour bar beside a square image
    assert _coloured_fraction(rgb) > 0.2


def _write_csv(path, rows):
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def test_loss_curves_from_csv_prefer_the_per_pixel_series(tmp_path):
    _write_csv(tmp_path / "metrics" / "attempt-0" / "metrics.csv", [
        {"step": 9, "epoch": 0, "train_loss_epoch": 3e8, "train_loss_per_pixel_epoch": 40.0},
        {"step": 19, "epoch": 1, "train_loss_epoch": 2e8, "train_loss_per_pixel_epoch": 20.0},
        {"step": 19, "epoch": 1, "lr": 1e-3},
    ])
    assert read_loss_curves(tmp_path) == {"train_loss_per_pixel_epoch": ([9, 19], [40.0, 20.0])}


def test_loss_curves_from_tensorboard_and_none_without_logs(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    assert read_loss_curves(tmp_path) == {}
    writer = SummaryWriter(str(tmp_path / "metrics"))
    for step, value in ((4, 9.0), (8, 7.0)):
        writer.add_scalar("train_loss_epoch", value, step)
    writer.close()
    assert read_loss_curves(tmp_path) == {"train_loss_epoch": ([4, 8], [9.0, 7.0])}
