"""The job side: what every rank runs, on SLURM (through submitit or plain sbatch) or locally.

:func:`run_job` is the single code path.  Per rank it: pins the thread count, installs the
preemption flag, rebuilds the payload from ``config/run.yaml`` and checks its hash against
the submitted one, trains with ``run_training(resume="auto")`` plus the preemption and
progress callbacks and ``SLURMEnvironment(auto_requeue=False)``, records what it did, and
ends with a barrier and ``destroy_process_group``.  On an agreed preemption rank 0 requeues
the job (``scontrol requeue``) while the run's requeue budget lasts.

Entry points: :class:`TrainJob` (the callable submitit pickles) and
``python -m launcher.job run RUN_DIR`` / ``python -m launcher.job prepare CONFIG`` (the
plain-sbatch template).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from launcher import backend
from launcher.errors import PreemptedError, SubmitError
from launcher.rundir import RunDir

REQUEUE_EXIT = 0  # ranks exit cleanly after a requeue; SLURM restarts the job


@dataclass(frozen=True)
class RankInfo:
    """Who this process is, from SLURM's task variables (rank 0 of 1 outside SLURM)."""

    rank: int
    local_rank: int
    world_size: int
    job_id: str | None
    node: str

    @classmethod
    def from_env(cls) -> "RankInfo":
        """Rank, local rank and world size from Lightning's ``SLURMEnvironment`` under srun
        (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``); from torchrun's variables for
        ``ptycho-launch --local --devices N``; rank 0 otherwise."""
        env = os.environ
        if "SLURM_PROCID" in env:
            from lightning.pytorch.plugins.environments import SLURMEnvironment

            slurm = SLURMEnvironment(auto_requeue=False)
            return cls(rank=slurm.global_rank(), local_rank=slurm.local_rank(), world_size=slurm.world_size(),
                       job_id=env.get("SLURM_JOB_ID"), node=env.get("SLURMD_NODENAME", os.uname().nodename))
        if "RANK" in env:  # local ranks started by ptycho-launch --local --devices N
            return cls(rank=int(env["RANK"]), local_rank=int(env.get("LOCAL_RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                       job_id=None, node=os.uname().nodename)
        return cls(rank=0, local_rank=0, world_size=int(env.get("SLURM_NTASKS", 1)), job_id=env.get("SLURM_JOB_ID"),
                   node=env.get("SLURMD_NODENAME", os.uname().nodename))

    @property
    def under_slurm(self) -> bool:
        return self.job_id is not None


def configure_threads() -> int:
    """One intra-op thread count per rank: ``OMP_NUM_THREADS`` (set by the batch script), else 1."""
    import torch

    threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)
    return threads


def finish_distributed() -> None:
    """Barrier, then destroy the process group (else a rank may abort at exit and fail the job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def requeue(run: RunDir, info: RankInfo) -> bool:
    """Rank 0: ``scontrol requeue`` this job if the run's budget allows; records the attempt."""
    state, budget = run.state(), int(run.launch().get("requeue_budget", 0))
    used = int(state.get("requeues", 0))
    if not info.under_slurm or used >= budget or state.get("cancel_requested_at"):
        return False  # a cancel (scancel sends TERM, which may be the preemption signal) is never requeued
    run.update_state(status="REQUEUED", requeues=used + 1, requeue_reason="preemption or time-limit signal")
    out = subprocess.run(["scontrol", "requeue", str(info.job_id)], timeout=60, capture_output=True, text=True)
    if out.returncode != 0:  # refused (e.g. the site forbids requeue): say so instead of REQUEUED forever
        run.update_state(status="PREEMPTED", requeues=used, requeue_reason=None,
                         error=f"scontrol requeue refused: {' '.join(out.stderr.split())[:200]}; `ptycho-launch resume RUN` continues")
        return False
    return True


def _progress_callback(run: RunDir, info: RankInfo, interval_s: float = 0.0) -> Any:
    from lightning.pytorch.callbacks import Callback

    from launcher.rundir import write_json_atomic

    class Progress(Callback):
        """Rank 0 writes progress.json (global step, time) at the first step, then at most every ``interval_s``
        seconds, and at the end of training; no file I/O on the steps in between."""

        def __init__(self) -> None:
            self.first = True
            self.written_at = float("-inf")

        def _write(self, trainer: Any, now: float) -> None:
            write_json_atomic(run.progress_file, {"global_step": int(trainer.global_step), "time": now,
                                                  "epoch": int(trainer.current_epoch)})
            self.written_at = now

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if info.rank != 0:
                return
            now = time.time()
            if self.first:
                run.update_state(first_step_at=now)
                self.first = False
            elif now - self.written_at < interval_s:
                return
            self._write(trainer, now)

        def on_train_end(self, trainer: Any, *args: Any) -> None:
            if info.rank == 0:
                self._write(trainer, time.time())

    return Progress()


def _cluster_of(run: RunDir) -> Any:
    """The run file's cluster section (validated), read without building the training payload."""
    import yaml

    from launcher.config import build_cluster_config
    from ptycho_torch.config.io import RunFileLoader  # YAML 1.2 scalars, as run files are written

    data = yaml.load(run.config_file.read_text(encoding="utf-8"), Loader=RunFileLoader) or {}  # safe: SafeLoader subclass
    return build_cluster_config(data.get("cluster") or {}, where=f"{run.config_file}:cluster")


def run_job(run_dir: str | Path) -> dict[str, Any]:
    """Train the run in ``run_dir`` on this rank; returns rank 0's summary (every rank returns one)."""
    from launcher.preempt import PreemptionCallback, PreemptionFlag, PreemptionStop, preempt_signals
    from launcher.runlock import LOCKED_EXIT, RunLocked, claim, wait_for_claim

    run, info = RunDir(Path(run_dir)), RankInfo.from_env()
    try:  # one job per run: a job that finds the run held by another live job touches nothing
        claim(run) if info.rank == 0 else wait_for_claim(run)
    except RunLocked as held:
        print(f"[launcher] rank {info.rank}: {held}; job {info.job_id} exits without touching run {run.run_id}",
              file=sys.stderr, flush=True)
        raise SystemExit(LOCKED_EXIT) from None
    cluster_section = _cluster_of(run)
    flag = PreemptionFlag().install(preempt_signals(cluster_section.preempt_signal))
    threads = configure_threads()
    print(f"[launcher] rank {info.rank}/{info.world_size} on {info.node} job {info.job_id} threads {threads} "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')} code {Path(__file__).resolve().parent.parent}", flush=True)
    submitted = run.launch().get("config_hash")
    if info.rank == 0:
        state = run.state()
        run.update_state(status="RUNNING", attempts=int(state.get("attempts", 0)) + 1, job_id=info.job_id,
                         started_at=time.time(), world_size=info.world_size, error=None, cancel_requested_at=None)
    run.write_rank_record(info.rank, status="RUNNING", world_size=info.world_size, node=info.node, job_id=info.job_id,
                          pid=os.getpid(), error=None)
    try:
        from launcher.snapshot import verify_snapshot

        verify_snapshot(run.launch().get("code_snapshot"))  # the submitted code, or a recorded refusal
        payload = backend.create_training_payload(run.config_file)
        if payload.config_hash != submitted:
            raise SubmitError("the job's config hash differs from the submitted one", where=str(run.config_file),
                              expected=str(submitted), found=payload.config_hash, hint="do not edit config/run.yaml of a launched run")
        from launcher.config import build_cluster_config
        from launcher.heartbeat import Heartbeat, process_group_timeout_s

        cluster = build_cluster_config(payload.cluster, where=f"{run.config_file}:cluster")
        overrides = {}
        if payload.plan.trainer.get("strategy") == "ddp" and info.world_size > 1:
            from datetime import timedelta

            from lightning.pytorch.strategies import DDPStrategy

            overrides["strategy"] = DDPStrategy(timeout=timedelta(seconds=process_group_timeout_s(cluster.hang_timeout_s)))
        plugins = []
        if info.under_slurm:
            from lightning.pytorch.plugins.environments import SLURMEnvironment

            plugins.append(SLURMEnvironment(auto_requeue=False))
        preempt = PreemptionCallback(flag, run.checkpoints_dir, cluster.preempt_check_every_n_steps)
        from launcher.faults import fault_callbacks

        heartbeat = Heartbeat(run, info.rank, info.world_size, cluster.hang_timeout_s)
        attempt = int(run.state().get("attempts", 1))
        callbacks = [preempt, heartbeat, _progress_callback(run, info, cluster.progress_interval_s), *fault_callbacks(info.rank, attempt), heartbeat.late()]
        result = backend.run_training(payload, extra_callbacks=callbacks, plugins=plugins, resume="auto",
                                      trainer_overrides=overrides)
    except PreemptionStop as stop:
        run.write_rank_record(info.rank, status="PREEMPTED", global_step=stop.global_step)
        finish_distributed()
        if info.rank != 0:  # rank 0 alone decides on the requeue; the others end quietly
            print(f"[launcher] rank {info.rank}: preempted at step {stop.global_step}", flush=True)
            raise SystemExit(REQUEUE_EXIT) from None
        if info.rank == 0:
            run.update_state(preempted_at_step=stop.global_step, preempt_checkpoint=str(stop.checkpoint))
            if requeue(run, info):
                print(f"[launcher] preempted at step {stop.global_step}; requeued job {info.job_id}", flush=True)
                raise SystemExit(REQUEUE_EXIT) from None
            run.update_state(status="PREEMPTED")
        raise PreemptedError(f"stopped at step {stop.global_step}, checkpoint {stop.checkpoint.name}",
                             where=f"run {run.run_id}", hint="requeue budget spent or not under SLURM: "
                             "`ptycho-launch resume RUN` continues from the checkpoint") from None
    except BaseException as err:
        line = err.one_line() if hasattr(err, "one_line") else f"{type(err).__name__}: {' '.join(str(err).split())}"
        run.write_rank_record(info.rank, status="FAILED", error=line, failed_at=time.time(),
                              traceback=traceback.format_exc()[-4000:])
        # the first failing rank names the cause; a restart SLURM already queued (node failure) keeps its word
        if run.state().get("status") not in ("FAILED", "NODE_FAIL", "REQUEUED"):
            run.update_state(status="FAILED", error=f"rank {info.rank}: {line}")
        raise
    summary = {"rank": info.rank, "world_size": int(result.world_size), "global_step": int(result.global_step),
               "config_hash": result.config_hash, "submitted_hash": submitted, "bundle": str(result.bundle_path),
               "completed": bool(result.completed), "resumed_from": str(result.resumed_from) if result.resumed_from else None}
    run.write_rank_record(info.rank, status="COMPLETED", **{k: v for k, v in summary.items() if k != "rank"})
    finish_distributed()
    if info.rank == 0:
        run.update_state(status="COMPLETED", finished_at=time.time(), trained_hash=result.config_hash,
                         global_step=summary["global_step"], bundle=summary["bundle"], world_size=summary["world_size"])
        from launcher.runlock import release

        release(run)
    return summary


class TrainJob:
    """The callable that submitit pickles: it carries only the run directory (stable across requeues)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = str(run_dir)

    def __call__(self) -> dict[str, Any]:
        return run_job(self.run_dir)

    def __repr__(self) -> str:
        return f"TrainJob({self.run_dir!r})"


def _prepare_main(args: argparse.Namespace) -> int:
    """Plain sbatch: resolve the config for this allocation and print the run directory."""
    from launcher.prepare import LaunchRequest, resolve_run, write_run

    env = os.environ
    tasks = int(str(env.get("SLURM_NTASKS_PER_NODE", "1")).split("(")[0].split(",")[0])
    nodes = int(env.get("SLURM_NNODES", "1"))
    job = env.get("SLURM_ARRAY_JOB_ID") and f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID')}" or env.get("SLURM_JOB_ID", "local")
    run_id = args.run_id or f"{Path(args.config).stem}-j{job}"
    request = LaunchRequest(config_path=Path(args.config), execution_flags={"devices": tasks, "num_nodes": nodes},
                            runs_dir=Path(args.runs_dir), run_id=run_id, command=tuple(sys.argv))
    prepared = resolve_run(request, mode="sbatch")
    from launcher.allocation import describe, shell_assignments
    from launcher.spec import task_environment

    job_id = env.get("SLURM_JOB_ID")
    shell = shell_assignments(prepared.cluster, task_environment(prepared.cluster, prepared.resources),
                              str(prepared.run.path), job_id) if args.shell else None  # refuses before writing
    run = write_run(prepared, ["sbatch", *sys.argv[1:]])
    if job_id:
        run.add_job_id(job)
        run.update_launch(allocation=describe(prepared.cluster))
    print(shell if args.shell else run.path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from launcher.rundir import default_runs_dir
    from ptycho_torch.cli.common import run_cli

    parser = argparse.ArgumentParser(prog="python -m launcher.job", description="Job-side entry points of ptycho-launch.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="train the run in RUN_DIR on this rank (under srun)")
    p_run.add_argument("run_dir")
    p_prep = sub.add_parser("prepare", help="create the run directory for CONFIG in this allocation; print its path")
    p_prep.add_argument("config")
    p_prep.add_argument("--run-id", default=None)
    p_prep.add_argument("--runs-dir", default=str(default_runs_dir()))
    p_prep.add_argument("--shell", action="store_true", help="print shell assignments (RUN_DIR, exports, PREEMPT_SIGNAL/DELAY) "
                        "after fitting the allocation's time limit to the run file")

    def _main(a: Sequence[str] | None) -> int:
        args = parser.parse_args(a)
        if args.cmd == "prepare":
            return _prepare_main(args)
        run_job(args.run_dir)
        return 0

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
