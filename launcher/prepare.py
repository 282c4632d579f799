"""Resolve a launch request into a run: payload, cluster config, run directory on disk.

Both ptycho-launch (on the submit host) and the plain-sbatch template (``python -m
launcher.job prepare``, in the batch step) go through :func:`resolve_run` and
:func:`write_run`, so a run directory looks the same however it was started.  The training
config's ``output_dir`` is set to the run directory *before* the hash is computed; the job
rebuilds its payload from ``config/run.yaml`` and checks that it hashes the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from launcher import backend
from launcher.config import ClusterConfig, build_cluster_config
from launcher.errors import RunNotFoundError
from launcher.provenance import collect_provenance
from launcher.rundir import RUN_ID_RE, RunDir, new_run_id, write_json_atomic
from launcher.spec import Resources
from launcher.target import Target, read_sinfo, resolve_target


@dataclass(frozen=True)
class LaunchRequest:
    """Everything the user asked for, before validation."""

    config_path: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    execution_flags: Mapping[str, Any] = field(default_factory=dict)
    cluster_layers: tuple[Mapping[str, Any], ...] = ()
    runs_dir: Path = Path("runs")
    run_id: str | None = None
    local: bool = False
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreparedRun:
    """A validated request: the payload the job will train with and where its run lives."""

    run: RunDir
    payload: Any  # ptycho_torch TrainingPayload
    cluster: ClusterConfig
    resources: Resources
    mode: str
    target: Target | None = None  # where the job runs and the accelerator chosen for it
    code: dict[str, Any] = field(default_factory=dict)  # launcher.snapshot.plan_snapshot: the code the job runs

    @property
    def code_path(self) -> str | None:
        """The copied sources the job puts first on PYTHONPATH (code_snapshot: copy), else None."""
        return self.code.get("path")

    @property
    def config_hash(self) -> str:
        return self.payload.config_hash


def check_run_id(run_id: str) -> str:
    """A run id is a folder name: letters, digits, '.', '_', '-' (128 at most)."""
    if not RUN_ID_RE.match(run_id):
        raise RunNotFoundError("invalid run id", where="--run-id", expected="letters, digits, '.', '_' or '-' (max 128)",
                               found=repr(run_id), hint="pick a simple name such as lines-n64-a")
    return run_id


def resolve_run(request: LaunchRequest, *, mode: str) -> PreparedRun:
    """Build and validate the payload and cluster config; writes nothing."""
    from launcher.errors import PreflightError

    path = request.config_path
    if path.is_file() and not path.read_text(encoding="utf-8", errors="replace").strip():
        raise PreflightError("run file is empty", where=str(path), expected="a training config (YAML/JSON)",
                             hint="start from the README's run.yaml; at least train_data_file")
    run_id = check_run_id(request.run_id) if request.run_id else new_run_id(request.config_path.stem)
    run = RunDir(request.runs_dir.expanduser().resolve() / run_id)
    flags = {f"execution.{k}": v for k, v in request.execution_flags.items() if v is not None}
    if request.local:  # one machine: any number of local ranks (--devices), DDP when more than one
        devices = int(flags.get("execution.devices") or 1)
        flags.update({"execution.num_nodes": 1})
        if devices == 1:
            flags["execution.strategy"] = "auto"

    def payload_with(extra: dict[str, Any]) -> Any:
        return backend.create_training_payload(request.config_path, overrides={**dict(request.overrides), "output_dir": str(run.path)},
                                               flag_overrides={**flags, **extra}, resolve_device=False)

    payload = payload_with({})
    cluster = build_cluster_config(payload.cluster, *request.cluster_layers)
    target = target_for(payload.execution.accelerator, mode, cluster.partition)
    if target.accelerator != payload.execution.accelerator:
        payload = payload_with({"execution.accelerator": target.accelerator})
    resources = Resources.from_execution(payload.execution, node=target.node)
    from launcher.snapshot import plan_snapshot

    # the plain-sbatch template imports the installed code: it can check it, not copy it
    snapshot_mode = "check" if mode == "sbatch" and cluster.code_snapshot == "copy" else cluster.code_snapshot
    code = plan_snapshot(snapshot_mode, run.path.parent)
    return PreparedRun(run=run, payload=payload, cluster=cluster, resources=resources, mode=mode, target=target, code=code)


def target_for(accelerator: str, mode: str, partition: str | None) -> Target:
    """:func:`launcher.target.resolve_target` with what this host can see: sinfo (SLURM modes) or CUDA (local).

    In the batch step of the plain-sbatch template (mode 'sbatch') the allocation itself says
    whether it holds GPUs (``SLURM_GPUS_ON_NODE``).
    """
    import os

    if mode == "sbatch":
        gpus = str(os.environ.get("SLURM_GPUS_ON_NODE") or os.environ.get("SLURM_JOB_GPUS") or "").strip()
        has = bool(gpus) and gpus != "0"
        return resolve_target(accelerator, mode="local", cuda_available=has) if accelerator == "auto" else \
            resolve_target(accelerator, mode="local")
    if mode == "local":
        return resolve_target(accelerator, mode="local")
    return resolve_target(accelerator, mode=mode, partition=partition, sinfo_text=read_sinfo())


def write_run(prepared: PreparedRun, command: tuple[str, ...] | list[str]) -> RunDir:
    """Create (or reuse, when the config hash matches) the run directory and its records."""
    run = prepared.run
    if run.exists():
        old = run.launch().get("config_hash")
        if old != prepared.config_hash:
            raise RunNotFoundError(
                "run id already used by a run with a different config", where=str(run.path),
                expected=f"config hash {str(old)[:12]}", found=f"{prepared.config_hash[:12]}",
                hint="pick another --run-id, or omit it for a fresh one")
        return run
    for sub in (run.logs_dir, run.checkpoints_dir, run.ranks_dir, run.config_file.parent):
        sub.mkdir(parents=True, exist_ok=True)
    backend.save_run_file(run.config_file, prepared.payload.training, prepared.payload.execution,
                          cluster=prepared.cluster.model_dump(mode="json"))
    write_json_atomic(run.provenance_file, collect_provenance(list(command)))
    from launcher.snapshot import take_snapshot

    code = take_snapshot(prepared.code, run.path)
    (run.path / "command.txt").write_text(" ".join(command) + "\n", encoding="utf-8")
    run.update_launch(run_id=run.run_id, config_hash=prepared.config_hash, mode=prepared.mode,
                      created_at=time.time(), command=list(command), log_dir=str(run.logs_dir),
                      config_file=str(run.config_file), requeue_budget=prepared.cluster.requeue_budget,
                      world_size=prepared.resources.world_size, job_ids=[],
                      target=prepared.target.record() if prepared.target else None, code_snapshot=code)
    run.update_state(status="PREPARED", attempts=0, requeues=0)
    return run
