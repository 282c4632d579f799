"""ClusterConfig: what SLURM is asked for (partition, time, memory, signal, requeue budget...).

The cluster config never changes what is computed; it says where and how long a job runs.
Tasks per node and node count are *not* fields here: they come from the execution config
(``devices`` and ``num_nodes``), so the two cannot disagree.

Sources, lowest precedence first: defaults, the ``cluster:`` section of the run file, a
``--cluster`` file (its top level, or its ``cluster:`` section), then ``--partition`` style
flags (one per field, generated from :data:`ClusterConfig.model_fields`).
"""

from __future__ import annotations

import difflib
import re
import shlex
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from launcher.errors import ClusterConfigError

_TIME_RE = re.compile(r"^(?:(?P<d>\d+)-)?(?P<rest>\d+(?::\d+){0,2})$")
_MEM_RE = re.compile(r"^\d+[KMGT]?$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SBATCH_KEY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
FORBIDDEN_JOB_NAMES = ("bash", "interactive")
# sbatch options that ptycho-launch sets itself: a passthrough may not set them (field or flag to use instead)
MANAGED_SBATCH_OPTIONS = {
    "nodes": "--nodes", "ntasks-per-node": "--devices", "ntasks": "--devices and --nodes", "cpus-per-task": "--cpus-per-task",
    "gpus-per-node": "--accelerator and --devices", "gpus": "--accelerator and --devices", "time": "--time",
    "signal": "--signal-lead-s and --preempt-signal", "job-name": "--job-name", "partition": "--partition",
    "account": "--account", "qos": "--qos", "mem": "--mem", "mem-per-gpu": "--mem-per-gpu", "mem-per-cpu": "--mem or --mem-per-gpu",
    "constraint": "--constraint", "exclusive": "--exclusive", "array": "--sweep and --array-limit", "output": "(the run's logs/)",
    "error": "(the run's logs/)", "open-mode": "(append, fixed)", "requeue": "(always on)", "no-requeue": "(always requeue)",
    "wrap": "(not a job option)", "test-only": "(used by preflight)", "parsable": "(not a job option)",
}


def time_to_minutes(text: str) -> int:
    """SLURM time limit text -> whole minutes (seconds round up).

    Accepts ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS`` as sbatch does.
    Raises ``ValueError`` for anything else.
    """
    match = _TIME_RE.match(str(text).strip())
    if not match:
        raise ValueError(f"not a SLURM time: {text!r}")
    days = int(match.group("d") or 0)
    parts = [int(p) for p in match.group("rest").split(":")]
    if match.group("d") is not None:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 1:
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = parts
    total_s = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total_s <= 0:
        raise ValueError(f"time limit must be positive: {text!r}")
    return -(-total_s // 60)


class ClusterConfig(BaseModel):
    """SLURM resources and policies of one job (everything except nodes and tasks per node)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_name: str = Field("ptycho-train", min_length=1, description="SLURM job name (never 'bash' or 'interactive': Lightning would then ignore SLURM).")
    partition: str | None = Field(None, description="Partition (queue) to submit to; None: the cluster's default partition.")
    account: str | None = Field(None, description="Account charged for the job (sbatch --account).")
    qos: str | None = Field(None, description="Quality of service (sbatch --qos).")
    time: str = Field("01:00:00", description="Time limit: MM, HH:MM:SS or D-HH:MM:SS (sbatch --time).")
    mem: str | None = Field(None, description="Memory per node, e.g. '32G' (sbatch --mem); None: the cluster's default per CPU.")
    mem_per_gpu: str | None = Field(None, description="Memory per allocated GPU, e.g. '64G' (sbatch --mem-per-gpu; GPU jobs only); None with mem None: the node's memory divided by its GPUs.")
    cpus_per_task: int | None = Field(None, ge=1, le=1024, description="CPU cores per task (= per device); None: from the partition's nodes (a GPU's share of the cores on GPU partitions, cores / tasks per node otherwise), num_workers + 1 when sinfo is not reachable.")
    constraint: str | None = Field(None, description="Node features required, e.g. 'a100' (sbatch --constraint).")
    exclusive: bool = Field(False, description="Ask for whole nodes (sbatch --exclusive).")
    setup: list[str] = Field(default_factory=list, description="Shell lines run in the batch script before srun (module load, conda activate...).")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables exported to every task (NAME: value).")
    signal_lead_s: int = Field(120, ge=10, le=3600, description="Seconds before the time limit at which SLURM sends the preemption signal (preempt_signal).")
    preempt_signal: Literal["USR1", "USR2", "TERM"] = Field("USR2", description="Signal that means 'checkpoint and requeue': sent signal_lead_s before the time limit (sbatch --signal) and caught by every rank; TERM for sites that preempt with SIGTERM (a cancel from ptycho-launch is then not requeued).")
    preempt_check_every_n_steps: int = Field(10, ge=1, le=100000, description="Ranks agree on a pending preemption signal every this many optimiser steps (one all-reduce then, none in between); keep k x step time well below signal_lead_s - checkpoint_time_s.")
    progress_interval_s: float = Field(10.0, ge=0, le=3600, description="Rank 0 rewrites progress.json (global step, time) at most this often, and at the first step; 0: every step.")
    checkpoint_time_s: float = Field(30.0, gt=0, le=3600, description="Upper bound, seconds, for reaching a batch boundary plus writing one checkpoint; must be below signal_lead_s.")
    requeue_budget: int = Field(3, ge=0, le=1000, description="How many times a run may be requeued automatically: preemption/time-limit signals, hung or killed ranks, node failures (one shared budget).")
    hang_timeout_s: float | None = Field(None, ge=5, le=86400, description="Seconds without progress after which a rank counts as hung and the job ends (then requeues within the budget); None: max(300, 20 x the median step time). The process-group collective timeout is this plus 60 s.")
    python: list[str] | None = Field(None, description="Python interpreter on the compute nodes, as words (a string is split like a shell would, e.g. 'env python3'); every word is quoted in the script, so no shell code runs; None: the one running ptycho-launch.")
    container: list[str] | None = Field(None, description="Command prefix that runs each task in a container, as words, e.g. 'apptainer exec --nv image.sif' (placed before python; every word quoted).")
    sbatch_options: dict[str, str] = Field(default_factory=dict, description="Other sbatch options, NAME: VALUE without the dashes (exclude, nodelist, dependency, gres, mail-type, mail-user, reservation...; an empty value is a bare flag); checked with sbatch --test-only before anything is written; options ptycho-launch sets itself are refused.")
    array_limit: int | None = Field(None, ge=1, le=100000, description="At most this many array tasks of a sweep run at once (sbatch --array=0-N%limit); None: all of them.")
    code_snapshot: Literal["copy", "check", "off"] = Field("copy", description="Code a (re)queued job runs: 'copy' puts the submitted launcher and ptycho_torch sources in the run directory and the job imports them; 'check' records their hash and a job whose code changed refuses to start; 'off' runs whatever is installed.")

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        time_to_minutes(value)
        return value

    @field_validator("job_name", "partition", "account", "qos", "constraint")
    @classmethod
    def _one_token(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ch.isspace() or ord(ch) < 32 for ch in value)):
            raise ValueError("expected one word: no spaces, newlines or control characters")
        return value

    @field_validator("setup")
    @classmethod
    def _one_line_each(cls, value: list[str]) -> list[str]:
        for line in value:
            if "\n" in line or "\r" in line or "\0" in line:
                raise ValueError("each setup entry is one shell line (give several entries instead of newlines)")
        return value

    @field_validator("python", "container", mode="before")
    @classmethod
    def _split_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split into words: {exc}") from None
        if isinstance(value, (list, tuple)):
            words = [str(w) for w in value]
            if not words or any(not w.strip() or "\n" in w or "\0" in w for w in words):
                raise ValueError("expected one or more non-empty words without newlines, e.g. 'env python3'")
            return words
        return value

    @field_validator("sbatch_options", mode="before")
    @classmethod
    def _check_sbatch_options(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = {}
        for key, raw in value.items():
            name = str(key).strip().lstrip("-")
            if not _SBATCH_KEY_RE.match(name):
                raise ValueError(f"sbatch option name {key!r}: expected lower-case letters, digits and dashes, e.g. exclude")
            if name in MANAGED_SBATCH_OPTIONS:
                raise ValueError(f"sbatch option '{name}' is set by ptycho-launch; use {MANAGED_SBATCH_OPTIONS[name]}")
            text = "" if raw is None or raw is True else str(raw)
            if any(ch in text for ch in "\n\r\0"):
                raise ValueError(f"sbatch option '{name}': the value must be one line")
            out[name] = text
        return out

    @field_validator("mem", "mem_per_gpu")
    @classmethod
    def _check_mem(cls, value: str | None) -> str | None:
        if value is not None and not _MEM_RE.match(value):
            raise ValueError("memory must be a number with an optional K/M/G/T suffix, e.g. '32G'")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_RE.match(key):
                raise ValueError(f"environment variable name {key!r} is not a valid shell name")
        return {str(k): str(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _one_memory_request(self) -> "ClusterConfig":
        if self.mem is not None and self.mem_per_gpu is not None:
            raise ValueError("mem and mem_per_gpu cannot both be set (sbatch takes one memory request); drop one")
        return self

    @property
    def time_min(self) -> int:
        """The time limit in whole minutes (what submitit's ``time`` parameter takes)."""
        return time_to_minutes(self.time)


def cluster_field_help() -> dict[str, str]:
    """Field name -> description, for generated CLI flags and docs."""
    return {name: info.description or "" for name, info in ClusterConfig.model_fields.items()}


def build_cluster_config(*layers: Mapping[str, Any] | None, where: str = "cluster") -> ClusterConfig:
    """Merge mappings (later wins) and validate; any problem is one :class:`ClusterConfigError`.

    Unknown keys are refused with the closest valid name and the full list.
    """
    merged: dict[str, Any] = {}
    valid = list(ClusterConfig.model_fields)
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise ClusterConfigError("section must be a mapping", where=where, found=type(layer).__name__,
                                     hint=f"valid keys: {', '.join(valid)}")
        for key, value in layer.items():
            if key not in ClusterConfig.model_fields:
                close = difflib.get_close_matches(str(key), valid, n=1)
                guess = f"did you mean '{close[0]}'? " if close else ""
                raise ClusterConfigError(f"unknown cluster key '{key}'", where=f"{where}.{key}",
                                         hint=f"{guess}valid keys: {', '.join(valid)}")
            merged[key] = value
    try:
        return ClusterConfig.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        desc = ClusterConfig.model_fields[field.split(".")[0]].description if field else None
        raise ClusterConfigError(msg, where=f"{where}.{field}" if field else where,
                                 found=repr(err.get("input")), hint=desc) from None


def read_cluster_file(path: str | Path) -> dict[str, Any]:
    """A YAML/JSON cluster file: its ``cluster:`` section if it has one, else its top level."""
    import yaml

    from ptycho_torch.config.io import RunFileLoader  # YAML 1.2 scalars, like the run file

    path = Path(path)
    if not path.is_file():
        raise ClusterConfigError("cluster file not found", where=str(path), hint="check the path given to --cluster")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=RunFileLoader) or {}  # safe: SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ClusterConfigError(f"cannot parse: {' '.join(str(exc).split())}", where=str(path)) from None
    if not isinstance(data, dict):
        raise ClusterConfigError("top level must be a mapping", where=str(path), found=type(data).__name__)
    section = data["cluster"] if "cluster" in data else data
    return dict(section or {})
