"""Fixtures of the CLI tests: a tiny simulated scan, a run file and an untrained bundle (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


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

