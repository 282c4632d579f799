"""A hung rank is named and ends the job within the watchdog timeout; hangs and ranks killed by
a signal are requeued automatically (within the budget) and the run completes; code errors are not."""

from __future__ import annotations

import os
import signal
import time

import pytest

from slurm_helpers import launch, read, run_dir, scheduler_state, wait_job_done, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TIMEOUT_S = 15
STEPS = 20  # 32 patterns / 2 ranks / batch 8 = 2 steps per epoch, 10 epochs


def test_hung_rank_is_named_requeued_and_the_run_completes(workdir):
    out = launch(workdir, "--run-id", "hang", "--devices", "2", "--strategy", "ddp", "--set", f"nepochs={STEPS // 2}",
                 "--env", "PTYCHO_LAUNCH_FAULT=hang@rank=1,step=4", "--hang-timeout-s", str(TIMEOUT_S))
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "hang")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 4, 180, poll=0.1, what="step 4")
    hung_at = time.time()  # rank 1 stops after step 4; rank 0 waits in the all-reduce of step 5
    state = wait_until(lambda: (s := read(rd / "state.json")).get("hung_detected_at") and s, TIMEOUT_S + 60, poll=0.2,
                       what="the watchdog")
    detect_s = state["hung_detected_at"] - hung_at
    assert state["hung_rank"] == 1 and state["hung_step"] >= 4, state
    assert detect_s < TIMEOUT_S + 10, detect_s
    print(f"\nhang -> HUNG recorded: {detect_s:.1f} s (timeout {TIMEOUT_S} s)")
    state = wait_job_done(workdir, "hang", timeout=300)
    assert state["status"] == "COMPLETED" and state["global_step"] == STEPS, state
    assert state["requeues"] == 1 and state["attempts"] == 2 and "hang: rank 1 hung" in state["requeue_reason"], state
    print(f"hang -> COMPLETED with no user command: {state['finished_at'] - hung_at:.1f} s")


def test_rank_killed_by_sigkill_is_requeued_and_completes(workdir):
    out = launch(workdir, "--run-id", "sigkill", "--devices", "2", "--strategy", "ddp", "--set", f"nepochs={STEPS // 2}")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "sigkill")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 4, 180, poll=0.1, what="step 4")
    killed_at = time.time()
    os.kill(read(rd / "ranks" / "rank-1.json")["pid"], signal.SIGKILL)
    wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= 1, 120, poll=0.2, what="the requeue")
    requeue_s = read(rd / "state.json")["requeued_at"] - killed_at
    state = wait_job_done(workdir, "sigkill", timeout=300)
    assert state["status"] == "COMPLETED" and state["global_step"] == STEPS, state
    assert "rank 1 was killed by a signal" in state["requeue_reason"], state
    print(f"\nkill -9 rank 1 -> REQUEUED: {requeue_s:.1f} s; -> COMPLETED with no user command: {state['finished_at'] - killed_at:.1f} s")


def test_code_error_is_not_requeued(workdir):
    out = launch(workdir, "--run-id", "crash-noretry", "--devices", "2", "--strategy", "ddp", "--set", "nepochs=50",
                 "--env", "PTYCHO_LAUNCH_FAULT=crash@rank=1,step=2", "--wait")
    assert out.returncode == 1
    state = read(run_dir(workdir, "crash-noretry") / "state.json")
    assert state["status"] == "FAILED" and state.get("requeues", 0) == 0 and state["attempts"] == 1, state
    assert scheduler_state(read(run_dir(workdir, "crash-noretry") / "launch.json")["job_ids"][-1]) == "FAILED"


def test_plain_sbatch_template_requeues_a_killed_rank_and_completes(workdir):
    """slurm/train.sbatch has the same after-srun step once it knows its run directory."""
    import subprocess
    import sys

    import yaml

    from slurm_helpers import REPO

    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["nepochs"] = STEPS // 2
    (workdir / "plain-kill.yaml").write_text(yaml.safe_dump(config))
    out = subprocess.run(["sbatch", "--parsable", "--ntasks-per-node=2", str(REPO / "slurm" / "train.sbatch"),
                          str(workdir / "plain-kill.yaml"), "plain-kill"], cwd=workdir, capture_output=True, text=True,
                         env={**os.environ, "PTYCHO_RUNS_DIR": str(workdir / "runs"), "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "plain-kill")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 4, 180, poll=0.1, what="step 4")
    killed_at = time.time()
    os.kill(read(rd / "ranks" / "rank-1.json")["pid"], signal.SIGKILL)
    wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= 1, 120, poll=0.2, what="the requeue")
    state = wait_job_done(workdir, "plain-kill", timeout=300)
    assert state["status"] == "COMPLETED" and state["global_step"] == STEPS and state["attempts"] == 2, state
    assert "rank 1 was killed by a signal" in state["requeue_reason"], state
    print(f"\nplain sbatch: kill -9 rank 1 -> COMPLETED with no user command: {state['finished_at'] - killed_at:.1f} s")


def test_array_task_with_a_killed_rank_is_requeued_and_completes(workdir):
    """A sweep (job array): each task's batch script finds its own run for the after-srun step."""
    out = launch(workdir, "--run-id", "swk", "--sweep", "seed=1", "--sweep", "seed=2", "--set", "nepochs=10")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "swk-0")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 4, 240, poll=0.1, what="swk-0 at step 4")
    killed_at = time.time()
    os.kill(read(rd / "ranks" / "rank-0.json")["pid"], signal.SIGKILL)
    wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= 1, 120, poll=0.2, what="the array task's requeue")
    for k in range(2):
        state = wait_job_done(workdir, f"swk-{k}", timeout=400)
        assert state["status"] == "COMPLETED" and state["global_step"] == 40, (k, state)
    state = read(rd / "state.json")
    assert state["attempts"] == 2 and "rank 0 was killed by a signal" in state["requeue_reason"], state
    assert read(run_dir(workdir, "swk-1") / "state.json").get("requeues", 0) == 0
    print(f"\narray task: kill -9 -> COMPLETED with no user command: {state['finished_at'] - killed_at:.1f} s")
