"""One job per run: resume / --run-id reuse of a live run exit 2 and change nothing; the lock
stops a second job that got past the CLI; --force cancels the live job first."""

from __future__ import annotations

import time

import pytest

from slurm_helpers import job_count, launch, read, run_dir, scheduler_state, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def test_live_run_is_not_started_twice(workdir):
    out = launch(workdir, "--run-id", "busy", "--set", "nepochs=500")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "busy")
    first = read(rd / "launch.json")["job_ids"][-1]
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 1, 120, what="busy to train")
    before_state, before_jobs = read(rd / "state.json"), job_count()
    for args in (("resume", "busy"), ("--run-id", "busy", "--set", "nepochs=500")):
        t0 = time.monotonic()
        out = launch(workdir, *args)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
        assert f"job {first} RUNNING" in lines[0] and "--force" in lines[0] and "HINT" in lines[0], lines
        assert time.monotonic() - t0 < 30
    assert job_count() == before_jobs and read(rd / "launch.json")["job_ids"] == [first]
    assert read(rd / "state.json")["attempts"] == before_state["attempts"]

    # a second job that bypasses the CLI (e.g. a racing submit) finds the lock and touches nothing
    from launcher import backend, submit
    from launcher.config import build_cluster_config
    from launcher.prepare import PreparedRun
    from launcher.rundir import RunDir
    from launcher.spec import Resources

    run = RunDir(rd)
    payload = backend.create_training_payload(run.config_file)
    prepared = PreparedRun(run=run, payload=payload, cluster=build_cluster_config(payload.cluster),
                           resources=Resources.from_execution(payload.execution), mode="slurm")
    executor = submit.make_executor(prepared, rd / "logs")
    intruder = str(executor.submit(submit.TrainJob(rd)).job_id)
    wait_until(lambda: scheduler_state(intruder) in ("FAILED", "COMPLETED", "CANCELLED"), 120, what="the intruder to end")
    assert scheduler_state(intruder) == "FAILED" and scheduler_state(first) == "RUNNING"
    state = read(rd / "state.json")
    assert state["attempts"] == before_state["attempts"] and state["job_id"] == first and state["status"] == "RUNNING"
    assert "exits without touching run busy" in (rd / "logs" / f"{intruder}_0_log.err").read_text()

    out = launch(workdir, "resume", "busy", "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    assert scheduler_state(first) == "CANCELLED"
    second = read(rd / "launch.json")["job_ids"][-1]
    assert second not in (first, intruder)
    wait_until(lambda: read(rd / "state.json").get("job_id") == second, 120, what="the forced resume to start")
    assert launch(workdir, "cancel", "busy").returncode == 0
