"""After srun: decide whether a failed job is requeued (infrastructure) or left failed (code).

The batch script runs ``python -m launcher.aftercare RUN_DIR RC`` from an ``EXIT`` trap when
srun ended non-zero.  Retried, within the run's ``requeue_budget`` (shared with preemptions),
from the newest valid checkpoint:

- a hung rank (the watchdog recorded ``status: HUNG``);
- a rank that died from SIGKILL (srun's own ``task N: Killed`` line: OOM killer, kill -9).

A node failure is requeued by SLURM itself (:mod:`launcher.scheduler_requeue` counts it).
Not retried: a code error or bad input (a rank raised), a cancel, a time limit (SLURM's
``CANCELLED AT`` line), or a spent budget.  The run record says which and why.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from launcher.rundir import RunDir
from launcher.scheduler_requeue import NODE_FAILURE_RE, batch_log, job_label

_JOB_ENDED_RE = re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT")  # scancel or time limit (a step's own cancel says STEP)
_TASK_RE = re.compile(r"task (\d+): (Killed|Exited with exit code \d+|Terminated|Segmentation fault|Aborted)")


def first_task_failure(text: str) -> tuple[int, str] | None:
    """(rank, reason) of srun's first ``task N: ...`` line."""
    match = _TASK_RE.search(text)
    return (int(match.group(1)), match.group(2)) if match else None


def decide(run: RunDir, batch_log: str) -> tuple[str | None, str]:
    """(retry reason or None, explanation)."""
    state = run.state()
    if NODE_FAILURE_RE.search(batch_log):
        return None, "node failure: SLURM requeues the job itself (counted when it restarts)"
    if _JOB_ENDED_RE.search(batch_log) or state.get("cancel_requested_at"):
        return None, "cancelled or time limit (SLURM ended the job)"
    if state.get("status") == "HUNG":
        return f"hang: {state.get('error')}", "watchdog"
    failure = first_task_failure(batch_log)
    if failure and failure[1] == "Killed":
        return f"rank {failure[0]} was killed by a signal (srun: task {failure[0]}: Killed)", "signal"
    return None, "a rank failed (code error or bad input): not retried"


def aftercare(run_dir: str | Path, rc: int, job_id: str | None = None) -> str:
    """Requeue or record the end; returns what was done (also printed to the batch log)."""
    run = RunDir(Path(run_dir))
    job_id = job_id or job_label()
    reason, why = decide(run, batch_log(run, str(job_id)))
    state = run.state()
    if reason is None:
        return f"srun exit {rc}: {why}"
    used, budget = int(state.get("requeues", 0)), int(run.launch().get("requeue_budget", 0))
    if used >= budget:
        run.update_state(status="FAILED", error=f"{reason}; requeue budget spent ({used}/{budget})")
        return f"srun exit {rc}: {reason}; requeue budget spent ({used}/{budget})"
    run.update_state(status="REQUEUED", requeues=used + 1, requeue_reason=reason, requeued_at=time.time())
    subprocess.run(["scontrol", "requeue", str(job_id)], check=False, timeout=60, capture_output=True)
    return f"srun exit {rc}: {reason}; requeued job {job_id} ({used + 1}/{budget})"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    print(f"[launcher] aftercare: {aftercare(args[0], int(args[1]))}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
