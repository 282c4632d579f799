"""Physics refinement: the truth stays put, a flat start converges, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_torch.data import open_scan
from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate.metrics import evaluate_reconstruction
from ptycho_torch.evaluate.stitch import scanned_bbox
from ptycho_torch.refine import refine_object
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan

# Stated floor (measured 0.997 after 12 passes from a flat start on this 36-position scan).
FLAT_START_AMP_SSIM_FLOOR = 0.95


@pytest.fixture(scope="module")
def tiny_scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "tiny.npz"
    write_scan(SimulationConfig(object_size=112, step=8.0, probe="curved", nphotons=1e9, seed=5), path)
    return open_scan(path)


def _counts(reader):
    scale = reader.nphotons / reader.mean_total_intensity()
    return lambda index: scale * np.square(reader.read_frames(index).astype(np.float64))


def _score(reader, obj):
    return evaluate_reconstruction(obj, reader.object_guess, bbox=scanned_bbox(reader.positions, 64))


def test_refinement_started_from_the_true_object_stays_within_the_noise(tiny_scan):
    truth = tiny_scan.object_guess
    result = refine_object(truth, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 4, tolerance=0, progress=False)
    # Poisson noise alone: deviance about 1 per pixel (less where counts are small)
    assert result.misfit_before < 1.2
    assert result.misfit_after <= result.misfit_before * 1.01
    assert _score(tiny_scan, result.object)["amp_ssim"] > 0.99


def test_refinement_from_a_flat_start_converges(tiny_scan):
    flat = np.ones(tiny_scan.object_guess.shape, np.complex64)
    seen = []
    result = refine_object(flat, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 12, tolerance=0,
                           progress=False, on_iteration=lambda i, obj, misfit: seen.append(misfit))
    assert result.iterations == 12 and len(seen) == 12 and seen == result.misfit_curve
    assert result.misfit_after < 0.05 * result.misfit_before
    assert not result.kept_start
    assert _score(tiny_scan, result.object)["amp_ssim"] > FLAT_START_AMP_SSIM_FLOOR


def test_refinement_stops_early_when_the_misfit_stops_improving(tiny_scan):
    result = refine_object(tiny_scan.object_guess, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 50,
                           tolerance=1e-2, progress=False)
    assert result.stopped_early and result.iterations < 50


def test_a_start_that_cannot_be_improved_is_kept_and_said(tiny_scan, monkeypatch):
    import ptycho_torch.refine as refine

    monkeypatch.setattr(refine, "STEP", -1.0)  # a step that climbs the misfit
    with pytest.warns(UserWarning, match="raised the data misfit"):
        result = refine_object(tiny_scan.object_guess, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 2,
                               tolerance=0, progress=False)
    assert result.kept_start and result.misfit_after == result.misfit_before


def test_bad_refinement_input_is_refused(tiny_scan):
    truth = tiny_scan.object_guess
    with pytest.raises(ConfigError, match="refine_iters"):
        refine_object(truth, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), -1)
    with pytest.raises(ConfigError, match="probeGuess"):
        refine_object(truth, np.zeros((64, 64), np.complex64), tiny_scan.positions, _counts(tiny_scan), 1)


def test_low_dose_refinement_stops_before_it_fits_the_noise(tmp_path):
    """At 1e4 photons the likelihood's optimum fits the noise: held-out pixels catch it.

    Started from the true object, every pass can only fit noise, so the held-out misfit must
    stop refinement within a few passes and the truth must come back (it is the best object
    the held-out pixels saw), said as a kept start.
    """
    path = tmp_path / "low.npz"
    write_scan(SimulationConfig(object_size=112, step=16.0, probe="curved", nphotons=1e4, seed=7), path)
    reader = open_scan(path)
    with pytest.warns(UserWarning, match="starting object is kept"):
        result = refine_object(reader.object_guess, reader.probe, reader.positions, _counts(reader), 40,
                               tolerance=0, progress=False)
    assert result.stop_reason == "over-fitting" and result.iterations < 40
    assert len(result.holdout_curve) == result.iterations and result.best_iteration == 0 and result.kept_start
    assert _score(reader, result.object)["amp_ssim"] > 0.99


def test_large_scans_draw_the_same_held_out_pixels_without_caching_them(tiny_scan, monkeypatch):
    import ptycho_torch.refine as refine

    flat = np.ones(tiny_scan.object_guess.shape, np.complex64)
    cached = refine_object(flat, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 2, tolerance=0, progress=False)
    monkeypatch.setattr(refine, "DATA_CACHE_BYTES", 0)  # as for a scan too large to keep on the device
    streamed = refine_object(flat, tiny_scan.probe, tiny_scan.positions, _counts(tiny_scan), 2, tolerance=0, progress=False)
    assert streamed.holdout_curve == pytest.approx(cached.holdout_curve, rel=1e-5)
    np.testing.assert_allclose(streamed.object, cached.object, rtol=1e-4, atol=1e-5)
