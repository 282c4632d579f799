"""The run record takes the scheduler's word once the job ended (no cluster: scheduler states given)."""

from __future__ import annotations

import pytest

from launcher.registry import reconcile
from launcher.rundir import RunDir


def _run(tmp_path, status, **extra):
    run = RunDir(tmp_path / "r")
    (run.logs_dir).mkdir(parents=True)
    run.update_launch(job_ids=["7"], log_dir=str(run.logs_dir), mode="slurm")
    run.update_state(status=status, **extra)
    run.write_rank_record(0, status="RUNNING")
    run.write_rank_record(1, status="RUNNING")
    return run


@pytest.mark.parametrize("recorded,sched,expected", [
    ("RUNNING", "TIMEOUT", "TIMEOUT"), ("RUNNING", "NODE_FAIL", "NODE_FAIL"), ("RUNNING", "CANCELLED", "CANCELLED"),
    ("REQUEUED", "COMPLETED", "PREEMPTED"), ("RUNNING", "FAILED", "FAILED"), ("SUBMITTED", "OUT_OF_MEMORY", "OUT_OF_MEMORY"),
])
def test_live_record_of_an_ended_job_takes_the_scheduler_state(tmp_path, recorded, sched, expected):
    run = _run(tmp_path, recorded)
    state = reconcile(run, sched)
    assert state["status"] == expected and state["scheduler_state"] == sched
    assert all(rec["status"] != "RUNNING" for rec in run.rank_records().values())


def test_running_job_and_finished_run_are_left_alone(tmp_path):
    run = _run(tmp_path, "RUNNING")
    assert reconcile(run, "RUNNING")["status"] == "RUNNING"
    assert reconcile(run, None)["status"] == "RUNNING"
    done = _run(tmp_path / "b", "COMPLETED")
    assert reconcile(done, "COMPLETED")["status"] == "COMPLETED" and "reconciled_at" not in done.state()


def test_user_cancel_is_cancelled_not_failed(tmp_path):
    run = _run(tmp_path, "FAILED", error="rank 0: SIGTERMException", cancel_requested_at=1.0)
    assert reconcile(run, "CANCELLED")["status"] == "CANCELLED"


def test_the_rank_srun_saw_killed_is_named_not_the_survivor(tmp_path):
    run = _run(tmp_path, "RUNNING", error="rank 0: RuntimeError: Connection closed by peer")
    (run.logs_dir / "7_0_log.err").write_text("boom\nsrun: error: node2: task 1: Killed\nsrun: error: node1: task 0: Terminated\n")
    state = reconcile(run, "FAILED")
    assert state["status"] == "FAILED" and state["error"].startswith("rank 1 was killed by a signal")
    assert run.rank_records()[1]["status"] == "KILLED"
