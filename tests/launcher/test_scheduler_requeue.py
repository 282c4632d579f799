"""Requeues SLURM makes on its own (node failure) are counted once, within the budget, and said
(no cluster: restart counts and slurmstepd's log line given)."""

from __future__ import annotations

import pytest

from launcher.aftercare import decide
from launcher.config import ClusterConfig
from launcher.registry import reconcile
from launcher.rundir import RunDir
from launcher.scheduler_requeue import main, note_scheduler_requeue, on_restart
from launcher.spec import Resources, setup_lines

NODE_FAILURE_LINE = ("slurmstepd-node1: error: *** JOB 7 ON node1 CANCELLED AT 2026-12-01T22:40:01 "
                     "DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***\n")


def _run(tmp_path, status="RUNNING", budget=2, log=NODE_FAILURE_LINE, **extra):
    run = RunDir(tmp_path / "r")
    run.logs_dir.mkdir(parents=True)
    run.update_launch(job_ids=["7"], log_dir=str(run.logs_dir), mode="slurm", requeue_budget=budget)
    run.update_state(status=status, job_id="7", requeues=0, **extra)
    (run.logs_dir / "7_0_log.err").write_text("training...\n" + log)
    run.write_rank_record(1, status="FAILED", error="RuntimeError: Connection closed by peer", failed_at=1.0)
    return run


def test_node_failure_requeue_is_counted_once_and_shown_as_node_fail(tmp_path):
    run = _run(tmp_path, status="FAILED", error="rank 0: SIGTERMException")
    state = reconcile(run, "PENDING", restarts=1)
    assert state["status"] == "NODE_FAIL" and state["requeues"] == 1 and state["error"] is None, state
    assert state["requeue_reason"].startswith("node failure: SLURM requeued the job itself"), state
    assert reconcile(run, "PENDING", restarts=1)["requeues"] == 1  # status again: not counted twice
    go_on, message = on_restart(run.path, "7", 1)  # the batch script on the restart: already counted
    assert go_on and run.state()["requeues"] == 1, message


def test_requeue_the_launcher_asked_for_is_not_counted_again(tmp_path):
    run = _run(tmp_path, status="REQUEUED", log="")
    run.update_state(requeues=1, requeue_reason="preemption or time-limit signal")
    state = reconcile(run, "PENDING", restarts=1)
    assert state["status"] == "REQUEUED" and state["requeues"] == 1 and state["scheduler_restarts"] == {"7": 1}


def test_restart_without_node_failure_line_is_a_plain_scheduler_requeue(tmp_path):
    run = _run(tmp_path, log="")
    state = note_scheduler_requeue(run, "7", 1)
    assert state["status"] == "REQUEUED" and "not asked by ptycho-launch" in state["requeue_reason"]


def test_pending_job_never_restarted_and_running_job_are_left_alone(tmp_path):
    run = _run(tmp_path)
    assert reconcile(run, "PENDING", restarts=0)["status"] == "RUNNING"
    assert reconcile(run, "RUNNING", restarts=3)["status"] == "RUNNING"


def test_spent_budget_refuses_the_restart_before_srun(tmp_path, monkeypatch):
    run = _run(tmp_path, budget=1)
    run.update_state(requeues=1)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert main([str(run.path)]) == 1
    state = run.state()
    assert state["status"] == "FAILED" and state["requeues"] == 1 and "requeue budget spent (1/1)" in state["error"]
    assert "node failure" in state["error"] and "resume" in state["error"]
    assert main([str(run.path)]) == 1  # asked again (status first, then the batch script): still refused


def test_new_job_of_the_run_counts_its_own_restarts(tmp_path):
    run = _run(tmp_path)
    note_scheduler_requeue(run, "7", 1)
    run.update_launch(job_ids=["7", "9"])
    run.update_state(status="RUNNING", job_id="9")
    state = note_scheduler_requeue(run, "9", 1, log_text=NODE_FAILURE_LINE.replace("JOB 7", "JOB 9"))
    assert state["requeues"] == 2 and state["scheduler_restarts"] == {"7": 1, "9": 1}


def test_first_start_runs_nothing(tmp_path, monkeypatch):
    run = _run(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert main([str(run.path)]) == 0 and run.state()["status"] == "RUNNING"


def test_aftercare_leaves_a_node_failure_to_slurm(tmp_path):
    run = _run(tmp_path)
    reason, why = decide(run, "srun: error: node2: task 1: Killed\n" + NODE_FAILURE_LINE)
    assert reason is None and "node failure" in why


@pytest.mark.parametrize("run_dir", ["/runs/a b", "/runs/x"])
def test_batch_script_checks_a_restart_before_srun_and_before_the_trap(run_dir):
    lines = setup_lines(ClusterConfig(), Resources(devices=1, num_nodes=2, num_workers=0, accelerator="cpu"), run_dir)
    check = next(i for i, line in enumerate(lines) if "launcher.scheduler_requeue" in line)
    trap = next(i for i, line in enumerate(lines) if line.startswith("trap "))
    assert check < trap and "SLURM_RESTART_COUNT" in lines[check]
    import shlex

    assert shlex.quote(run_dir) in lines[check]


def test_plain_sbatch_template_gets_the_same_care_once_its_run_directory_is_known():
    from launcher.templates import render_train

    lines = render_train().splitlines()
    # RUN_DIR comes from the prepared run's shell assignments (eval "$PREPARED")
    run_dir_line = next(i for i, line in enumerate(lines) if line.startswith('eval "$PREPARED"'))
    check = next(i for i, line in enumerate(lines) if "launcher.scheduler_requeue" in line)
    trap = next(i for i, line in enumerate(lines) if line.startswith("trap "))
    srun = next(i for i, line in enumerate(lines) if line.startswith("srun "))
    assert run_dir_line < check < trap < srun
    assert '"$RUN_DIR"' in lines[check] and '"$RUN_DIR"' in lines[trap]


def test_array_tasks_find_their_own_run_and_name_themselves_like_their_records(tmp_path):
    from launcher.scheduler_requeue import job_label
    from launcher.submit import array_run_prefix

    runs = [tmp_path / f"sw-{k}" for k in range(3)]
    prefix = array_run_prefix(runs)
    assert prefix == str(tmp_path / "sw-")
    assert array_run_prefix([tmp_path / "a", tmp_path / "b"]) is None
    lines = setup_lines(ClusterConfig(), Resources(devices=1, num_nodes=1, num_workers=0, accelerator="cpu"),
                        array_run_prefix=prefix)
    check = next(line for line in lines if "launcher.scheduler_requeue" in line)
    assert check.endswith(f'{prefix}"$SLURM_ARRAY_TASK_ID"; fi') or '"$SLURM_ARRAY_TASK_ID"' in check
    assert any(line.startswith("trap ") and "SLURM_ARRAY_TASK_ID" in line for line in lines)
    assert job_label({"SLURM_JOB_ID": "45", "SLURM_ARRAY_JOB_ID": "43", "SLURM_ARRAY_TASK_ID": "2"}) == "43_2"
    assert job_label({"SLURM_JOB_ID": "45"}) == "45"
