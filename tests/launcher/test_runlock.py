"""The run-directory lock: one live holder; a requeued job keeps it; an ended holder loses it."""

from __future__ import annotations

import pytest

from launcher.rundir import RunDir
from launcher.runlock import RunLocked, claim, read_holder, release, wait_for_claim


def _alive(states):
    return lambda holder: (states.get(holder) in ("RUNNING", "PENDING"), states.get(holder))


def test_second_live_job_is_refused_and_changes_nothing(tmp_path):
    run = RunDir(tmp_path / "r")
    states = {"slurm:1": "RUNNING"}
    assert claim(run, "slurm:1", alive=_alive(states)) == "slurm:1"
    before = (run.path / "run.lock").read_text()
    with pytest.raises(RunLocked) as info:
        claim(run, "slurm:2", alive=_alive(states))
    assert "slurm:1" in str(info.value) and "RUNNING" in str(info.value)
    assert (run.path / "run.lock").read_text() == before
    with pytest.raises(RunLocked):  # the other ranks of job 2 refuse too
        wait_for_claim(run, "slurm:2", timeout_s=1, alive=_alive(states))


def test_same_job_reclaims_and_ended_holder_is_replaced(tmp_path):
    run = RunDir(tmp_path / "r")
    states = {"slurm:1": "RUNNING"}
    claim(run, "slurm:1", alive=_alive(states))
    claim(run, "slurm:1", alive=_alive(states))  # requeued: same job id
    states["slurm:1"] = "CANCELLED"
    claim(run, "slurm:2", alive=_alive(states))
    assert read_holder(run) == "slurm:2"
    wait_for_claim(run, "slurm:2", timeout_s=1, alive=_alive(states))
    release(run, "slurm:3")  # not the holder: nothing happens
    assert read_holder(run) == "slurm:2"
    release(run, "slurm:2")
    assert read_holder(run) is None


def test_local_holder_alive_while_its_process_runs(tmp_path):
    import os
    import socket

    from launcher.runlock import holder_alive

    assert holder_alive(f"local:{socket.gethostname()}:{os.getpid()}")[0]
    assert not holder_alive(f"local:{socket.gethostname()}:999999999")[0]
