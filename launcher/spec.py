"""The one source of truth for what SLURM is asked: sbatch parameters, setup lines, srun args.

:func:`slurm_parameters` turns an execution config (devices, num_nodes, num_workers,
accelerator) and a :class:`~launcher.config.ClusterConfig` into the keyword arguments of
``submitit.SlurmExecutor.update_parameters``.  ptycho-launch submits with them, ``--dry-run``
shows submitit's rendering of them, and :mod:`launcher.templates` renders the committed
``slurm/*.sbatch`` files from them (a golden test keeps those files equal to the rendering).

Rules encoded here (see docs/slurm.md):
- tasks per node = ``devices``, nodes = ``num_nodes``; GPUs per node = ``devices`` on GPU
  (each task sees all the node's GPUs: Lightning picks its device by local rank);
- ``cpus_per_task`` defaults to the node's share (:mod:`launcher.target`: cores per GPU on GPU
  partitions, cores / tasks per node on CPU ones), ``num_workers + 1`` when the node is
  unknown; threads per rank = cpus - workers (>= 1);
- memory defaults to ``--mem-per-gpu`` = node memory / GPUs (GPU jobs) or ``--mem-per-cpu`` =
  node memory / cores (CPU jobs) when neither ``mem`` nor ``mem_per_gpu`` is given;
- the preemption signal is ``--signal=<preempt_signal>@<signal_lead_s>``; ``sbatch_options``
  are passed through as further ``#SBATCH`` lines;
- ``SRUN_CPUS_PER_TASK`` is exported (srun of Slurm 22.05-23.02 does not inherit it);
- ``MASTER_PORT`` is chosen by the batch step in plain shell (same rule as :mod:`launcher.rendezvous`);
- the interpreter is a list of words (container prefix + python), each quoted;
- srun kills all tasks when one exits non-zero, and the rest 60 s after the first exits.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Any

from launcher.config import ClusterConfig
from launcher.rendezvous import PORT_HIGH, PORT_LOW, PROBES
from launcher.target import NodeShape

SRUN_ARGS = ("--kill-on-bad-exit=1", "--wait=60")
PREEMPT_SIGNAL = "USR2"
GPU_ACCELERATORS = ("gpu", "cuda")
# GPU jobs: a collective that outlives the process-group timeout (heartbeat.process_group_timeout_s)
# aborts the rank instead of hanging it (both spellings: torch >= 2.2 and older)
NCCL_ENVIRONMENT = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "NCCL_ASYNC_ERROR_HANDLING": "1"}


@dataclass(frozen=True)
class Resources:
    """What the SLURM request needs from the execution config."""

    devices: int
    num_nodes: int
    num_workers: int
    accelerator: str
    node: NodeShape | None = None  # the partition's smallest node, when sinfo told us

    @classmethod
    def from_execution(cls, execution: Any, node: NodeShape | None = None) -> "Resources":
        """Read the four fields from an ExecutionConfig (or any object/mapping that has them)."""
        get = execution.get if isinstance(execution, dict) else lambda k, d=None: getattr(execution, k, d)
        return cls(int(get("devices", 1)), int(get("num_nodes", 1)), int(get("num_workers", 0)),
                   str(get("accelerator", "auto")), node)

    @property
    def uses_gpu(self) -> bool:
        """True for a GPU job (the accelerator, resolved for the target, is a GPU one)."""
        return self.accelerator in GPU_ACCELERATORS

    @property
    def world_size(self) -> int:
        """Total ranks: tasks per node times nodes."""
        return self.devices * self.num_nodes


def cpus_per_task(cluster: ClusterConfig, res: Resources) -> int:
    """CPU cores per task: the cluster's value, else the node's share, else one per dataloader worker plus one.

    The node's share is its cores per GPU for a GPU job (a task drives one GPU), and its cores
    divided by the tasks per node for a CPU job; never fewer than ``num_workers + 1``.
    """
    if cluster.cpus_per_task is not None:
        return cluster.cpus_per_task
    floor = res.num_workers + 1
    node = res.node
    if node is None or node.cpus < 1:
        return floor
    share = node.cpus // node.gpus if res.uses_gpu and node.gpus > 0 else node.cpus // max(1, res.devices)
    return max(floor, share)


def memory_request(cluster: ClusterConfig, res: Resources) -> dict[str, str]:
    """The sbatch memory option: ``mem`` or ``mem_per_gpu`` when given, else derived from the node.

    Derived: a GPU's share of the node's memory (``mem_per_gpu``) for a GPU job, the memory per
    core (``mem_per_cpu``) for a CPU job, so memory follows the cores the job takes.  Nothing
    when the node is unknown (the cluster's per-CPU default applies).
    """
    if cluster.mem is not None:
        return {"mem": cluster.mem}
    if cluster.mem_per_gpu is not None:
        return {"mem_per_gpu": cluster.mem_per_gpu}
    node = res.node
    if node is None or node.mem_mb < 1:
        return {}
    if res.uses_gpu and node.gpus > 0:
        return {"mem_per_gpu": f"{node.mem_mb // node.gpus}M"}
    return {"mem_per_cpu": f"{max(1, node.mem_mb // max(1, node.cpus))}M"}


def threads_per_task(cluster: ClusterConfig, res: Resources) -> int:
    """Intra-op threads per rank: the cores of the task not used by dataloader workers (>= 1)."""
    return max(1, cpus_per_task(cluster, res) - res.num_workers)


def task_environment(cluster: ClusterConfig, res: Resources) -> dict[str, str]:
    """Variables exported to every task: thread counts, then the user's ``env`` (which wins)."""
    threads = str(threads_per_task(cluster, res))
    gpu = dict(NCCL_ENVIRONMENT) if res.uses_gpu else {}
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **gpu, **cluster.env}


def python_of(cluster: ClusterConfig) -> list[str]:
    """The command (words) that runs Python in every task: container prefix, then the interpreter."""
    return [*(cluster.container or []), *(cluster.python or [sys.executable])]


def python_command(cluster: ClusterConfig) -> str:
    """:func:`python_of` as one shell string, every word quoted (what the srun line gets)."""
    return shlex.join(python_of(cluster))


# MASTER_PORT in plain shell, so that it does not depend on the job's interpreter (a container
# prefix or a wrong --python must not leave it empty): the port derived from the job id as in
# launcher.rendezvous.derive_port, then the next one while something answers on it.
MASTER_PORT_LINE = ("MASTER_PORT=$(( {low} + ${{SLURM_JOB_ID:-0}} % {span} )); for _ in $(seq {probes}); do "
                    "(: </dev/tcp/127.0.0.1/$MASTER_PORT) 2>/dev/null || break; "
                    "MASTER_PORT=$(( {low} + (MASTER_PORT + 1 - {low}) % {span} )); done; export MASTER_PORT"
                    ).format(low=PORT_LOW, span=PORT_HIGH - PORT_LOW, probes=PROBES)


def aftercare_trap(python: str, run_dir_word: str) -> str:
    """``trap ... EXIT``: when srun fails, :mod:`launcher.aftercare` requeues hangs and killed ranks.

    ``python`` and ``run_dir_word`` are shell words as they go into the script (quoted
    already, or a quoted variable such as ``"$RUN_DIR"``).
    """
    inner = f"rc=$?; [ $rc -eq 0 ] || {python} -m launcher.aftercare {run_dir_word} $rc || true"
    return f"trap {shlex.quote(inner)} EXIT"


def restart_check(python: str, run_dir_word: str) -> str:
    """On a restart, count a requeue SLURM made by itself (node failure); exit 1 if over budget."""
    return f'if [ "${{SLURM_RESTART_COUNT:-0}}" -gt 0 ]; then {python} -m launcher.scheduler_requeue {run_dir_word}; fi'


def job_care_lines(python: str, run_dir_word: str) -> list[str]:
    """The restart check, then the after-srun trap (one run; the run directory known in the script)."""
    return [restart_check(python, run_dir_word), aftercare_trap(python, run_dir_word)]


def array_run_dir_word(prefix: str) -> str:
    """The shell word of an array task's run directory: ``<prefix><task id>`` (sweep runs are ``<sweep id>-<k>``)."""
    return shlex.quote(prefix) + '"$SLURM_ARRAY_TASK_ID"'


def setup_lines(cluster: ClusterConfig, res: Resources, run_dir: str | None = None,
                array_run_prefix: str | None = None, code_path: str | None = None) -> list[str]:
    """Batch-script lines before srun: ``set -e``, the user's setup, exports, SRUN_CPUS_PER_TASK, MASTER_PORT.

    ``set -e`` first: a failing setup line (module load, conda activate) ends the job there.
    With ``run_dir`` (one run) or ``array_run_prefix`` (a job array whose task k trains
    ``<prefix>k``) a restart is checked against the requeue budget (:func:`restart_check`)
    and an EXIT trap runs the after-srun step.  With ``code_path`` the submitted sources
    (:mod:`launcher.snapshot`) come first on ``PYTHONPATH``.
    """
    lines = ["set -e", *cluster.setup]
    if code_path is not None:  # the submitted sources (launcher.snapshot) before whatever is installed
        lines.append(f"export PYTHONPATH={shlex.quote(str(code_path))}${{PYTHONPATH:+:$PYTHONPATH}}")
    lines += [f"export {key}={shlex.quote(value)}" for key, value in task_environment(cluster, res).items()]
    # a MASTER_ADDR exported in the submitting shell would override the allocation's first node
    lines += ["unset MASTER_ADDR", "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK", MASTER_PORT_LINE]
    if run_dir is not None:
        lines += job_care_lines(python_command(cluster), shlex.quote(str(run_dir)))
    elif array_run_prefix is not None:
        lines += job_care_lines(python_command(cluster), array_run_dir_word(array_run_prefix))
    return lines


def slurm_parameters(cluster: ClusterConfig, res: Resources, run_dir: str | None = None,
                     array_run_prefix: str | None = None, code_path: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``submitit.SlurmExecutor.update_parameters`` (sbatch names)."""
    params: dict[str, Any] = {
        "job_name": cluster.job_name,
        "nodes": res.num_nodes,
        "ntasks_per_node": res.devices,
        "cpus_per_task": cpus_per_task(cluster, res),
        "time": cluster.time_min,
        "signal_delay_s": cluster.signal_lead_s,
        "setup": setup_lines(cluster, res, run_dir, array_run_prefix, code_path),
        "srun_args": list(SRUN_ARGS),
        "additional_parameters": {"requeue": True, "signal": f"{cluster.preempt_signal}@{cluster.signal_lead_s}",
                                  **{name: (True if value == "" else value) for name, value in cluster.sbatch_options.items()}},
    }
    if res.uses_gpu:
        params["gpus_per_node"] = res.devices
    for name in ("partition", "account", "qos", "constraint"):
        value = getattr(cluster, name)
        if value is not None:
            params[name] = value
    params.update(memory_request(cluster, res))
    if cluster.exclusive:
        params["exclusive"] = True
    if cluster.array_limit is not None:
        params["array_parallelism"] = cluster.array_limit
    return params


def sbatch_flags(params: dict[str, Any]) -> list[str]:
    """:func:`sbatch_directives` as command-line flags (``sbatch --test-only`` takes the same request)."""
    return [line.removeprefix("#SBATCH ") for line in sbatch_directives(params)]


def sbatch_directives(params: dict[str, Any]) -> list[str]:
    """``#SBATCH`` lines for :func:`slurm_parameters` output (used by the committed templates).

    Mirrors submitit's rendering: sorted names, underscores as dashes, ``True`` as a bare flag,
    the signal as ``--signal=USR2@<lead>``.
    """
    flags: dict[str, Any] = {k: v for k, v in params.items()
                             if k not in ("setup", "srun_args", "signal_delay_s", "additional_parameters", "array_parallelism")}
    flags["signal"] = f"{PREEMPT_SIGNAL}@{params['signal_delay_s']}"
    flags.update(params.get("additional_parameters") or {})
    lines = []
    for key in sorted(flags):
        value = flags[key]
        name = key.replace("_", "-")
        lines.append(f"#SBATCH --{name}" if value is True else f"#SBATCH --{name}={value}")
    return lines
