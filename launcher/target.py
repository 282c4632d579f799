"""Where the job runs decides the accelerator and the per-rank resources.

``accelerator: auto`` must not be resolved where ``ptycho-launch`` is typed (usually a login
node without GPUs).  :func:`resolve_target` resolves it for the place the job will run:

- SLURM mode: from the partition's nodes as ``sinfo`` reports them (GRES ``gpu:N``, CPUs,
  memory).  A partition whose nodes have GPUs gives a GPU job (``--gpus-per-node=devices``,
  a GPU Trainer); one without gives a CPU job.
- local mode: from this machine (``torch.cuda.is_available()``).
- no ``sinfo`` on PATH (a dry run on a laptop): the partition cannot be read, so the job is
  rendered for the CPU and the reason says how to get a GPU job.

The same node shape gives the per-rank defaults of :mod:`launcher.spec` when the cluster
config leaves them open: cores per task (a GPU's share of the node on GPU partitions, the
node's cores divided by tasks per node otherwise) and memory (``--mem-per-gpu`` = the
node's memory divided by its GPUs; ``--mem-per-cpu`` = memory divided by cores on CPU
partitions, so memory follows the cores taken).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

SINFO_FORMAT = "%P|%G|%c|%m|%D"
_GPU_GRES_RE = re.compile(r"(?:^|,)gpu(?::[A-Za-z0-9_.-]+)?:(\d+)")
_SINFO_TIMEOUT_S = 30


@dataclass(frozen=True)
class NodeShape:
    """The smallest node of a partition: what one node can give a job."""

    cpus: int
    mem_mb: int
    gpus: int


@dataclass(frozen=True)
class Target:
    """Where the job runs, the accelerator chosen for it, and why."""

    accelerator: str  # 'gpu' or 'cpu' (or an explicit choice passed through)
    reason: str
    source: str  # 'sinfo', 'this machine', 'requested', 'unknown'
    partition: str | None = None
    node: NodeShape | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready form for the run directory's launch record."""
        out = asdict(self)
        out["node"] = asdict(self.node) if self.node else None
        return out


def gpus_in_gres(gres: str) -> int:
    """GPUs per node in a ``sinfo %G`` field (``gpu:8``, ``gpu:a100:4(S:0-1)``, ``(null)`` -> 0)."""
    text = gres.strip()
    return sum(int(m) for m in _GPU_GRES_RE.findall(re.sub(r"\([^)]*\)", "", text)))


def parse_sinfo(text: str) -> dict[str, list[NodeShape]]:
    """``sinfo -h -o '%P|%G|%c|%m|%D'`` output -> partition -> node shapes (one line per node group).

    The default partition's trailing ``*`` is removed; ``(default)`` names it too.
    """
    shapes: dict[str, list[NodeShape]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[2].strip().rstrip("+").isdigit():
            continue
        name, gres, cpus, mem, _count = (p.strip() for p in parts)
        shape = NodeShape(cpus=int(cpus.rstrip("+")), mem_mb=int(mem.rstrip("+")) if mem.rstrip("+").isdigit() else 0,
                          gpus=gpus_in_gres(gres))
        if name.endswith("*"):
            shapes.setdefault("(default)", []).append(shape)
            name = name[:-1]
        shapes.setdefault(name, []).append(shape)
    return shapes


def smallest_node(shapes: list[NodeShape]) -> NodeShape:
    """The node shape every node of the partition can give (minimum of each resource)."""
    return NodeShape(cpus=min(s.cpus for s in shapes), mem_mb=min(s.mem_mb for s in shapes), gpus=min(s.gpus for s in shapes))


def read_sinfo() -> str | None:
    """The partitions' node resources from ``sinfo``; None when SLURM is not on PATH or does not answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=_SINFO_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def partition_node(sinfo_text: str | None, partition: str | None) -> tuple[str | None, NodeShape | None]:
    """(partition name, its smallest node) from sinfo output; the default partition when ``partition`` is None."""
    if sinfo_text is None:
        return partition, None
    shapes = parse_sinfo(sinfo_text)
    key = partition or "(default)"
    if key not in shapes:
        return partition, None
    if partition is None:  # name the default partition
        named = [name for name, s in shapes.items() if name != "(default)" and s == shapes["(default)"]]
        partition = named[0] if named else None
    return partition, smallest_node(shapes[key])


def resolve_target(requested: str, *, mode: str, partition: str | None = None, sinfo_text: str | None = None,
                   cuda_available: bool | None = None) -> Target:
    """The accelerator for where the job runs (see the module docstring); explicit choices pass through.

    ``mode`` is 'local' or a SLURM mode ('slurm', 'slurm-array', 'sbatch').  ``sinfo_text`` is
    the output of ``sinfo -h -o '%P|%G|%c|%m|%D'`` (None: SLURM not reachable here).
    """
    explicit = "gpu" if requested == "cuda" else requested
    if mode == "local":
        if explicit != "auto":
            return Target(explicit, f"accelerator '{requested}' was asked for", "requested")
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        return (Target("gpu", "accelerator auto, local run: this machine has CUDA", "this machine") if cuda_available
                else Target("cpu", "accelerator auto, local run: this machine has no CUDA GPU", "this machine"))
    name, node = partition_node(sinfo_text, partition)
    where = f"partition '{name}'" if name else "the default partition"
    if explicit != "auto":
        return Target(explicit, f"accelerator '{requested}' was asked for", "requested", name, node)
    if sinfo_text is None:
        return Target("cpu", "accelerator auto, but sinfo is not on PATH or did not answer, so the partition's resources are "
                      "unknown: rendered as a CPU job (run on the login node, or pass --accelerator gpu)", "unknown", partition, None)
    if node is None:
        return Target("cpu", f"accelerator auto: sinfo does not list {where}; CPU job", "sinfo", name, None)
    if node.gpus > 0:
        return Target("gpu", f"accelerator auto: {where} has {node.gpus} GPU(s) per node (sinfo GRES)", "sinfo", name, node)
    return Target("cpu", f"accelerator auto: {where} has no GPU GRES (sinfo); CPU job", "sinfo", name, node)
