"""Runs on disk and their jobs in the scheduler: status, logs, cancel, list.

A run's scheduler state comes from the real scheduler: ``squeue`` for queued and running
jobs, then ``scontrol show job`` (jobs that ended within MinJobAge), then ``sacct``.  The
run's own record (state.json, written by the job) says what training did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, TextIO

from launcher.errors import RunNotFoundError, SubmitError
from launcher.rundir import RunDir, read_json

TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                   "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}
_TIMEOUT_S = 30


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def scheduler_state(job_id: str) -> str | None:
    """SLURM's state of a job (``RUNNING``, ``PENDING``, ``COMPLETED``...), or None if unknown."""
    text = _run(["squeue", "-h", "-j", job_id, "-o", "%T"])
    if text and text.strip():
        return text.split()[0]
    text = _run(["scontrol", "-o", "show", "job", job_id])
    if text:
        for line in text.splitlines():
            fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            label = (f"{fields.get('ArrayJobId')}_{fields.get('ArrayTaskId')}" if fields.get("ArrayTaskId") else fields.get("JobId"))
            if label == job_id or fields.get("JobId") == job_id:
                return fields.get("JobState")
    text = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", job_id])
    if text:
        for line in text.splitlines():
            jid, _, state = line.partition("|")
            if jid == job_id and state:
                return state.split()[0]
    return None


def scheduler_restarts(job_id: str) -> int:
    """How many times SLURM restarted the job (``Restarts=`` of ``scontrol show job``; 0 if unknown)."""
    text = _run(["scontrol", "-o", "show", "job", job_id]) or ""
    for tok in text.split():
        if tok.startswith("Restarts="):
            return int(tok.split("=", 1)[1] or 0)
    return 0


def active_jobs(run: RunDir) -> list[tuple[str, str]]:
    """(job id, state) of every job of the run that the scheduler still has pending or running."""
    out = []
    for job_id in run.launch().get("job_ids") or []:
        state = scheduler_state(str(job_id))
        if state is not None and state not in TERMINAL_STATES:
            out.append((str(job_id), state))
    return out


def refuse_if_active(run: RunDir, *, force: bool, action: str) -> None:
    """Exit-2 error while a job of ``run`` is pending/running; with ``force`` cancel it and wait until it ended."""
    from launcher.errors import PreflightError

    active = active_jobs(run)
    if not active:
        return
    names = ", ".join(f"job {j} {s}" for j, s in active)
    if not force:
        raise PreflightError(f"run {run.run_id} already has a live job; {action} would train a second job into the same run directory",
                             where=f"run {run.run_id}", found=names,
                             hint=f"wait for it (`ptycho-launch status {run.run_id}`), `ptycho-launch cancel {run.run_id}`, or pass --force to cancel it first")
    for job_id, _ in active:
        subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=_TIMEOUT_S)
    end = time.monotonic() + 120
    while active_jobs(run):
        if time.monotonic() > end:
            raise SubmitError("the run's job did not end after scancel", where=f"run {run.run_id}", found=names,
                              hint="check `squeue`; try again when it has left the queue")
        time.sleep(0.5)
    run.update_state(status="CANCELLED", cancelled_by="--force")


LIVE_STATUSES = {"PREPARED", "SUBMITTED", "RUNNING", "REQUEUED", "HUNG", "NODE_FAIL"}


def reconcile(run: RunDir, sched: str | None, restarts: int | None = None) -> dict[str, Any]:
    """Make the run record agree with the scheduler once its job has ended; returns the state.

    The job writes its own record, but a job that is cancelled, hits its time limit, loses a
    node, or has a rank killed cannot always say so.  When the scheduler says the newest job
    ended and the record still says it lives (or says FAILED for a job the user cancelled),
    the record takes the scheduler's word, names the rank srun saw die first, and notes
    ``reconciled_at``.  Called by status, list and logs.

    A job that the scheduler queued again by itself (a node failed: SLURM requeues a
    ``--requeue`` job on its own) is noted as such while it waits -- ``NODE_FAIL``, one more
    requeue within the budget -- instead of RUNNING (:mod:`launcher.scheduler_requeue`);
    ``restarts`` is SLURM's restart count of the job (asked from ``scontrol`` when None).
    """
    state = run.state()
    if sched is not None and sched not in TERMINAL_STATES and sched != "RUNNING" and run.job_id:
        restarts = scheduler_restarts(str(run.job_id)) if restarts is None else restarts
        if restarts > 0:
            from launcher.scheduler_requeue import note_scheduler_requeue

            return note_scheduler_requeue(run, str(run.job_id), restarts)
    if sched is None or sched not in TERMINAL_STATES:
        return state
    status = state.get("status")
    cancelled = sched == "CANCELLED" or (state.get("cancel_requested_at") and status == "FAILED")
    if status not in LIVE_STATUSES and not (cancelled and status == "FAILED"):
        return state
    fields: dict[str, Any] = {"reconciled_at": time.time(), "scheduler_state": sched}
    if cancelled:
        fields.update(status="CANCELLED", error="cancelled (scancel)")
    elif sched in ("TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "DEADLINE", "BOOT_FAIL", "PREEMPTED"):
        fields.update(status=sched, error=f"the scheduler ended the job: {sched}")
    elif status == "REQUEUED":
        fields.update(status="PREEMPTED", error="a requeue was recorded but the job did not restart; "
                      "`ptycho-launch resume RUN` continues from the newest checkpoint")
    elif sched == "COMPLETED" and status != "COMPLETED":
        fields.update(status="FAILED", error=state.get("error") or "the job ended without finishing training")
    else:
        fields.update(status="FAILED")
    from launcher.aftercare import first_task_failure
    from launcher.scheduler_requeue import batch_log

    died = first_task_failure(batch_log(run, str(run.job_id)))
    if died and not cancelled and (died[1] == "Killed" or not state.get("error")):
        rank, how = died
        fields["error"] = (f"rank {rank} was killed by a signal (srun: task {rank}: Killed)" if how == "Killed"
                           else f"rank {rank}: {how} (srun)")
        run.write_rank_record(rank, status="KILLED" if how == "Killed" else "FAILED", error=fields["error"])
    for rank, record in run.rank_records().items():  # no rank stays RUNNING after its job ended
        if record.get("status") == "RUNNING":
            run.write_rank_record(rank, status="ENDED", ended_by=sched)
    return run.update_state(**fields)


def run_status(run: RunDir) -> dict[str, Any]:
    """One run's status: scheduler state, training state, step, attempts, error, bundle (reconciled)."""
    launch = run.launch()
    job_id = run.job_id
    sched = scheduler_state(job_id) if job_id and launch.get("mode") != "local" else None
    state = reconcile(run, sched)
    progress = read_json(run.progress_file, {}) or {}
    failed = sorted((rec.get("failed_at", 0), r, rec["error"]) for r, rec in run.rank_records().items()
                    if rec.get("error") and rec.get("status") == "FAILED")
    first_error = f"rank {failed[0][1]}: {failed[0][2]}" if failed and not state.get("reconciled_at") and \
        state.get("status") not in ("HUNG", "CANCELLED", "NODE_FAIL", "REQUEUED") else None
    return {
        "run_id": run.run_id,
        "path": str(run.path),
        "mode": launch.get("mode"),
        "job_id": job_id,
        "scheduler": sched,
        "status": state.get("status", "UNKNOWN"),
        "attempts": state.get("attempts", 0),
        "requeues": state.get("requeues", 0),
        "requeue_reason": state.get("requeue_reason"),
        "global_step": progress.get("global_step", state.get("global_step")),
        "world_size": state.get("world_size", launch.get("world_size")),
        "config_hash": launch.get("config_hash"),
        "trained_hash": state.get("trained_hash"),
        "bundle": str(run.bundle) if run.bundle.is_file() else None,
        "error": first_error or state.get("error"),
    }


def format_status(info: dict[str, Any]) -> str:
    """A short human-readable block for one run."""
    lines = [f"run        {info['run_id']}  ({info['path']})",
             f"job        {info['job_id'] or '-'}  scheduler {info['scheduler'] or '-'}  mode {info['mode']}",
             f"training   {info['status']}  step {info['global_step'] if info['global_step'] is not None else '-'}"
             f"  world size {info['world_size']}  attempts {info['attempts']}  requeues {info['requeues']}",
             f"config     {str(info['config_hash'])[:16]}  trained {str(info['trained_hash'] or '-')[:16]}",
             f"bundle     {info['bundle'] or '-'}"]
    if info.get("requeue_reason") and info.get("requeues"):
        lines.append(f"requeued   {info['requeue_reason']}")
    if info.get("error"):
        lines.append(f"error      {info['error']}")
    return "\n".join(lines)


def log_files(run: RunDir, rank: int | None = None, job_id: str | None = None) -> list[Path]:
    """Per-rank log files of the run's newest job (``<job>_<rank>_log.out/.err``), by rank."""
    folder = Path(run.launch().get("log_dir") or run.logs_dir)
    job_id = job_id or run.job_id
    if job_id is None:
        pattern = "local_*_log.*"
    else:
        pattern = f"{job_id}_{rank if rank is not None else '*'}_log.*"
    files = sorted(folder.glob(pattern))
    if rank is not None and job_id is None:
        files = [f for f in files if f.name.startswith(f"local_{rank}_")]
    return files


def print_logs(paths: Iterable[Path], out: TextIO = sys.stdout, follow: bool = False,
               stop_when: Any = None, poll_s: float = 0.5) -> None:
    """Print each file with a header; with ``follow`` keep printing new lines until ``stop_when()``."""
    paths = list(paths)
    offsets = {p: 0 for p in paths}
    while True:
        for path in paths:
            try:
                with path.open("r", encoding="utf-8", errors="replace") as handle:
                    handle.seek(offsets[path])
                    chunk = handle.read()
                    offsets[path] = handle.tell()
            except FileNotFoundError:
                continue
            if chunk:
                out.write(f"==> {path.name} <==\n" if not follow else "")
                prefix = f"[{path.name}] " if follow else ""
                for line in chunk.splitlines():
                    out.write(f"{prefix}{line}\n")
                out.flush()
        if not follow or (stop_when is not None and stop_when()):
            return
        time.sleep(poll_s)


def cancel(run: RunDir) -> str:
    """``scancel`` the run's newest job; returns its id."""
    job_id = run.job_id
    if job_id is None:
        raise RunNotFoundError("run has no scheduler job to cancel", where=run.run_id, found=f"mode {run.launch().get('mode')}",
                               hint="only SLURM runs can be cancelled")
    if shutil.which("scancel") is None:
        raise SubmitError("scancel not found", where="PATH", hint="run this on a host with the SLURM client tools")
    run.update_state(cancel_requested_at=time.time())  # first: a TERM-preempted job must see it and not requeue
    out = subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=_TIMEOUT_S)
    if out.returncode != 0:
        run.update_state(cancel_requested_at=None)
        raise SubmitError(f"scancel failed: {' '.join(out.stderr.split())}", where=f"job {job_id}")
    return job_id


def wait_for(run: RunDir, timeout_s: float | None = None, poll_s: float = 1.0) -> dict[str, Any]:
    """Block until the run's job has ended (requeues included); returns the final status."""
    start = time.monotonic()
    while True:
        info = run_status(run)
        sched = info["scheduler"]
        if sched in TERMINAL_STATES:
            return info
        if sched is None and info["status"] in ("COMPLETED", "FAILED", "PREEMPTED"):
            return info  # local run, or a job the scheduler has forgotten
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            return info
        time.sleep(poll_s)
