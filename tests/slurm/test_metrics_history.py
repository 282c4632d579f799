"""The loss history of a run preempted twice is one continuous curve (every attempt's metrics kept)."""

from __future__ import annotations

import subprocess

import pytest

from slurm_helpers import launch, read, run_dir, wait_job_done, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

STEPS = 28  # 32 patterns, batch 8, one rank: 4 steps per epoch, 7 epochs


def test_metrics_of_a_twice_preempted_run_form_one_history(workdir):
    from ptycho_torch.workflows.logging import read_metrics_history

    out = launch(workdir, "--run-id", "hist", "--set", f"nepochs={STEPS // 4}", "--log-every-n-steps", "1")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "hist")
    job = read(rd / "launch.json")["job_ids"][-1]
    for k, at_step in enumerate((4, 14), start=1):
        wait_until(lambda: read(rd / "state.json").get("status") == "RUNNING" and read(rd / "state.json").get("attempts") == k
                   and read(rd / "progress.json").get("global_step", 0) >= at_step, 180, poll=0.1, what=f"attempt {k} at step {at_step}")
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
        wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= k, 120, poll=0.2, what=f"requeue {k}")
    state = wait_job_done(workdir, "hist", timeout=300)
    assert state["status"] == "COMPLETED" and state["requeues"] == 2 and state["global_step"] == STEPS, state
    attempts = sorted(p.name for p in (rd / "metrics").glob("attempt-*"))
    assert attempts == ["attempt-0", "attempt-1", "attempt-2"]
    steps = [int(r["step"]) for r in read_metrics_history(rd) if "train_loss_step" in r]
    assert steps == list(range(STEPS)), steps  # every step once, no gap at the restarts
