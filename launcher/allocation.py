"""The plain-sbatch template honours the run file's ``cluster:`` section inside its allocation.

``sbatch slurm/train.sbatch run.yaml`` is submitted before the run file is read, so the
batch step (``python -m launcher.job prepare --shell``) fits the allocation to the run file:

- time: a shorter ``cluster.time`` than the allocation's lowers the job's limit
  (``scontrol update TimeLimit``, which any user may do to their own job); a longer one is
  refused (one line, exit 2) since only an administrator can raise it;
- the preemption signal: the template sets no ``--signal``; the batch step starts a timer
  that sends ``cluster.preempt_signal`` to the job's steps ``signal_lead_s`` before the end
  (``scancel --signal``, which does not signal the batch shell itself);
- thread counts: the exports of :func:`launcher.spec.task_environment` for the run file.
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from launcher.config import ClusterConfig, time_to_minutes
from launcher.errors import PreflightError

_TIMEOUT_S = 30


def slurm_duration_s(text: str) -> int | None:
    """``squeue`` durations (``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``) -> seconds; None for UNLIMITED/INVALID."""
    text = text.strip()
    if not text or not text[0].isdigit():
        return None
    days, _, rest = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts[-3:]
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def _squeue(job_id: str, field: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", field], capture_output=True, text=True, timeout=_TIMEOUT_S)
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def fit_time_limit(cluster: ClusterConfig, job_id: str) -> int:
    """Make the allocation's time limit the run file's; returns the limit in seconds (refuses a longer one)."""
    wanted_s = time_to_minutes(cluster.time) * 60
    limit_s = slurm_duration_s(_squeue(job_id, "%l"))
    if limit_s is not None and wanted_s > limit_s:
        raise PreflightError("the run file asks for more time than the allocation has", where="cluster.time",
                             expected=f"<= the allocation's {limit_s // 60} min", found=f"{cluster.time}",
                             hint=f"submit with sbatch --time={time_to_minutes(cluster.time)} slurm/train.sbatch ...")
    if limit_s is None or wanted_s < limit_s:
        out = subprocess.run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={time_to_minutes(cluster.time)}"],
                             capture_output=True, text=True, timeout=_TIMEOUT_S)
        if out.returncode != 0:
            raise PreflightError(f"cannot set the job's time limit: {' '.join(out.stderr.split())[:200]}", where="cluster.time",
                                 found=cluster.time, hint=f"submit with sbatch --time={time_to_minutes(cluster.time)}")
    return wanted_s


def shell_assignments(cluster: ClusterConfig, env: dict[str, str], run_dir: str, job_id: str | None) -> str:
    """The lines the template evaluates: RUN_DIR, the task exports, and when to send which preemption signal."""
    lines = [f"RUN_DIR={shlex.quote(run_dir)}"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines.append(f"PREEMPT_SIGNAL={cluster.preempt_signal}")
    if job_id:
        limit_s = fit_time_limit(cluster, job_id)
        elapsed_s = slurm_duration_s(_squeue(job_id, "%M")) or 0
        lines.append(f"PREEMPT_DELAY={max(1, limit_s - elapsed_s - cluster.signal_lead_s)}")
    return "\n".join(lines)


def describe(cluster: ClusterConfig) -> dict[str, Any]:
    """What the batch step applied, for the run's launch record."""
    return {"time": cluster.time, "signal": f"{cluster.preempt_signal}@{cluster.signal_lead_s}"}
