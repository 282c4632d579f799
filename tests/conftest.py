"""Fixtures shared by the test folders: a tiny simulated scan and a run file (no training, no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def simulate_tiny_scan(tmp_path_factory):
    """``(n_images, seed) -> path``: a tiny scan (64x64 patterns, 128 px lines object, random scan) in a new folder."""
    from ptycho_torch.cli.simulate import main as simulate

    def write(n_images: int, seed: int) -> Path:
        path = tmp_path_factory.mktemp("scan") / "tiny.npz"
        assert simulate(["--out", str(path), "--N", "64", "--n-images", str(n_images), "--object-size", "128",
                         "--scan", "random", "--seed", str(seed)]) == 0
        return path

    return write


@pytest.fixture(scope="session")
def tiny_scan(simulate_tiny_scan) -> Path:
    """16 simulated 64x64 patterns, written once per session."""
    return simulate_tiny_scan(16, seed=3)


@pytest.fixture()
def run_file(tmp_path, tiny_scan) -> Path:
    """run.yaml (training fields, execution: and cluster: sections) in a fresh folder."""
    config = {
        "train_data_file": str(tiny_scan), "nepochs": 1, "batch_size": 8, "seed": 1,
        "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
        "execution": {"accelerator": "cpu", "logger_backend": "csv", "enable_progress_bar": False},
        "cluster": {"time": "00:30:00", "signal_lead_s": 60, "setup": ["echo setup-line"], "env": {"FOO": "bar baz"}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
