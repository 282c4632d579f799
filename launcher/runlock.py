"""One job per run directory: a lock that names its holder, checked with the scheduler.

``<run>/run.lock`` holds ``{"holder": "slurm:<job id>" | "local:<host>:<pid>", ...}``.
Rank 0 of a starting job *claims* the run: under an exclusive ``flock`` of
``<run>/.run.lock.guard`` (so two claimers cannot interleave) it reads the holder and
takes the lock when there is none, when it already holds it (a requeued job keeps its id),
or when the holder has ended (the scheduler no longer runs it; a local process is gone).
Other ranks wait until the lock names their own job.  A job that finds the run held by
another live job exits with :data:`LOCKED_EXIT` before it writes anything into the run.

Why not only ``flock`` across the job's life: the ranks of one job run on several nodes
and must all count as the holder, and a holder that died without unlocking (node failure)
must not keep the run locked forever; the scheduler is the authority on which job lives.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from launcher.rundir import RunDir, read_json, write_json_atomic

LOCK_NAME = "run.lock"
LOCKED_EXIT = 3
LOCAL_HOLDER_ENV = "PTYCHO_LAUNCH_HOLDER"
ENDED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}


class RunLocked(Exception):
    """The run directory is held by another live job."""

    def __init__(self, holder: str, state: str | None) -> None:
        self.holder, self.state = holder, state
        super().__init__(f"run directory is held by {holder} ({state or 'alive'})")


def my_holder(env: dict[str, str] | None = None) -> str:
    """This process's holder name: its SLURM job id, else host and pid."""
    env = dict(os.environ if env is None else env)
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    if env.get(LOCAL_HOLDER_ENV):  # the ranks of one `ptycho-launch --local --devices N`: its process holds the run
        return env[LOCAL_HOLDER_ENV]
    return f"local:{socket.gethostname()}:{os.getpid()}"


def _slurm_state(job_id: str) -> str | None:
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout.strip() else None


def holder_alive(holder: str) -> tuple[bool, str | None]:
    """(alive, state) of a holder: a SLURM job not yet ended, or a local process still running."""
    kind, _, rest = holder.partition(":")
    if kind == "slurm":
        state = _slurm_state(rest)
        return (state is not None and state not in ENDED_STATES), state
    if kind == "local":
        host, _, pid = rest.rpartition(":")
        if host != socket.gethostname():
            return True, "on another host"  # cannot tell: assume alive
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, ValueError):
            return False, None
        except PermissionError:
            pass
        return True, "running"
    return False, None


@contextmanager
def _guard(run: RunDir) -> Iterator[None]:
    run.path.mkdir(parents=True, exist_ok=True)
    with open(run.path / f".{LOCK_NAME}.guard", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_holder(run: RunDir) -> str | None:
    """The current holder named in ``run.lock`` (None when unlocked)."""
    return (read_json(run.path / LOCK_NAME, {}) or {}).get("holder")


def claim(run: RunDir, holder: str | None = None, alive: Callable[[str], tuple[bool, str | None]] = holder_alive) -> str:
    """Take the run for ``holder`` (default: this job); raises :class:`RunLocked` if a live other holds it."""
    holder = holder or my_holder()
    with _guard(run):
        current = read_holder(run)
        if current and current != holder:
            is_alive, state = alive(current)
            if is_alive:
                raise RunLocked(current, state)
        write_json_atomic(run.path / LOCK_NAME, {"holder": holder, "claimed_at": time.time(), "previous": current})
    return holder


def wait_for_claim(run: RunDir, holder: str | None = None, timeout_s: float = 300.0,
                   alive: Callable[[str], tuple[bool, str | None]] = holder_alive) -> None:
    """Non-zero ranks: wait until rank 0 of this job holds the run; raise if a live other job does."""
    holder = holder or my_holder()
    end = time.monotonic() + timeout_s
    while True:
        current = read_holder(run)
        if current == holder:
            return
        if current:
            is_alive, state = alive(current)
            if is_alive:
                raise RunLocked(current, state)
        if time.monotonic() > end:
            raise RunLocked(current or "nobody", "rank 0 never claimed the run")
        time.sleep(0.2)


def release(run: RunDir, holder: str | None = None) -> None:
    """Drop the lock if ``holder`` (default: this job) holds it."""
    holder = holder or my_holder()
    with _guard(run):
        if read_holder(run) == holder:
            (run.path / LOCK_NAME).unlink(missing_ok=True)
