"""Watchdog culprit choice, the timeout rule, fault parsing, and the after-srun retry decision."""

from __future__ import annotations

import pytest

from launcher.aftercare import decide, first_task_failure
from launcher.faults import parse_fault
from launcher.heartbeat import HANG_FLOOR_S, derived_timeout_s, find_culprit, process_group_timeout_s
from launcher.rundir import RunDir


def _beat(ticks, changed, written, waiting=False, step=4):
    return {"ticks": ticks, "changed_at": changed, "written_at": written, "waiting": waiting, "step": step}


def test_the_rank_not_waiting_in_a_collective_is_the_culprit():
    now = 1000.0
    beats = {0: _beat(15, now - 30, now - 1, waiting=True), 1: _beat(14, now - 30, now - 1)}
    assert find_culprit(beats, 2, timeout=20, now=now)["rank"] == 1
    beats = {0: _beat(14, now - 30, now - 1), 1: _beat(15, now - 30, now - 1, waiting=True)}
    assert find_culprit(beats, 2, timeout=20, now=now)["rank"] == 0


def test_no_culprit_while_all_advance_or_before_every_rank_started():
    now = 1000.0
    assert find_culprit({0: _beat(30, now - 1, now), 1: _beat(30, now - 2, now)}, 2, 20, now) is None
    assert find_culprit({0: _beat(30, now - 99, now)}, 2, 20, now) is None  # rank 1 has no heartbeat yet
    frozen = {0: _beat(30, now - 1, now), 1: _beat(30, now - 1, now - 50)}  # rank 1's process stopped writing
    assert find_culprit(frozen, 2, 20, now)["rank"] == 1


def test_timeout_rule():
    assert derived_timeout_s([0.1] * 10, 42) == 42
    assert derived_timeout_s([0.1, 0.1], None) is None
    assert derived_timeout_s([0.1] * 10, None) == HANG_FLOOR_S
    assert derived_timeout_s([30.0] * 10, None) == 600.0
    assert process_group_timeout_s(42) > 42


@pytest.mark.parametrize("text,expected", [("hang@rank=1,step=5", {"kind": "hang", "rank": 1, "step": 5}),
                                           ("crash@rank=0,step=2", {"kind": "crash", "rank": 0, "step": 2}), ("", None)])
def test_parse_fault(text, expected):
    assert parse_fault(text) == expected


def test_unknown_fault_is_refused():
    with pytest.raises(ValueError, match="hang@rank=R,step=S"):
        parse_fault("stall@rank=1")


SIGKILL_LOG = ("RuntimeError: Connection closed by peer\nsrun: error: node1: task 1: Killed\n"
               "slurmstepd-node1: error: *** STEP 19.0 ON node1 CANCELLED AT 2026-12-01T20:08:24 ***\nsrun: error: node1: task 0: Terminated\n")


def test_retry_decision(tmp_path):
    run = RunDir(tmp_path)
    assert first_task_failure(SIGKILL_LOG) == (1, "Killed")
    assert decide(run, SIGKILL_LOG)[0].startswith("rank 1 was killed by a signal")
    assert decide(run, "srun: error: node1: task 1: Exited with exit code 1\n")[0] is None  # code error
    assert decide(run, "*** JOB 7 ON node1 CANCELLED AT 2026 DUE TO TIME LIMIT ***\ntask 0: Killed")[0] is None
    run.update_state(status="HUNG", error="rank 1 hung")
    assert decide(run, "task 0: Exited with exit code 4")[0] == "hang: rank 1 hung"
