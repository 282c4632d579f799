"""Real-SLURM test fixtures: the dev cluster (slurm/dev/up.sh), a tiny scan and run files.

The cluster is brought up once per session and torn down at the end if this session
started it.  Without root or apt (and no cluster already up) the tests are skipped with the
reason -- except under CI (CI=true), where a missing cluster is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEV = REPO / "slurm" / "dev"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and bool(out.stdout.strip())


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the dev SLURM cluster is unavailable: {reason}")
    pytest.skip(f"dev SLURM cluster unavailable: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running dev cluster (2 simulated nodes) with the sacct stand-in first on PATH."""
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{DEV / 'bin'}{os.pathsep}{old_path}"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = False
    try:
        if not _cluster_answers():
            if os.geteuid() != 0:
                _unavailable("not root (slurm/dev/up.sh starts daemons and may apt-get install)")
            if shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists() and shutil.which("apt-get") is None:
                _unavailable("slurmctld is not installed and apt-get is not available")
            up = subprocess.run(["bash", str(DEV / "up.sh")], capture_output=True, text=True, timeout=900)
            if up.returncode in (3, 4):
                _unavailable(up.stderr.strip().splitlines()[-1] if up.stderr.strip() else f"up.sh exit {up.returncode}")
            if up.returncode != 0:
                pytest.fail(f"slurm/dev/up.sh failed ({up.returncode}): {up.stderr[-2000:]}")
            started = True
        yield {"nodes": subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()}
    finally:
        if started:
            subprocess.run(["bash", str(DEV / "down.sh")], capture_output=True, timeout=120)
        os.environ["PATH"] = old_path


@pytest.fixture(scope="session")
def tiny_scan(simulate_tiny_scan) -> Path:
    """32 simulated 64x64 patterns (lines object, random scan), written once per session."""
    return simulate_tiny_scan(32, seed=1)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory, tiny_scan) -> Path:
    """A folder with run.yaml (tiny model, 2 epochs, batch 8, CPU) and runs/ beneath it."""
    root = tmp_path_factory.mktemp("launch")
    config = {
        "train_data_file": str(tiny_scan), "nepochs": 2, "batch_size": 8, "n_groups": 32, "seed": 7,
        "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
        "execution": {"accelerator": "cpu", "logger_backend": "csv", "enable_progress_bar": False,
                      "checkpoint_every_n_steps": 2},
        # agree on preemption and write progress every step: the tests signal and watch at exact steps
        "cluster": {"time": "00:10:00", "cpus_per_task": 1, "signal_lead_s": 30, "checkpoint_time_s": 10,
                    "preempt_check_every_n_steps": 1, "progress_interval_s": 0},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root
