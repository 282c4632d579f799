"""ptycho-launch: train on SLURM (submitit), locally (--local), or show the job (--dry-run).

    ptycho-launch --config run.yaml --nodes 2 --devices 4 --partition gpu --time 04:00:00
    ptycho-launch --config run.yaml --local
    ptycho-launch --config run.yaml --dry-run
    ptycho-launch --config run.yaml --sweep nepochs=5 --sweep nepochs=10      # one job array
    ptycho-launch status|logs|cancel|resume RUN        ptycho-launch list

Every ExecutionConfig field has a flag (``--nodes`` is ``--num-nodes``), and so does every
ClusterConfig field; both come from ptycho_torch's one flag generator
(:func:`ptycho_torch.cli.fields.add_field_flags`), and ``--set``, ``--sweep``, ``--env`` and
``--sbatch-option`` items from its one ``KEY=VALUE`` parser (values YAML 1.2; ``--env`` and
``--sbatch-option`` values stay text).  ``--dump-config FILE`` writes the resolved run file
(training, execution:, cluster:) and submits nothing.  Bad input: one line, exit 2, no job.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from launcher.config import ClusterConfig
from launcher.errors import PreflightError, RunNotFoundError
from ptycho_torch.cli.fields import (
    OneLineParser,
    add_dump_config_flag,
    add_field_flags,
    flag_overrides,
    parse_key_values,
)

SUBCOMMANDS = ("status", "logs", "cancel", "list", "resume")
EXECUTION_PREFIX = "execution."
CLUSTER_PREFIX = "cluster."


def build_submit_parser() -> argparse.ArgumentParser:
    from launcher.backend import execution_model
    from launcher.rundir import default_runs_dir

    parser = OneLineParser(
        prog="ptycho-launch", description="Train ptycho_torch on SLURM through submitit, or locally.",
        epilog="Lifecycle: ptycho-launch status [RUN] | logs RUN [--rank R] [-f] | cancel RUN | resume RUN | list")
    parser.add_argument("--config", required=True, type=Path, help="run file (YAML/JSON): training config with optional execution: and cluster: sections")
    parser.add_argument("--cluster", dest="cluster_file", type=Path, default=None, help="cluster file (YAML): ClusterConfig fields, top level or under cluster:")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field with a dotted key (nepochs=5, model.N=64, execution.devices=2); repeatable")
    parser.add_argument("--sweep", action="append", default=[], metavar="K=V[,K=V]",
                        help="one sweep member (overrides); repeat for more; all members run as one job array")
    parser.add_argument("--sweep-file", type=Path, default=None, help="YAML list of override mappings, one per sweep member")
    parser.add_argument("--run-id", default=None, help="run id (folder name); reusing one with the same config resumes it")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(), help="where run directories go (default: $PTYCHO_RUNS_DIR or ./runs)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--local", action="store_true", help="run the same job here, SLURM variables scrubbed; --devices N starts N local ranks (CPU gloo or this machine's GPUs)")
    mode.add_argument("--dry-run", action="store_true", help="print the sbatch script, srun line, environment and Trainer arguments; submit nothing")
    mode.add_argument("--explain", action="store_true", help="print where every setting came from, the accelerator chosen and why, and the per-rank resources; submit nothing")
    parser.add_argument("--wait", action="store_true", help="block until the job ends (requeues included); exit 1 if it failed")
    parser.add_argument("--force", action="store_true", help="with --run-id of a run whose job is still pending/running: cancel that job first")
    add_dump_config_flag(parser)
    add_field_flags(parser, execution_model(), path_prefix=EXECUTION_PREFIX, title="execution (ExecutionConfig)",
                    aliases={"num_nodes": ["--nodes"]})
    add_field_flags(parser, ClusterConfig, path_prefix=CLUSTER_PREFIX, title="cluster (ClusterConfig)",
                    aliases={"sbatch_options": ["--sbatch-option", "--sbatch-arg"]})
    return parser


def section_flags(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The field flags given for one section (``execution.`` or ``cluster.``), by field name."""
    dest_prefix = "field__" + prefix.replace(".", "__")
    destinations = {dest: dest[len(dest_prefix):] for dest in vars(args) if dest.startswith(dest_prefix)}
    return flag_overrides(args, destinations)


def build_lifecycle_parser() -> argparse.ArgumentParser:
    from launcher.rundir import default_runs_dir

    parser = OneLineParser(prog="ptycho-launch", description="Follow launched runs.")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(), help="where run directories are")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    p = sub.add_parser("status", help="scheduler and training state of a run (all runs without RUN)")
    p.add_argument("run", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("logs", help="per-rank logs of a run")
    p.add_argument("run")
    p.add_argument("--rank", type=int, default=None, help="only this global rank")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--stderr", action="store_true", help="only the .err files")
    p = sub.add_parser("cancel", help="cancel the run's job (scancel)")
    p.add_argument("run")
    sub.add_parser("list", help="all runs under --runs-dir")
    p = sub.add_parser("resume", help="submit the run again; it continues from its newest checkpoint")
    p.add_argument("run")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--force", action="store_true", help="cancel the run's pending/running job first (else refused)")
    return parser


def sweep_members(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The sweep's override mappings from --sweep-file and --sweep, in order."""
    import yaml

    from ptycho_torch.config.io import RunFileLoader, parse_scalar

    members: list[dict[str, Any]] = []
    if args.sweep_file is not None:
        if not args.sweep_file.is_file():
            raise PreflightError("sweep file not found", where=str(args.sweep_file), hint="check --sweep-file")
        data = yaml.load(args.sweep_file.read_text(encoding="utf-8"), Loader=RunFileLoader)  # safe: SafeLoader subclass
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise PreflightError("sweep file must hold a YAML list of mappings", where=str(args.sweep_file),
                                 found=type(data).__name__, hint="- {nepochs: 5}\\n- {nepochs: 10}")
        members += [dict(m) for m in data]
    for item in args.sweep:
        if item.strip().startswith("{"):
            member = parse_scalar(item)
            if not isinstance(member, dict):
                raise PreflightError("a --sweep mapping must be a YAML mapping", where="--sweep", found=repr(item),
                                     hint="--sweep '{nepochs: 5, batch_size: 8}' or --sweep nepochs=5,batch_size=8")
            members.append(dict(member))
        else:
            members.append(parse_key_values(item.split(","), "--sweep", example="nepochs=5,batch_size=8"))
    return members


def main_submit(argv: Sequence[str]) -> int:
    from launcher import registry, submit
    from launcher.config import read_cluster_file
    from launcher.preflight import run_preflight
    from launcher.prepare import LaunchRequest, resolve_run, write_run

    args = build_submit_parser().parse_args(argv)
    exec_flags = section_flags(args, EXECUTION_PREFIX)
    layers = ([read_cluster_file(args.cluster_file)] if args.cluster_file else []) + [section_flags(args, CLUSTER_PREFIX)]
    command = ("ptycho-launch", *argv)
    base = LaunchRequest(config_path=args.config, overrides=parse_key_values(args.overrides, "--set", example="nepochs=5 or --set model.N=128"),
                         execution_flags=exec_flags, cluster_layers=tuple(layers), runs_dir=args.runs_dir,
                         run_id=args.run_id, local=args.local, command=command)
    mode = "local" if args.local else "slurm"
    members = sweep_members(args)
    if members and args.dump_config:
        raise PreflightError("--dump-config writes one run file, a sweep has several", where="--dump-config", found=f"{len(members)} sweep members",
                             hint="dump each member separately: --set its overrides instead of --sweep")
    if members:
        return _submit_sweep(args, base, members, mode, command)
    prepared = resolve_run(base, mode=mode)
    if args.dump_config:
        return _dump_config(prepared, args.dump_config, command)
    run_preflight(prepared, scheduler=not (args.local or args.dry_run or args.explain))
    if args.dry_run:
        print(render_dry_run(prepared))
        return 0
    if args.explain:
        print(render_explain(prepared))
        return 0
    if prepared.run.exists() and not args.local:
        registry.refuse_if_active(prepared.run, force=args.force, action="reusing --run-id")
    run = write_run(prepared, command)
    if args.local:
        code = submit.run_local(prepared)
        print(registry.format_status(registry.run_status(run)))
        return 0 if code == 0 else 1
    job_id = submit.submit_run(prepared)
    print(f"submitted job {job_id} for run {run.run_id}\n  run dir  {run.path}\n"
          f"  follow   ptycho-launch status {run.run_id}   |   ptycho-launch logs {run.run_id} -f")
    if args.wait:
        return _report_wait(run)
    return 0


def _dump_config(prepared: Any, path: Path, command: tuple[str, ...]) -> int:
    """--dump-config: the run file the job would train with (training, execution, cluster), then exit 0."""
    from ptycho_torch.config.io import dump_run_file, resolved_run_sections

    payload = prepared.payload
    sections = resolved_run_sections(payload.training, payload.execution, cluster=prepared.cluster)
    written = dump_run_file(path, sections, command=" ".join(command))
    print(f"wrote the resolved run file to {written} (config hash: {prepared.config_hash}); nothing was submitted")
    return 0


def _submit_sweep(args: argparse.Namespace, base: Any, members: list[dict[str, Any]], mode: str, command: tuple[str, ...]) -> int:
    from dataclasses import replace

    from launcher import submit
    from launcher.preflight import run_preflight
    from launcher.prepare import resolve_run, write_run
    from launcher.rundir import new_run_id

    if args.local:
        raise PreflightError("sweeps run as SLURM job arrays", where="--sweep", found="--local", hint="drop --local, or run members one by one")
    sweep_id = args.run_id or new_run_id(args.config.stem)
    prepared = [resolve_run(replace(base, overrides={**base.overrides, **m}, run_id=f"{sweep_id}-{k}"), mode="slurm-array")
                for k, m in enumerate(members)]
    first = prepared[0]
    for k, p in enumerate(prepared[1:], start=1):
        if p.resources != first.resources or p.cluster != first.cluster:
            raise PreflightError("sweep members must share execution and cluster settings (one job array)",
                                 where=f"sweep member {k}", found=str(members[k]), hint="sweep only training fields; launch other resources separately")
    for p in prepared:
        run_preflight(p, scheduler=not args.dry_run)
    if args.dry_run:
        print(render_dry_run(first, array_size=len(prepared)))
        print("\n## sweep members (one array task each)")
        for p, m in zip(prepared, members):
            print(f"{p.run.run_id}: {json.dumps(m, sort_keys=True)}")
        return 0
    from launcher import registry

    for p in prepared:
        if p.run.exists():
            registry.refuse_if_active(p.run, force=args.force, action="reusing --run-id")
    for p in prepared:
        write_run(p, command)
    log_dir = args.runs_dir.expanduser().resolve() / "_sweeps" / sweep_id
    log_dir.mkdir(parents=True, exist_ok=True)
    ids = submit.submit_sweep(prepared, log_dir)
    for p, job_id in zip(prepared, ids):
        print(f"submitted array task {job_id} for run {p.run.run_id}")
    if args.wait:
        return max(_report_wait(p.run) for p in prepared)
    return 0


def _report_wait(run: Any) -> int:
    from launcher import registry

    info = registry.wait_for(run)
    print(registry.format_status(info))
    return 0 if info["status"] == "COMPLETED" else 1


def render_dry_run(prepared: Any, array_size: int | None = None) -> str:
    """The dry-run report: run dir, the exact sbatch script, the srun line, environment, Trainer arguments."""
    from launcher.spec import task_environment
    from launcher.submit import render_sbatch

    script = render_sbatch(prepared, array_size=array_size)
    srun = next((line for line in script.splitlines() if line.startswith("srun ")), "")
    env = task_environment(prepared.cluster, prepared.resources)
    trainer = prepared.payload.trainer_kwargs()
    parts = ["# ptycho-launch --dry-run: nothing was submitted and no run directory was created",
             f"## run directory\n{prepared.run.path}",
             f"## config hash\n{prepared.config_hash}",
             render_target(prepared),
             f"## sbatch script\n{script.rstrip()}",
             f"## srun line\n{srun}",
             "## environment of every task\n" + "\n".join(f"{k}={v}" for k, v in env.items())
             + "\nSRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK\nMASTER_PORT=(chosen by the batch step from the job id, in shell)",
             "## Lightning Trainer arguments\n" + json.dumps(trainer, indent=2, sort_keys=True, default=str)]
    return "\n\n".join(parts)


def render_target(prepared: Any) -> str:
    """The accelerator chosen for where the job runs, why, and the per-rank resources derived from the node."""
    from launcher.spec import cpus_per_task, memory_request, threads_per_task

    target, res, cluster = prepared.target, prepared.resources, prepared.cluster
    lines = ["## accelerator and resources per rank"]
    if target is not None:
        lines.append(f"accelerator: {res.accelerator} ({target.reason})")
        if target.node is not None:
            lines.append(f"node of partition {target.partition}: {target.node.cpus} cores, {target.node.mem_mb} MB, {target.node.gpus} GPU(s)")
    lines.append(f"tasks per node: {res.devices} x {res.num_nodes} node(s)" + (f", --gpus-per-node={res.devices}" if res.uses_gpu else ""))
    cpus_src = "cluster.cpus_per_task" if cluster.cpus_per_task is not None else ("the node's share" if res.node else "num_workers + 1")
    lines.append(f"cpus per task: {cpus_per_task(cluster, res)} ({cpus_src}); OMP_NUM_THREADS={threads_per_task(cluster, res)}")
    memory = memory_request(cluster, res)
    lines.append("memory: " + (", ".join(f"--{k.replace('_', '-')}={v}" for k, v in memory.items()) or "the cluster's default per CPU"))
    return "\n".join(lines)


def render_explain(prepared: Any) -> str:
    """--explain: the provenance table of every field, then the accelerator choice and resources."""
    return "\n\n".join([prepared.payload.explain().rstrip(), render_target(prepared)])


def main_lifecycle(argv: Sequence[str]) -> int:
    from launcher import registry
    from launcher.rundir import find_run, list_runs

    args = build_lifecycle_parser().parse_args(argv)
    if args.command == "list" or (args.command == "status" and args.run is None):
        runs = list_runs(args.runs_dir)
        if args.command == "status" and getattr(args, "json", False):
            print(json.dumps([registry.run_status(r) for r in runs], indent=2))
            return 0
        print(f"{'RUN':48} {'JOB':>10} {'SCHEDULER':>10} {'STATUS':>10} {'STEP':>6}")
        for run in runs:
            info = registry.run_status(run)
            step = info["global_step"] if info["global_step"] is not None else "-"
            print(f"{info['run_id']:48} {info['job_id'] or '-':>10} {info['scheduler'] or '-':>10} {info['status']:>10} {step!s:>6}")
        return 0
    run = find_run(args.run, args.runs_dir)
    if args.command == "status":
        info = registry.run_status(run)
        print(json.dumps(info, indent=2) if args.json else registry.format_status(info))
        return 0
    if args.command == "logs":
        world = int(run.state().get("world_size") or run.launch().get("world_size") or 1)
        if args.rank is not None and not 0 <= args.rank < world:
            raise RunNotFoundError("no such rank", where="--rank", expected=f"0..{world - 1} (world size {world})",
                                   found=str(args.rank), hint="omit --rank to see every rank")
        registry.run_status(run)  # reconcile the record with the scheduler
        files = [f for f in registry.log_files(run, rank=args.rank) if not args.stderr or f.suffix == ".err"]
        if not files and not args.follow:
            print(f"no logs yet for run {run.run_id} (job {run.job_id or '-'})", file=sys.stderr)
            return 0
        def ended() -> bool:
            sched = registry.scheduler_state(run.job_id) if run.job_id else None
            return sched is None or sched in registry.TERMINAL_STATES
        if args.follow and not files:
            import time
            while not files and not ended():
                time.sleep(0.5)
                files = [f for f in registry.log_files(run, rank=args.rank) if not args.stderr or f.suffix == ".err"]
        registry.print_logs(files, follow=args.follow, stop_when=ended)
        return 0
    if args.command == "cancel":
        sched = registry.scheduler_state(run.job_id) if run.job_id else None
        if sched is not None and sched in registry.TERMINAL_STATES:
            info = registry.run_status(run)
            print(f"job {run.job_id} of run {run.run_id} already ended ({sched}); nothing to cancel (training {info['status']})")
            return 0
        job_id = registry.cancel(run)
        print(f"cancelled job {job_id} of run {run.run_id}")
        return 0
    return _resume(run, args.wait, args.force)


def _resume(run: Any, wait: bool, force: bool = False) -> int:
    from launcher import backend, registry, submit
    from launcher.config import build_cluster_config
    from launcher.preflight import run_preflight
    from launcher.prepare import PreparedRun
    from launcher.spec import Resources

    payload = backend.create_training_payload(run.config_file)
    cluster = build_cluster_config(payload.cluster, where=f"{run.config_file}:cluster")
    mode = run.launch().get("mode", "slurm")
    if payload.config_hash != run.launch().get("config_hash"):
        raise PreflightError("config/run.yaml no longer matches the launched config", where=str(run.config_file),
                             hint="launch a new run instead of resuming this one")
    from launcher.prepare import target_for
    from launcher.snapshot import plan_snapshot, take_snapshot

    target = target_for(payload.execution.accelerator, mode, cluster.partition)  # explicit by now: reads the node
    code = plan_snapshot("check" if mode == "sbatch" and cluster.code_snapshot == "copy" else cluster.code_snapshot, run.path.parent)
    prepared = PreparedRun(run=run, payload=payload, cluster=cluster, mode=mode, target=target, code=code,
                           resources=Resources.from_execution(payload.execution, node=target.node))
    run_preflight(prepared, scheduler=mode != "local")
    if mode != "local":
        registry.refuse_if_active(run, force=force, action="resume")
    run.update_launch(code_snapshot=take_snapshot(code, run.path))  # a resume runs the code present now
    run.update_state(requeues=0)
    if mode == "local":
        return 0 if submit.run_local(prepared) == 0 else 1
    job_id = submit.submit_run(prepared)
    print(f"resubmitted run {run.run_id} as job {job_id}")
    return _report_wait(run) if wait else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``ptycho-launch``)."""
    from ptycho_torch.cli.common import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)

    def _main(a: Sequence[str] | None) -> int:
        a = list(a or [])
        rest = a[2:] if a[:1] == ["--runs-dir"] else a[1:] if a and a[0].startswith("--runs-dir=") else a
        if rest and rest[0] in SUBCOMMANDS:
            return main_lifecycle(a)
        return main_submit(a)

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
