"""Submission: the only module that imports submitit (lazily, inside functions).

- :func:`make_executor` builds a ``submitit.SlurmExecutor`` from :func:`launcher.spec.slurm_parameters`.
- :func:`render_sbatch` is submitit's own rendering of the script it would submit (dry run).
- :func:`submit_run` / :func:`submit_sweep` submit one job, or one job array (``executor.batch()``)
  whose tasks each train their own run directory.  Submission returns at once.
- :func:`run_local` runs the same job code (``python -m launcher.job run``) here, with every
  ``SLURM_*`` variable removed from its environment, logging to ``logs/local_0_log.out``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from launcher.errors import SubmitError
from launcher.job import TrainJob
from launcher.prepare import PreparedRun
from launcher.spec import python_command, python_of, slurm_parameters

DRY_RUN_UID = "DRY-RUN"


def _render_only_executor_class() -> Any:
    """A SlurmExecutor that can be built without ``srun`` on PATH: it only renders scripts.

    submitit refuses to build its executor where ``srun`` is missing (a laptop).  A dry run
    submits nothing, so it uses this subclass; submission always uses the real class.
    """
    import submitit

    class RenderOnlySlurmExecutor(submitit.SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:
            return 1

    return RenderOnlySlurmExecutor


def array_run_prefix(runs: Sequence[Path]) -> str | None:
    """``<runs>/<sweep id>-`` when array task k trains ``<prefix>k`` (sweep members), else None."""
    first = str(runs[0])
    prefix = first[:-1] if first.endswith("-0") else None
    return prefix if prefix and all(str(r) == f"{prefix}{k}" for k, r in enumerate(runs)) else None


def make_executor(prepared: PreparedRun, folder: Path, *, render_only: bool = False, single_run: bool = True,
                  array_runs: Sequence[Path] | None = None) -> Any:
    """A SlurmExecutor with this run's parameters, writing its files (and per-rank logs) to ``folder``.

    ``array_runs``: the run directories of a job array's tasks, in task order (the batch
    script then finds each task's run for the restart check and the after-srun step).
    """
    import submitit

    cls = _render_only_executor_class() if render_only else submitit.SlurmExecutor
    executor = cls(folder=folder, python=python_command(prepared.cluster), max_num_timeout=0)
    run_dir = str(prepared.run.path) if single_run else None  # an array's tasks have different runs
    prefix = array_run_prefix(array_runs) if array_runs else None
    executor.update_parameters(**slurm_parameters(prepared.cluster, prepared.resources, run_dir, prefix,
                                                  prepared.code_path))
    return executor


def render_sbatch(prepared: PreparedRun, array_size: int | None = None) -> str:
    """The exact sbatch script submitit would submit for this run (nothing is submitted).

    Uses submitit 1.5's private ``_make_submission_file_text``, the function its submission calls
    (pyproject.toml pins submitit to 1.5.x for it).
    Needs no SLURM command on PATH.
    """
    executor = make_executor(prepared, prepared.run.logs_dir, render_only=True, single_run=not array_size,
                             array_runs=[prepared.run.path] if array_size else None)
    if array_size:
        executor.update_parameters(map_count=array_size)
    return executor._make_submission_file_text(executor._submitit_command_str, DRY_RUN_UID)


def _submitit_error(exc: Exception) -> SubmitError:
    text = " ".join(str(exc).split())
    detail = text.split("error:", 1)[-1].strip() if "error:" in text else text
    return SubmitError(f"sbatch refused the job: {detail[:300]}", where="sbatch",
                       hint="check partition, time and resources against `sinfo`; `ptycho-launch --dry-run` shows the script")


def submit_run(prepared: PreparedRun) -> str:
    """Submit one run; returns its job id at once (the job runs :class:`~launcher.job.TrainJob`)."""
    executor = make_executor(prepared, prepared.run.logs_dir)
    try:
        job = executor.submit(TrainJob(prepared.run.path))
    except Exception as exc:  # submitit raises FailedJobError/FailedSubmissionError/CalledProcessError
        raise _submitit_error(exc) from None
    prepared.run.add_job_id(str(job.job_id))
    prepared.run.update_state(status="SUBMITTED")
    return str(job.job_id)


def submit_sweep(prepared: Sequence[PreparedRun], log_dir: Path) -> list[str]:
    """Submit several runs as one job array; every task trains its own run directory."""
    first = prepared[0]
    executor = make_executor(first, log_dir, single_run=False, array_runs=[p.run.path for p in prepared])
    try:
        with executor.batch():
            jobs = [executor.submit(TrainJob(p.run.path)) for p in prepared]
    except Exception as exc:
        raise _submitit_error(exc) from None
    ids = []
    for p, job in zip(prepared, jobs):
        p.run.update_launch(log_dir=str(log_dir))
        p.run.add_job_id(str(job.job_id))
        p.run.update_state(status="SUBMITTED")
        ids.append(str(job.job_id))
    return ids


def scrubbed_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any ``SLURM_*``/``SRUN_*`` variable (Lightning then ignores SLURM)."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if not k.startswith(("SLURM_", "SRUN_", "SBATCH_")) and k not in _TORCHRUN_VARIABLES}


# set per local rank by run_local; inherited ones (from a torchrun around ptycho-launch) would confuse the ranks
_TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                       "TORCHELASTIC_RUN_ID")


def local_rank_environments(prepared: PreparedRun, base: dict[str, str], port: int) -> list[dict[str, str]]:
    """The environment of each local rank: torchrun-style RANK/LOCAL_RANK/WORLD_SIZE (Lightning's
    TorchElasticEnvironment then starts no processes of its own), MASTER_ADDR/PORT on this host,
    the thread count of :func:`local_threads_per_rank` (the run file's ``env`` wins), and on GPUs
    one device per rank."""
    from launcher.spec import task_environment

    res = prepared.resources
    threads = str(local_threads_per_rank(base, res.devices, res.num_workers))
    envs = []
    for rank in range(res.devices):
        env = {**base, **task_environment(prepared.cluster, res)}
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if name not in prepared.cluster.env:  # the run file's env wins
                env[name] = threads
        if prepared.code_path:  # the submitted sources first (launcher.snapshot)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (prepared.code_path, base.get("PYTHONPATH")) if p)
        if res.devices > 1:
            env.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "WORLD_SIZE": str(res.devices),
                        "LOCAL_WORLD_SIZE": str(res.devices), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        envs.append(env)
    return envs


def local_threads_per_rank(base: dict[str, str], ranks: int, workers: int) -> int:
    """Intra-op threads of each local rank: this machine's thread budget shared by the ranks.

    The budget is the caller's ``OMP_NUM_THREADS`` when set (``scripts/demo.sh`` gives every
    core to its single rank), else the machine's cores; dataloader workers take their share.
    """
    given = base.get("OMP_NUM_THREADS", "")
    budget = int(given) if given.isdigit() and int(given) > 0 else (os.cpu_count() or 1)
    return max(1, budget // max(1, ranks) - workers)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_local(prepared: PreparedRun, *, echo: bool = True, grace_s: float = 60.0) -> int:
    """Run the job here: one child process per local rank (``--devices``); returns the first non-zero exit code.

    Rank 0's output is echoed and every rank logs to ``logs/local_<rank>_log.{out,err}``.  As
    with ``srun --kill-on-bad-exit``, when one rank fails the others are stopped.
    """
    import threading
    import time

    run = prepared.run
    base = scrubbed_environment()
    run.update_launch(job_ids=[])
    cmd = [*python_of(prepared.cluster), "-u", "-m", "launcher.job", "run", str(run.path)]
    procs, files = [], []
    import socket

    from launcher.runlock import LOCAL_HOLDER_ENV

    base[LOCAL_HOLDER_ENV] = f"local:{socket.gethostname()}:{os.getpid()}"  # one holder for all local ranks
    for rank, env in enumerate(local_rank_environments(prepared, base, _free_port())):
        out = (run.logs_dir / f"local_{rank}_log.out").open("a", encoding="utf-8")
        err = (run.logs_dir / f"local_{rank}_log.err").open("a", encoding="utf-8")
        files += [out, err]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if rank == 0 else out, stderr=err, text=True))

    def pump() -> None:  # rank 0: into its log, and to the terminal
        assert procs[0].stdout is not None
        for line in procs[0].stdout:
            files[0].write(line)
            files[0].flush()
            if echo:
                sys.stdout.write(line)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    failed_at = None
    while any(p.poll() is None for p in procs):
        if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > (0 if len(procs) == 1 else min(grace_s, 5.0)):
            for p in procs:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.1)
    reader.join(timeout=10)
    for f in files:
        f.close()
    codes = [p.returncode for p in procs]
    code = next((c for c in codes if c != 0), 0)
    if code != 0:
        bad = codes.index(code)
        sys.stderr.write((run.logs_dir / f"local_{bad}_log.err").read_text(encoding="utf-8", errors="replace")[-2000:])
    return code
