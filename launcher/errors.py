"""Launcher failures a user can cause; each is one line with a HINT (see ptycho_torch.errors).

All derive from :class:`ptycho_torch.errors.PtychoError`, so ``run_cli`` prints them as one
line and exits 2.  Problems with the cluster section of a config are :class:`ClusterConfigError`
(a :class:`~ptycho_torch.errors.ConfigError`); checks against the scheduler, the file system
or Lightning's rules that fail before anything is queued are :class:`PreflightError`;
a scheduler that refuses or loses a job is :class:`SubmitError`; a run directory or run id
that does not exist or does not match is :class:`RunNotFoundError`.
"""

from __future__ import annotations

from ptycho_torch.errors import ConfigError, PtychoError, UsageError


class ClusterConfigError(ConfigError):
    """The ``cluster:`` section, a cluster file or a cluster flag is invalid."""

    kind = "cluster config error"


class PreflightError(PtychoError):
    """A check before queueing failed (resources, scheduler, files, Lightning's SLURM rules)."""

    kind = "preflight error"


class SubmitError(PtychoError):
    """The scheduler refused the job, or a submitted job failed."""

    kind = "submit error"


class RunNotFoundError(PtychoError):
    """A run id or run directory given to status/logs/cancel/resume does not exist or is not a run."""

    kind = "run error"


class PreemptedError(PtychoError):
    """A run stopped at a preemption signal and its requeue budget is spent (it saved a checkpoint)."""

    kind = "preempted"


__all__ = ["ClusterConfigError", "PreemptedError", "PreflightError", "RunNotFoundError", "SubmitError", "UsageError"]
