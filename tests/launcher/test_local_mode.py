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
    assert simulate(["--out", str(scan), "--n-images", "24", "--object-size", "128", "--scan", "random", "--seed", "2"]) == 0
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


def test_local_mode_with_two_gloo_ranks(tmp_path: Path):
    """--local --devices 2: two CPU ranks on this machine (gloo), 1 thread each, the cluster's job path."""
    scan = tmp_path / "scan.npz"
    assert simulate(["--out", str(scan), "--n-images", "32", "--object-size", "128", "--scan", "random", "--seed", "2"]) == 0
    config = {
        "train_data_file": str(scan), "nepochs": 1, "batch_size": 8, "n_groups": 32, "seed": 1,
        "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
        "execution": {"accelerator": "auto", "logger_backend": "csv", "enable_progress_bar": False},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "--config", "run.yaml", "--local", "--devices", "2", "--runs-dir", "runs",
         "--run-id", "local2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    run = tmp_path / "runs" / "local2"
    state = json.loads((run / "state.json").read_text())
    launch = json.loads((run / "launch.json").read_text())
    assert state["status"] == "COMPLETED" and state["world_size"] == 2, state
    assert launch["target"]["accelerator"] == "cpu" and launch["target"]["source"] == "this machine"
    for rank in (0, 1):
        record = json.loads((run / "ranks" / f"rank-{rank}.json").read_text())
        assert record["status"] == "COMPLETED" and record["world_size"] == 2
        line = next(ln for ln in (run / "logs" / f"local_{rank}_log.out").read_text().splitlines() if ln.startswith("[launcher] rank"))
        assert line.startswith(f"[launcher] rank {rank}/2") and " threads 1 " in line, line
    # the ranks trained one model together: 32 groups / 2 ranks / batch 8 = 2 steps
    assert state["global_step"] == 2


def test_code_snapshot_refuses_changed_code(tmp_path: Path):
    """The job's check: sources that hash differently from the submitted ones are refused (one line)."""
    import shutil

    import pytest

    from launcher.errors import SubmitError
    from launcher.snapshot import package_dirs, source_digest, verify_snapshot

    copies = {}
    for name, root in package_dirs().items():
        copies[name] = tmp_path / name
        shutil.copytree(root, copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    record = {"mode": "check", "digest": source_digest(copies)}
    verify_snapshot(record, copies)  # unchanged: accepted
    with (copies["launcher"] / "job.py").open("a") as f:
        f.write("\n# pulled a change\n")
    with pytest.raises(SubmitError) as info:
        verify_snapshot(record, copies)
    assert "code changed since the job was submitted" in info.value.one_line()
    verify_snapshot({"mode": "off"}, copies)


def test_local_ranks_share_this_machines_thread_budget(monkeypatch):
    from launcher.submit import local_threads_per_rank

    assert local_threads_per_rank({"OMP_NUM_THREADS": "2"}, 1, 0) == 2  # the demo gives its one rank every core
    assert local_threads_per_rank({"OMP_NUM_THREADS": "2"}, 2, 0) == 1  # two DDP ranks: one thread each
    assert local_threads_per_rank({"OMP_NUM_THREADS": "8"}, 2, 1) == 3  # a dataloader worker takes its share
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert local_threads_per_rank({}, 1, 0) == 4 and local_threads_per_rank({"OMP_NUM_THREADS": "x"}, 4, 0) == 1
