"""A node that dies mid-run (its slurmd killed): SLURM requeues the job by itself, status and list
say NODE_FAIL meanwhile, and once the node is back the run completes from its newest valid
checkpoint with no ptycho-launch command typed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slurm_helpers import launch, read, run_dir, scheduler_state, wait_job_done, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

STATE_DIR = Path(os.environ.get("SLURM_STATE", "/tmp/ptycho-slurm"))
STEPS = 200  # 2 steps per epoch (32 patterns / 2 ranks / batch 8); ~0.5 s a step here: still training ~35 s after the kill
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
DEAD_NODE = "node2"  # rank 1; the batch script and rank 0 run on node1


def _listed(workdir, run_id):
    line = next(row for row in launch(workdir, "list").stdout.splitlines() if row.startswith(run_id + " "))
    return line.split()[2:4]  # scheduler, status


def _checkpoint_steps(rd: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in (rd / "checkpoints").glob("*.ckpt") if (m := re.search(r"step=(\d+)", p.name)))


def _slurmd_pid(node: str) -> int:
    return int((STATE_DIR / f"slurmd-{node}.pid").read_text().split()[0])


def test_killed_slurmd_is_requeued_by_slurm_and_the_run_completes(workdir, slurm_cluster):
    if DEAD_NODE not in slurm_cluster["nodes"]:
        pytest.skip(f"needs the 2-node dev cluster (nodes: {slurm_cluster['nodes']})")
    out = launch(workdir, "--run-id", "nodefail", "--nodes", "2", "--devices", "1", "--strategy", "ddp",
                 "--set", f"nepochs={STEPS // 2}")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "nodefail")
    job = read(rd / "launch.json")["job_ids"][-1]
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 6, 180, poll=0.1, what="step 6")
    assert read(rd / "ranks" / "rank-1.json")["node"] == DEAD_NODE
    pid = _slurmd_pid(DEAD_NODE)
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)  # the node's daemon dies; SLURM hears nothing from it any more
    try:
        # while SLURM has the job queued again and the node is down: NODE_FAIL, not RUNNING
        wait_until(lambda: "training   NODE_FAIL" in launch(workdir, "status", "nodefail").stdout, 150, poll=1,
                   what="status to say NODE_FAIL")
        seen_at = time.time()
        sched, status = _listed(workdir, "nodefail")
        assert status == "NODE_FAIL" and sched not in ("RUNNING", "NODE_FAIL"), (sched, status)
        state = read(rd / "state.json")
        assert state["requeues"] == 1 and state["requeue_reason"].startswith("node failure"), state
        status_text = launch(workdir, "status", "nodefail").stdout
        assert "requeued   node failure" in status_text, status_text
        newest = max(_checkpoint_steps(rd))
        print(f"\nkilled slurmd of {DEAD_NODE} -> status NODE_FAIL: {seen_at - killed_at:.1f} s (scheduler: {sched})")
    finally:
        subprocess.run([SLURMD, "-N", DEAD_NODE], check=True, timeout=60)  # the node comes back
    back_at = time.time()
    state = wait_job_done(workdir, "nodefail", timeout=400)
    assert scheduler_state(job) == "COMPLETED"
    assert state["status"] == "COMPLETED" and state["global_step"] == STEPS, state
    assert state["requeues"] == 1 and state["attempts"] == 2 and read(rd / "launch.json")["job_ids"] == [job], state
    resumed = read(rd / "ranks" / "rank-0.json")["resumed_from"]
    assert resumed and (f"step={newest}" in resumed or resumed.endswith("last.ckpt")), (resumed, newest)
    print(f"slurmd back -> COMPLETED with no user command: {state['finished_at'] - back_at:.1f} s "
          f"(killed -> COMPLETED {state['finished_at'] - killed_at:.1f} s), resumed from {Path(resumed).name}")


def test_node_failure_beyond_the_budget_is_not_restarted(workdir, slurm_cluster):
    if DEAD_NODE not in slurm_cluster["nodes"]:
        pytest.skip(f"needs the 2-node dev cluster (nodes: {slurm_cluster['nodes']})")
    out = launch(workdir, "--run-id", "nodefail-nobudget", "--nodes", "2", "--devices", "1", "--strategy", "ddp",
                 "--set", f"nepochs={STEPS // 2}", "--requeue-budget", "0")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "nodefail-nobudget")
    job = read(rd / "launch.json")["job_ids"][-1]
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 2, 180, poll=0.1, what="step 2")
    os.kill(_slurmd_pid(DEAD_NODE), signal.SIGKILL)
    try:
        wait_until(lambda: scheduler_state(job) in ("PENDING", "COMPLETING"), 150, poll=1, what="SLURM's own requeue")
        status = launch(workdir, "status", "nodefail-nobudget").stdout
        assert "training   FAILED" in status and "requeue budget spent (0/0)" in status, status
    finally:
        subprocess.run([SLURMD, "-N", DEAD_NODE], check=True, timeout=60)
    wait_until(lambda: scheduler_state(job) == "FAILED", 180, poll=1, what="the refused restart to end the job")
    state = read(rd / "state.json")
    assert state["status"] == "FAILED" and state["attempts"] == 1 and state["requeues"] == 0, state
    log = (rd / "logs" / f"{job}_0_log.err").read_text()
    assert f"restart 1 of job {job} refused" in log, log[-2000:]
