"""A dry run is how users check a job on a laptop: it must need no SLURM command at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SLURM_COMMANDS = ("sbatch", "srun", "sinfo", "squeue", "scontrol", "sacct", "scancel")


def test_dry_run_with_no_slurm_command_on_path(run_file: Path, tmp_path: Path):
    bin_dir = tmp_path / "bin"  # an empty PATH: no SLURM tool can be found
    bin_dir.mkdir()
    path = str(bin_dir)
    assert all(shutil.which(cmd, path=path) is None for cmd in SLURM_COMMANDS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = path
    runs = tmp_path / "runs"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's launcher
    proc = subprocess.run([sys.executable, "-m", "launcher.cli", "--config", str(run_file), "--runs-dir",
                           str(runs), "--dry-run", "--nodes", "2", "--devices", "2", "--strategy", "ddp"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "#SBATCH --nodes=2" in proc.stdout and "#SBATCH --ntasks-per-node=2" in proc.stdout
    assert "\nsrun " in proc.stdout and "Traceback" not in proc.stderr and "srun" not in proc.stderr, proc.stderr
    assert not runs.exists()
