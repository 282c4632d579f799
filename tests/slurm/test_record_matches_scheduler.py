"""After a time limit and a cancel, status and list agree with the scheduler; lifecycle messages are true."""

from __future__ import annotations

import time

import pytest

from slurm_helpers import launch, read, run_dir, scheduler_state, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _job(workdir, run_id):
    return read(run_dir(workdir, run_id) / "launch.json")["job_ids"][-1]


def _listed_status(workdir, run_id):
    line = next(row for row in launch(workdir, "list").stdout.splitlines() if row.startswith(run_id + " "))
    return line.split()[2:4]  # scheduler, status


def test_time_limit_and_cancel_reach_the_record(workdir):
    # rank 0 stops advancing (no watchdog within the limit): SLURM ends the job at its 2-minute limit.
    # The warning signal comes 30 s before; with a 1-minute limit it could arrive while the job was
    # still importing (two jobs starting at once on 2 cores), before any handler was installed.
    out = launch(workdir, "--run-id", "tl", "--time", "2", "--signal-lead-s", "30", "--set", "nepochs=50",
                 "--env", "PTYCHO_LAUNCH_FAULT=hang@rank=0,step=2", "--hang-timeout-s", "600")
    assert out.returncode == 0, out.stderr
    out = launch(workdir, "--run-id", "cx", "--set", "nepochs=500")
    assert out.returncode == 0, out.stderr
    job = _job(workdir, "cx")
    wait_until(lambda: read(run_dir(workdir, "cx") / "progress.json").get("global_step", 0) >= 1, 120, what="cx to train")
    assert launch(workdir, "cancel", "cx").returncode == 0
    wait_until(lambda: scheduler_state(job) == "CANCELLED", 60, what="CANCELLED")
    t0 = time.monotonic()
    status = launch(workdir, "status", "cx").stdout
    assert "training   CANCELLED" in status and "SIGTERM" not in status, status
    print(f"\ncancel -> CANCELLED in status: {time.monotonic() - t0:.1f} s after the scheduler ended it")
    again = launch(workdir, "cancel", "cx")
    assert again.returncode == 0 and "already ended (CANCELLED); nothing to cancel" in again.stdout, again.stdout
    assert _listed_status(workdir, "cx") == ["CANCELLED", "CANCELLED"]

    tl = _job(workdir, "tl")
    wait_until(lambda: scheduler_state(tl) == "TIMEOUT", 240, poll=1, what="TIMEOUT")
    ended = time.monotonic()
    assert _listed_status(workdir, "tl") == ["TIMEOUT", "TIMEOUT"]
    status = launch(workdir, "status", "tl").stdout
    assert "training   TIMEOUT" in status, status
    print(f"time limit -> TIMEOUT in list/status: {time.monotonic() - ended:.1f} s after the scheduler ended it")
    assert all(r.get("status") != "RUNNING" for r in [read(p) for p in (run_dir(workdir, "tl") / "ranks").glob("rank-*.json")])

    logs = launch(workdir, "logs", "tl", "--rank", "7")
    assert logs.returncode == 2 and "--rank" in logs.stderr and "world size 1" in logs.stderr, logs.stderr
