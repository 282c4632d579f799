"""Helpers of the real-SLURM tests: run ptycho-launch, read run records, wait for jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def launch(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``ptycho-launch --config run.yaml --runs-dir runs ARGS`` (or a lifecycle command) in ``workdir``."""
    cmd = [sys.executable, "-m", "launcher.cli"]
    if args and args[0] in ("status", "logs", "cancel", "list", "resume"):
        cmd += ["--runs-dir", str(workdir / "runs"), *args]
    else:
        cmd += ["--config", str(workdir / "run.yaml"), "--runs-dir", str(workdir / "runs"), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_dir(workdir: Path, run_id: str) -> Path:
    return workdir / "runs" / run_id


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def scheduler_state(job_id: str) -> str | None:
    from launcher.registry import scheduler_state as state

    return state(job_id)


def wait_until(predicate, timeout: float, poll: float = 0.25, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_job_done(workdir: Path, run_id: str, timeout: float = 240) -> dict:
    """Wait until the run's newest job has left the queue; returns its state.json."""
    rd = run_dir(workdir, run_id)

    def done():
        job = (read(rd / "launch.json").get("job_ids") or [None])[-1]
        if job is None:
            return None
        from launcher.registry import TERMINAL_STATES

        return scheduler_state(job) in TERMINAL_STATES
    wait_until(done, timeout, poll=0.5, what=f"run {run_id} to finish")
    return read(rd / "state.json")


def job_count() -> int:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    return len(out.stdout.split())


def weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
