"""Fixtures shared by the test folders: a tiny simulated scan and a run file (no training, no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_scan(tmp_path_factory) -> Path:
    """16 simulated 64x64 patterns, written once per session."""
    from ptycho_torch.cli.simulate import main as simulate

    path = tmp_path_factory.mktemp("scan") / "tiny.npz"
    assert simulate(["--out", str(path), "--N", "64", "--n-images", "16", "--object-size", "128",
                     "--scan", "random", "--seed", "3"]) == 0
    return path


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
