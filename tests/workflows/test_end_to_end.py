"""End to end on the CPU: simulate, train, save, load, infer, stitch, score against ground truth.

The trained model must beat an untrained one (same architecture, same initial weights) by a
clear margin in amplitude SSIM and clear a stated floor; "the loss went down" is not the check.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ptycho_torch.bundle import load_bundle, save_bundle
from ptycho_torch.config.io import config_to_dict
from ptycho_torch.evaluate.stitch import WEIGHT_FLOOR
from ptycho_torch.factory import create_inference_payload, create_training_payload
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan
from ptycho_torch.workflows.infer import run_inference
from ptycho_torch.workflows.train import build_datamodule, build_module, run_training

# Stated floors (CPU, the budgets below). Measured on a 2-core CPU: see the closing note of the
# science-core issue and bench/reconstruction.py for the full-budget numbers.
TRAINED_AMP_SSIM_FLOOR = 0.25
MARGIN_OVER_UNTRAINED = {"cnn": 0.2, "resunet": 0.15}
# resunet (issue 8): measured 0.286 trained vs 0.123 untrained at this budget (640 steps); its
# untrained output is a near-uniform object (small heads), which scores lower than the CNN's.


def _train_and_score(tmp_path, *, probe: str, gridsize: int, nepochs: int, n_groups: int, object_size: int, step: float,
                     architecture: str = "resunet"):
    scan = write_scan(SimulationConfig(probe=probe, object_size=object_size, step=step, seed=3), tmp_path / "scan.npz")
    overrides = {
        "train_data_file": str(scan),
        "output_dir": str(tmp_path / "run"),
        "nepochs": nepochs,
        "n_groups": n_groups,
        "batch_size": 4,  # many small steps learn fastest per CPU second
        "learning_rate": 1e-3,
        "model.gridsize": gridsize,
        "model.n_filters_scale": 1,
        "model.architecture": architecture,
        "seed": 0,
        "execution.accelerator": "cpu",
        "execution.enable_progress_bar": False,
        "execution.logger_backend": "csv",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = create_training_payload(overrides=overrides)
        result = run_training(payload, resume="never")
    assert result.completed and result.bundle_path.is_file()
    assert result.global_step > 0

    # the same architecture with its initial weights (same seed), saved the same way
    untrained_path = tmp_path / "untrained.ptpinn"
    datamodule = build_datamodule(payload)
    import lightning as L

    L.seed_everything(payload.training.seed, verbose=False)
    untrained = build_module(payload, datamodule)
    save_bundle(
        untrained_path,
        state_dict=untrained.state_dict(),
        training=config_to_dict(payload.training),
        physics=load_bundle(result.bundle_path).physics,
        config_hash=payload.config_hash,
    )

    scores = {}
    for label, bundle in (("trained", result.bundle_path), ("untrained", untrained_path)):
        inference = create_inference_payload(
            overrides={
                "model_path": str(bundle),
                "test_data_file": str(scan),
                "output_dir": str(tmp_path / f"recon-{label}"),
                "execution.accelerator": "cpu",
            }
        )
        out = run_inference(inference)
        assert out.npz_path.is_file() and out.amplitude_png.is_file() and out.phase_png.is_file()
        stitched = np.load(out.npz_path)["object"]
        assert stitched.dtype == np.complex64
        weights = np.load(out.npz_path)["weights"]
        assert np.isfinite(stitched[weights >= WEIGHT_FLOOR * weights.max()]).all()  # every lit pixel
        metrics = json.loads(out.metrics_path.read_text())
        scores[label] = metrics
    return scores


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["resunet", "cnn"])
def test_gridsize1_trains_and_reconstructs_against_ground_truth(tmp_path, architecture):
    scores = _train_and_score(tmp_path, probe="curved", gridsize=1, nepochs=10, n_groups=256, object_size=160, step=6,
                              architecture=architecture)
    trained, untrained = scores["trained"]["amp_ssim"], scores["untrained"]["amp_ssim"]
    print(f"{architecture}: amplitude SSIM trained {trained:.3f} vs untrained {untrained:.3f}")
    assert trained >= TRAINED_AMP_SSIM_FLOOR
    assert trained - untrained >= MARGIN_OVER_UNTRAINED[architecture]


@pytest.mark.slow
def test_gridsize2_trains_and_stitches(tmp_path):
    scores = _train_and_score(tmp_path, probe="disk", gridsize=2, nepochs=2, n_groups=32, object_size=128, step=8)
    for label in ("trained", "untrained"):
        assert np.isfinite(scores[label]["amp_ssim"]) and np.isfinite(scores[label]["phase_ssim"])
