"""Requeues that SLURM makes on its own (a node failed): counted in the budget, and said.

When a node of a running job stops answering for ``SlurmdTimeout``, SLURM marks it DOWN and,
as ptycho-launch submits with ``--requeue``, puts the job back in the queue by itself: the job
keeps its id, its ``Restarts`` count grows, and the batch step's log gets ``*** JOB N ON
<node> CANCELLED AT <time> DUE TO NODE FAILURE ... ***``.  The job then starts again on
healthy nodes (or when the node returns) and resumes from its newest valid checkpoint like
any requeue.  The launcher did not ask for this restart, so nothing had counted it:

- :func:`note_scheduler_requeue` records it once per restart (keyed on the job id and
  SLURM's restart count): ``status: NODE_FAIL`` while the job waits to start again (or
  ``REQUEUED`` when the log does not say node failure, e.g. an admin's ``scontrol requeue``),
  ``requeues`` + 1 within the run's ``requeue_budget``, ``requeue_reason`` and
  ``requeued_at``.  ``status``, ``list`` and ``logs`` call it (through
  :func:`launcher.registry.reconcile`) when the scheduler shows the job queued again; the
  batch script calls it before srun on every restart (``python -m launcher.scheduler_requeue
  RUN_DIR``), so the restart is counted even when nobody looked.
- With the budget spent the restart is refused: that batch-script call exits 1 before srun
  starts any rank, and the record says FAILED, node failure, budget spent.

A restart that the launcher asked for (preemption, hang, killed rank) was counted when it
asked: the record then says ``REQUEUED`` and this module only notes that it saw the restart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from launcher.rundir import RunDir

NODE_FAILURE_RE = re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+ DUE TO NODE FAILURE")
REFUSED_EXIT = 1


def _job_stderr(job_id: str) -> Path | None:
    """The job's own stderr file (``StdErr=`` of ``scontrol show job``), while SLURM knows the job."""
    try:
        out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\bStdErr=(\S+)", out.stdout)
    return Path(match.group(1)) if out.returncode == 0 and match else None


def batch_log(run: RunDir, job_id: str) -> str:
    """The tail of the job's batch log: where srun and slurmstepd write their own lines.

    Under ptycho-launch (submitit) that is rank 0's ``<job>_0_log.err`` in the run's log folder.
    A plain-sbatch run (``slurm/train.sbatch``, mode ``sbatch``) has them in the job's
    ``--output`` file instead, which is read too.
    """
    paths = [Path(run.launch().get("log_dir") or run.logs_dir) / f"{job_id}_0_log.err"]
    job_stderr = _job_stderr(job_id) if run.launch().get("mode") == "sbatch" else None
    if job_stderr is not None:
        paths.append(job_stderr)
    texts = []
    for path in dict.fromkeys(p.resolve() for p in paths if p is not None):
        try:
            texts.append(path.read_text(encoding="utf-8", errors="replace")[-200_000:])
        except OSError:
            pass
    return "\n".join(texts)


def requeue_cause(log_text: str, restarts: int) -> tuple[str, str]:
    """(record status while the job waits, reason) of a restart the launcher did not ask for."""
    if NODE_FAILURE_RE.search(log_text):
        return "NODE_FAIL", f"node failure: SLURM requeued the job itself (restart {restarts})"
    return "REQUEUED", f"the scheduler requeued the job (restart {restarts}; not asked by ptycho-launch)"


def note_scheduler_requeue(run: RunDir, job_id: str, restarts: int, log_text: str | None = None) -> dict[str, Any]:
    """Record restart ``restarts`` of ``job_id`` once; returns the state (``requeue_refused`` set if over budget)."""
    state = run.state()
    seen = dict(state.get("scheduler_restarts") or {})
    if restarts <= int(seen.get(str(job_id), 0)):
        return state
    seen[str(job_id)] = restarts
    if state.get("status") == "REQUEUED":  # the launcher asked for this restart and counted it then
        return run.update_state(scheduler_restarts=seen)
    status, reason = requeue_cause(batch_log(run, str(job_id)) if log_text is None else log_text, restarts)
    used, budget = int(state.get("requeues", 0)), int(run.launch().get("requeue_budget", 0))
    if used >= budget:
        return run.update_state(status="FAILED", scheduler_restarts=seen, requeue_refused=f"{job_id}:{restarts}",
                                error=f"{reason}; requeue budget spent ({used}/{budget}): the restart is refused; "
                                      "`ptycho-launch resume RUN` continues from the newest checkpoint")
    return run.update_state(status=status, scheduler_restarts=seen, requeues=used + 1, requeue_reason=reason,
                            requeued_at=time.time(), error=None)


def on_restart(run_dir: str | Path, job_id: str, restarts: int) -> tuple[bool, str]:
    """Batch script, before srun on a restart: (go on, message)."""
    run = RunDir(Path(run_dir))
    state = note_scheduler_requeue(run, job_id, restarts)
    if state.get("requeue_refused") == f"{job_id}:{restarts}" and state.get("status") == "FAILED":
        return False, f"restart {restarts} of job {job_id} refused: {state.get('error')}"
    return True, f"restart {restarts} of job {job_id}: {state.get('requeue_reason') or 'continuing'}"


def job_label(env: dict[str, str] | None = None) -> str:
    """This job as its records and log files name it: ``<array job>_<task>`` for an array task, else its id."""
    env = dict(os.environ if env is None else env)
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID", "")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    job_id = job_label()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if not args or not job_id or restarts <= 0:
        return 0
    go_on, message = on_restart(args[0], job_id, restarts)
    print(f"[launcher] {message}", file=sys.stderr, flush=True)
    return 0 if go_on else REFUSED_EXIT


if __name__ == "__main__":
    sys.exit(main())
