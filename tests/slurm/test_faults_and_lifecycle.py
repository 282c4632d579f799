"""Kill without warning + resume, a crashing rank, cancel, sweeps as arrays, plain sbatch."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from slurm_helpers import REPO, launch, read, run_dir, scheduler_state, wait_job_done, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _job_id(workdir, run_id):
    return read(run_dir(workdir, run_id) / "launch.json")["job_ids"][-1]


def test_killed_run_resumes_from_periodic_checkpoint(workdir):
    """SIGKILL to the tasks (no signal handler runs); `resume` continues from step=<N>.ckpt."""
    out = launch(workdir, "--run-id", "kill-1x1", "--set", "nepochs=6")  # 4 steps/epoch -> 24 steps
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "kill-1x1")
    wait_until(lambda: any(int(p.stem.split("=")[1]) >= 4 for p in (rd / "checkpoints").glob("step=*.ckpt")), 180,
               poll=0.1, what="a periodic checkpoint at step >= 4")
    job = _job_id(workdir, "kill-1x1")
    subprocess.run(["scancel", "--signal=KILL", job], check=True)
    wait_until(lambda: scheduler_state(job) in ("FAILED", "CANCELLED", "COMPLETED"), 60, what="the killed job to end")
    assert read(rd / "state.json")["status"] != "COMPLETED", "the job finished before it could be killed"
    out = launch(workdir, "resume", "kill-1x1", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    state = read(rd / "state.json")
    assert state["status"] == "COMPLETED" and state["global_step"] == 24
    resumed = read(rd / "ranks" / "rank-0.json")["resumed_from"]
    assert re.search(r"step=\d+\.ckpt$", resumed) or resumed.endswith("last.ckpt"), resumed
    assert len(read(rd / "launch.json")["job_ids"]) == 2


def test_crashing_rank_fails_the_job_promptly(workdir):
    start = time.monotonic()
    out = launch(workdir, "--run-id", "crash-1x2", "--devices", "2", "--strategy", "ddp", "--set", "nepochs=50",
                 "--env", "PTYCHO_LAUNCH_FAULT=crash@rank=1,step=2", "--wait")
    assert out.returncode == 1, out.stdout + out.stderr
    assert time.monotonic() - start < 120
    assert scheduler_state(_job_id(workdir, "crash-1x2")) == "FAILED"
    status = launch(workdir, "status", "crash-1x2")
    assert re.search(r"error\s+rank 1: RuntimeError: injected fault", status.stdout), status.stdout


def test_cancel_a_running_job(workdir):
    out = launch(workdir, "--run-id", "cancel-me", "--set", "nepochs=500")
    assert out.returncode == 0, out.stderr
    job = _job_id(workdir, "cancel-me")
    wait_until(lambda: scheduler_state(job) == "RUNNING", 60, what="the job to run")
    out = launch(workdir, "cancel", "cancel-me")
    assert out.returncode == 0 and f"cancelled job {job}" in out.stdout, out.stderr
    wait_until(lambda: scheduler_state(job) == "CANCELLED", 60, what="CANCELLED")
    assert "CANCELLED" in launch(workdir, "status", "cancel-me").stdout


def test_sweep_of_three_runs_as_one_array(workdir):
    out = launch(workdir, "--run-id", "sw", "--sweep", "seed=1", "--sweep", "seed=2", "--sweep", "seed=3",
                 "--set", "nepochs=1", "--wait", timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = [_job_id(workdir, f"sw-{k}") for k in range(3)]
    array = {i.split("_")[0] for i in ids}
    assert len(array) == 1 and sorted(i.split("_")[1] for i in ids) == ["0", "1", "2"], ids
    hashes = set()
    for k in range(3):
        state = read(run_dir(workdir, f"sw-{k}") / "state.json")
        assert state["status"] == "COMPLETED", state
        assert (run_dir(workdir, f"sw-{k}") / "model.ptpinn").is_file()
        hashes.add(state["trained_hash"])
    assert len(hashes) == 3


def test_plain_sbatch_template_trains(workdir):
    out = subprocess.run(["sbatch", "--parsable", "--ntasks-per-node=2", str(REPO / "slurm" / "train.sbatch"),
                          str(workdir / "run.yaml"), "plain-sbatch"], cwd=workdir, capture_output=True, text=True,
                         env={**__import__("os").environ, "PTYCHO_RUNS_DIR": str(workdir / "runs")})
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip().split(";")[0]
    state = wait_job_done(workdir, "plain-sbatch")
    assert scheduler_state(job) == "COMPLETED"
    assert state["status"] == "COMPLETED" and state["world_size"] == 2
    assert state["trained_hash"] == read(run_dir(workdir, "plain-sbatch") / "launch.json")["config_hash"]
