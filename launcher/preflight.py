"""Every check that can fail before anything is queued; each failure is one line with a HINT.

Config validity (canonical, execution, cluster) is checked while the request is resolved
(:func:`launcher.prepare.resolve_run`); this module adds the checks that need the whole
request: Lightning's SLURM rules, signal timing, data files, the run directory, and the
real scheduler (``sinfo`` and ``sbatch --test-only``) when SLURM is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from launcher import backend
from launcher.config import FORBIDDEN_JOB_NAMES
from launcher.errors import PreflightError
from launcher.prepare import PreparedRun
from launcher.spec import cpus_per_task, sbatch_flags, slurm_parameters

_SCHED_TIMEOUT_S = 30


def check_lightning_rules(prepared: PreparedRun) -> None:
    """Job name Lightning accepts; enough CPUs per task for the dataloader workers plus the rank."""
    cluster, res = prepared.cluster, prepared.resources
    if cluster.job_name.strip().lower() in FORBIDDEN_JOB_NAMES:
        raise PreflightError("Lightning ignores SLURM for this job name (it would spawn its own processes)",
                             where="cluster.job_name", found=repr(cluster.job_name),
                             expected=f"any name except {' or '.join(FORBIDDEN_JOB_NAMES)}", hint="e.g. --job-name ptycho-train")
    cpus = cpus_per_task(cluster, res)
    if cpus < res.num_workers + 1:
        raise PreflightError("too few CPUs per task for the dataloader workers plus the training process",
                             where="cluster.cpus_per_task", expected=f">= num_workers + 1 = {res.num_workers + 1}",
                             found=str(cpus), hint="raise --cpus-per-task or lower --num-workers")


def check_signal_timing(prepared: PreparedRun) -> None:
    """The preemption signal must leave time for a checkpoint and arrive inside the time limit."""
    cluster = prepared.cluster
    if cluster.signal_lead_s <= cluster.checkpoint_time_s:
        raise PreflightError("the preemption signal would leave too little time to write a checkpoint",
                             where="cluster.signal_lead_s", expected=f"> checkpoint_time_s = {cluster.checkpoint_time_s:g} s",
                             found=f"{cluster.signal_lead_s} s", hint="raise --signal-lead-s (or lower --checkpoint-time-s if saves are faster)")
    if cluster.signal_lead_s >= cluster.time_min * 60:
        raise PreflightError("the preemption signal lead is not shorter than the time limit",
                             where="cluster.signal_lead_s", expected=f"< time limit {cluster.time_min * 60} s",
                             found=f"{cluster.signal_lead_s} s", hint="raise --time or lower --signal-lead-s")


def check_data_files(prepared: PreparedRun) -> None:
    """Training and test files exist and pass the data contract (opened the way training opens them)."""
    training = prepared.payload.training
    if getattr(training, "train_data_file", None) is None:
        raise PreflightError("no training data file", where="train_data_file", expected="a scan file (NPZ/HDF5)",
                             found="none in the run file", hint="add train_data_file: path/to/scan.npz, or --set train_data_file=...")
    for name in ("train_data_file", "test_data_file"):
        path = getattr(training, name, None)
        if path is None:
            continue
        if not Path(path).is_file():
            raise PreflightError("data file not found", where=name, found=str(path),
                                 hint="check the path (relative paths are resolved from where you run ptycho-launch)")
        scan = backend.open_scan(path)  # raises DataContractError with file, key, expected and found
        n_groups = getattr(training, "n_groups", None)
        n_scan = len(getattr(scan, "xcoords", ()))
        if name == "train_data_file" and n_groups and n_scan and n_groups > n_scan:
            import sys

            print(f"warning: n_groups {n_groups} is larger than the {n_scan} scan positions of {path}: "
                  f"training uses {n_scan} groups", file=sys.stderr)


def check_python(prepared: PreparedRun) -> None:
    """Without a container, the interpreter's first word must be a command here (shared software)."""
    cluster = prepared.cluster
    if cluster.container or not cluster.python:
        return
    first = cluster.python[0]
    if shutil.which(first) is None:
        raise PreflightError("interpreter not found", where="cluster.python", found=repr(first),
                             expected="a command on PATH or a path to python",
                             hint="--python takes words, e.g. --python 'env python3'; shell code is not run")


def check_run_dir_writable(prepared: PreparedRun) -> None:
    """The runs directory can be written, or created in a writable folder; creates nothing.

    (A dry run or a refused request must leave no folder behind.)
    """
    parent = prepared.run.path.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no write permission in {existing}"
    if problem:
        raise PreflightError(f"runs directory is not writable ({problem})", where=str(parent),
                             hint="pass --runs-dir on a writable, shared file system")


def check_memory_per_gpu(prepared: PreparedRun) -> None:
    """``mem_per_gpu`` needs a GPU job (sbatch would otherwise ignore or refuse it)."""
    if prepared.cluster.mem_per_gpu is not None and not prepared.resources.uses_gpu:
        raise PreflightError("memory per GPU for a job without GPUs", where="cluster.mem_per_gpu",
                             found=f"{prepared.cluster.mem_per_gpu} with accelerator {prepared.resources.accelerator!r}",
                             hint="use --mem (per node) for CPU jobs, or a GPU partition")


def slurm_available() -> bool:
    """True when the SLURM client tools are on PATH."""
    return shutil.which("sbatch") is not None and shutil.which("sinfo") is not None


def _sched(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=_SCHED_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PreflightError("the scheduler did not answer", where=cmd[0], found=f"no reply in {_SCHED_TIMEOUT_S} s",
                             hint="is slurmctld up? try `sinfo`") from None


def check_scheduler(prepared: PreparedRun) -> None:
    """Ask the real scheduler: the partition exists, and ``sbatch --test-only`` accepts the request."""
    if not slurm_available():
        raise PreflightError("SLURM client tools not found", where="PATH", expected="sbatch and sinfo",
                             hint="run on a SLURM login node, or use --local (this machine) or --dry-run")
    cluster, res = prepared.cluster, prepared.resources
    listing = _sched(["sinfo", "-h", "-o", "%P"])
    if listing.returncode != 0:
        raise PreflightError(f"sinfo failed: {' '.join(listing.stderr.split())[:200]}", where="sinfo",
                             hint="is slurmctld reachable from this host?")
    partitions = [p.strip().rstrip("*") for p in listing.stdout.split()]
    if cluster.partition is not None and cluster.partition not in partitions:
        raise PreflightError(f"unknown partition '{cluster.partition}'", where="cluster.partition",
                             expected=f"one of {', '.join(partitions) or '(none)'}", hint="see `sinfo`; --partition sets it")
    check_gpu_partition(prepared)
    params = slurm_parameters(cluster, res)
    test = _test_only(params)
    if test.returncode != 0:
        reason = " ".join(test.stderr.replace("sbatch: error:", "").split())[:300]
        option = refused_sbatch_option(params, reason)
        if option is not None:
            raise PreflightError(f"the scheduler refuses sbatch option '{option}': {reason}",
                                 where=f"cluster.sbatch_options.{option}", found=repr(cluster.sbatch_options[option]),
                                 hint=f"fix or drop --sbatch-option {option}=...; `man sbatch` lists its values")
        where, flag = refused_field(reason, prepared)
        raise PreflightError(f"the scheduler refuses this request: {reason}", where=where,
                             hint=f"change {flag}; fit it to `sinfo -o '%P %D %c %m %G %l'`")


def _test_only(params: dict) -> subprocess.CompletedProcess:
    """``sbatch --test-only`` with exactly the options the job would be submitted with."""
    return _sched(["sbatch", "--test-only", *sbatch_flags(params), "--wrap", "true"])


def refused_sbatch_option(params: dict, reason: str) -> str | None:
    """The passthrough option a refusal is about: the one named in the message, else the one whose removal fixes it."""
    passthrough = [name for name in params.get("additional_parameters", {}) if name not in ("requeue", "signal")]
    if not passthrough:
        return None
    for name in passthrough:
        if f"--{name}" in reason or f"'{name}'" in reason:
            return name
    for name in passthrough:
        trial = dict(params, additional_parameters={k: v for k, v in params["additional_parameters"].items() if k != name})
        if _test_only(trial).returncode == 0:
            return name
    return None


def check_gpu_partition(prepared: PreparedRun) -> None:
    """An explicit GPU accelerator on a partition whose nodes have no GPU GRES is refused (sinfo)."""
    target, res = prepared.target, prepared.resources
    if target is None or target.node is None or not res.uses_gpu or target.node.gpus > 0:
        return
    raise PreflightError("a GPU job on a partition without GPUs", where="execution.accelerator",
                         expected=f"GPUs in partition '{target.partition}' (sinfo GRES gpu:N)", found=f"accelerator {res.accelerator!r}, GRES none",
                         hint="pick a GPU partition with --partition, or --accelerator auto/cpu")


_REFUSALS = (("memory", "cluster.mem", "--mem"), ("time limit", "cluster.time", "--time"), ("account", "cluster.account", "--account"),
             ("qos", "cluster.qos", "--qos"), ("partition", "cluster.partition", "--partition"),
             ("feature", "cluster.constraint", "--constraint"), ("constraint", "cluster.constraint", "--constraint"))


def refused_field(reason: str, prepared: PreparedRun) -> tuple[str, str]:
    """(field, flag) that a scheduler refusal is about, from its text; the node/task shape otherwise."""
    low = reason.lower()
    for needle, field, flag in _REFUSALS:
        if needle in low:
            value = getattr(prepared.cluster, field.split(".")[1], None)
            return f"{field} ({flag}={value})", flag
    res, cluster = prepared.resources, prepared.cluster
    nodes = _node_sizes(cluster.partition)
    if nodes:
        max_cpus, max_mem_mb = max(c for c, _ in nodes), max(m for _, m in nodes)
        if cluster.mem is not None and _mem_mb(cluster.mem) > max_mem_mb:
            return f"cluster.mem (--mem={cluster.mem}; largest node has {max_mem_mb}M)", "--mem"
        if len(nodes) < res.num_nodes:
            return f"execution.num_nodes (--nodes={res.num_nodes}; the partition has {len(nodes)})", "--nodes"
        if cpus_per_task(cluster, res) * res.devices > max_cpus:
            return (f"cluster.cpus_per_task x execution.devices ({cpus_per_task(cluster, res)} x {res.devices}; "
                    f"largest node has {max_cpus} CPUs)"), "--cpus-per-task or --devices"
    return f"{res.num_nodes} node(s) x {res.devices} task(s) (--nodes/--devices/--cpus-per-task)", "--nodes, --devices or --cpus-per-task"


def _mem_mb(text: str) -> int:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _node_sizes(partition: str | None) -> list[tuple[int, int]]:
    """(CPUs, memory MB) of each node of the partition, from ``sinfo`` (empty when unknown)."""
    cmd = ["sinfo", "-h", "-N", "-o", "%N %c %m"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=_SCHED_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    sizes = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].rstrip("+").isdigit():
            sizes[parts[0]] = (int(parts[1]), int(parts[2].rstrip("+")))
    return list(sizes.values())


def run_preflight(prepared: PreparedRun, *, scheduler: bool) -> None:
    """All checks, cheapest first; ``scheduler`` adds the real-SLURM ones."""
    check_lightning_rules(prepared)
    check_signal_timing(prepared)
    check_data_files(prepared)
    check_python(prepared)
    check_run_dir_writable(prepared)
    check_memory_per_gpu(prepared)
    if scheduler:
        check_scheduler(prepared)
