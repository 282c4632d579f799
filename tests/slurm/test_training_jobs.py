"""DDP training of the real (tiny) model through ptycho-launch on the dev cluster.

One module fixture submits three jobs at once (they queue on the 2 simulated nodes):
an uninterrupted 1 node x 2 tasks run, the same run preempted mid-training, and a
2 nodes x 1 task run.  Then each test checks one of them.
"""

from __future__ import annotations

import os
import signal

import pytest
import torch

from slurm_helpers import launch, read, run_dir, wait_job_done, wait_until, weights

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

EPOCHS_LONG = 8  # 32 patterns / 2 ranks / batch 8 = 2 steps per epoch -> 16 steps


@pytest.fixture(scope="module")
def jobs(workdir):
    """Submit ref-1x2, pre-1x2 (to be preempted) and ddp-2x1; return their run ids."""
    specs = {
        "ref-1x2": ["--devices", "2", "--strategy", "ddp", "--set", f"nepochs={EPOCHS_LONG}"],
        "pre-1x2": ["--devices", "2", "--strategy", "ddp", "--set", f"nepochs={EPOCHS_LONG}"],
        "ddp-2x1": ["--nodes", "2", "--devices", "1", "--strategy", "ddp"],
    }
    for run_id, args in specs.items():
        out = launch(workdir, "--run-id", run_id, *args)
        assert out.returncode == 0, out.stderr
        assert "submitted job" in out.stdout  # returns at once: submission does not block
    # preempt pre-1x2 mid-training: USR2 to rank 1 only (the ranks must agree among themselves)
    rd = run_dir(workdir, "pre-1x2")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 3, 180, poll=0.1, what="step 3 of pre-1x2")
    os.kill(read(rd / "ranks" / "rank-1.json")["pid"], signal.SIGUSR2)
    return specs


def _check_completed_ddp(workdir, run_id):
    state = wait_job_done(workdir, run_id)
    rd = run_dir(workdir, run_id)
    launch_rec = read(rd / "launch.json")
    assert state["status"] == "COMPLETED", state
    assert state["world_size"] == 2
    assert state["trained_hash"] == launch_rec["config_hash"]  # the job trained the submitted config
    assert (rd / "model.ptpinn").is_file()
    ranks = {r: read(rd / "ranks" / f"rank-{r}.json") for r in (0, 1)}
    for r, rec in ranks.items():  # both ranks trained, saw world size 2, same steps and hash
        assert rec["status"] == "COMPLETED" and rec["world_size"] == 2, rec
        assert rec["global_step"] == state["global_step"] > 0
        assert rec["config_hash"] == launch_rec["config_hash"]
    return state, ranks


def test_one_node_two_tasks(workdir, jobs):
    state, ranks = _check_completed_ddp(workdir, "ref-1x2")
    assert state["global_step"] == 2 * EPOCHS_LONG
    assert {rec["node"] for rec in ranks.values()} == {ranks[0]["node"]}  # both tasks on one node


def test_two_nodes_one_task_each(workdir, jobs):
    state, ranks = _check_completed_ddp(workdir, "ddp-2x1")
    assert state["global_step"] == 4
    assert {rec["node"] for rec in ranks.values()} == {"node1", "node2"}


def test_preempted_run_resumes_to_same_weights(workdir, jobs):
    """USR2 to rank 1 only: the ranks agree, save one checkpoint, rank 0 requeues, the job resumes."""
    rd = run_dir(workdir, "pre-1x2")
    wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= 1 and read(rd / "state.json").get("status") == "COMPLETED",
               240, poll=0.5, what="pre-1x2 to requeue and complete")
    state = wait_job_done(workdir, "pre-1x2")
    step = state["preempted_at_step"]
    assert 3 <= step < 2 * EPOCHS_LONG
    assert (rd / "checkpoints" / f"preempt-step={step}.ckpt").is_file()
    assert state["attempts"] == 2 and state["requeues"] == 1 and state["global_step"] == 2 * EPOCHS_LONG
    assert read(rd / "ranks" / "rank-0.json")["resumed_from"].endswith(f"preempt-step={step}.ckpt")
    _check_completed_ddp(workdir, "ref-1x2")
    ref = weights(run_dir(workdir, "ref-1x2") / "checkpoints" / "last.ckpt")
    got = weights(rd / "checkpoints" / "last.ckpt")
    assert ref.keys() == got.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=0, atol=0, msg=lambda m, k=key: f"{k}: {m}")


def test_status_and_per_rank_logs(workdir, jobs):
    wait_job_done(workdir, "ddp-2x1")
    out = launch(workdir, "status", "ddp-2x1")
    assert out.returncode == 0 and "COMPLETED" in out.stdout and "world size 2" in out.stdout, out.stdout
    for rank in (0, 1):
        logs = launch(workdir, "logs", "ddp-2x1", "--rank", str(rank))
        assert f"[launcher] rank {rank}/2" in logs.stdout, logs.stdout[-2000:]
    listing = launch(workdir, "list")
    assert "ddp-2x1" in listing.stdout and "ref-1x2" in listing.stdout
