"""Fixtures of the CLI tests: a tiny simulated scan, a run file and an untrained bundle (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def cli_scan(tmp_path_factory) -> Path:
    """16 simulated 64x64 patterns, written once per session."""
    from ptycho_torch.cli.simulate import main as simulate

    path = tmp_path_factory.mktemp("cli-scan") / "tiny.npz"
    assert simulate(["--out", str(path), "--N", "64", "--n-images", "16", "--object-size", "128",
                     "--scan", "random", "--seed", "3", "--quiet"]) == 0
    return path


@pytest.fixture()
def cli_run_file(tmp_path, cli_scan) -> Path:
    """run.yaml with execution: and cluster: sections, in a fresh folder."""
    config = {
        "train_data_file": str(cli_scan), "nepochs": 1, "batch_size": 8, "seed": 1,
        "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
        "execution": {"accelerator": "cpu", "logger_backend": "csv", "enable_progress_bar": False},
        "cluster": {"time": "00:30:00", "signal_lead_s": 60, "setup": ["echo setup-line"], "env": {"FOO": "bar baz"}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def header_bundle(tmp_path_factory) -> Path:
    """A real bundle file (default TrainingConfig, no weights): enough for the inference factory,
    which reads only the bundle's header."""
    from ptycho_torch.bundle import save_bundle
    from ptycho_torch.config.canonical import TrainingConfig
    from ptycho_torch.config.io import config_hash, config_to_dict

    training = TrainingConfig()
    path = tmp_path_factory.mktemp("cli-bundle") / "model.ptpinn"
    return save_bundle(path, state_dict={}, training=config_to_dict(training), physics={}, config_hash=config_hash(training))


@pytest.fixture()
def no_slurm(monkeypatch):
    """No SLURM commands on PATH: launcher output must not depend on a cluster answering."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))

