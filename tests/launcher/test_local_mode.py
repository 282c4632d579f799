"""`ptycho-launch --local`: the job path of the cluster, run here, with SLURM variables scrubbed.

This is what the README's main job uses. A fake SLURM allocation in the environment must not
confuse Lightning (it would otherwise wait for 4 tasks that never come).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ptycho_torch.cli.simulate import main as simulate


def test_local_mode_trains_writes_bundle_and_keeps_the_config_hash(tmp_path: Path):
    scan = tmp_path / "scan.npz"
    assert simulate(["--out", str(scan), "--n_images", "24", "--object_size", "128", "--scan", "random", "--seed", "2"]) == 0
    config = {
        "train_data_file": str(scan), "nepochs": 1, "batch_size": 8, "n_groups": 24, "seed": 1,
        "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
        "execution": {"accelerator": "cpu", "logger_backend": "csv", "enable_progress_bar": False},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "4",
           "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "3", "SLURM_NNODES": "1", "SLURM_JOB_NAME": "interactive"}
    proc = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "--config", "run.yaml", "--local", "--runs-dir", "runs", "--run-id", "local1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    run = tmp_path / "runs" / "local1"
    assert (run / "model.ptpinn").is_file()
    launch = json.loads((run / "launch.json").read_text())
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "COMPLETED"
    assert state["trained_hash"] == launch["config_hash"]
    assert state.get("world_size", 1) == 1
