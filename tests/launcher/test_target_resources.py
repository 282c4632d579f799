"""Accelerator resolved for where the job runs, per-rank resources from the node, the GPU path rendered.

The sinfo text below is the output format of ``sinfo -h -o '%P|%G|%c|%m|%D'``: the first two
lines were recorded on the dev cluster (slurm/dev/up.sh: partition gpu has 2 placeholder GPUs),
the others are the shapes of typical GPU/CPU partitions (typed GRES, socket suffix).  The
real-cluster version of these checks is tests/slurm/test_cluster_options.py.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from launcher.config import ClusterConfig, build_cluster_config
from launcher.errors import ClusterConfigError
from launcher.spec import (
    Resources,
    cpus_per_task,
    memory_request,
    sbatch_directives,
    slurm_parameters,
    task_environment,
)
from launcher.target import NodeShape, gpus_in_gres, parse_sinfo, resolve_target

RECORDED_SINFO = """debug*|(null)|2|11051|2
gpu|gpu:2|2|11051|1
a100|gpu:a100:8(S:0-1)|64|512000|4
a100|gpu:a100:8(S:0-1)|48|384000|2
cpu|(null)|128|256000|50
"""


def test_gres_parsing():
    assert gpus_in_gres("(null)") == 0
    assert gpus_in_gres("gpu:2") == 2
    assert gpus_in_gres("gpu:a100:8(S:0-1)") == 8
    assert gpus_in_gres("gpu:a100:4,gpu:v100:2") == 6
    assert gpus_in_gres("shard:4") == 0


def test_sinfo_partitions_and_smallest_node():
    shapes = parse_sinfo(RECORDED_SINFO)
    assert shapes["(default)"] == shapes["debug"] == [NodeShape(2, 11051, 0)]
    target = resolve_target("auto", mode="slurm", partition="a100", sinfo_text=RECORDED_SINFO)
    assert target.accelerator == "gpu" and target.node == NodeShape(48, 384000, 8)  # every node can give this
    assert "8 GPU(s) per node" in target.reason and target.source == "sinfo"


@pytest.mark.parametrize("partition, expected", [("gpu", "gpu"), ("a100", "gpu"), ("cpu", "cpu"), ("debug", "cpu"), (None, "cpu")])
def test_auto_follows_the_partition(partition, expected):
    target = resolve_target("auto", mode="slurm", partition=partition, sinfo_text=RECORDED_SINFO)
    assert target.accelerator == expected, target
    if partition is None:
        assert target.partition == "debug"  # the default partition is named


def test_explicit_and_unknown():
    assert resolve_target("cpu", mode="slurm", partition="gpu", sinfo_text=RECORDED_SINFO).accelerator == "cpu"
    assert resolve_target("cuda", mode="slurm", partition="cpu", sinfo_text=RECORDED_SINFO).accelerator == "gpu"
    no_sinfo = resolve_target("auto", mode="slurm", partition="gpu", sinfo_text=None)
    assert no_sinfo.accelerator == "cpu" and "sinfo" in no_sinfo.reason and no_sinfo.source == "unknown"
    assert resolve_target("auto", mode="local", cuda_available=True).accelerator == "gpu"
    assert resolve_target("auto", mode="local", cuda_available=False).accelerator == "cpu"


def test_gpu_job_resources_from_the_node():
    """--nodes 4 --devices 8 on an 8-GPU, 64-core node: 8 GPUs, 8 cores and 1/8 of the memory per rank."""
    node = NodeShape(cpus=64, mem_mb=512000, gpus=8)
    res = Resources(devices=8, num_nodes=4, num_workers=3, accelerator="gpu", node=node)
    cluster = ClusterConfig(partition="a100")
    params = slurm_parameters(cluster, res)
    assert params["gpus_per_node"] == 8 and params["ntasks_per_node"] == 8 and params["nodes"] == 4
    assert cpus_per_task(cluster, res) == 8 and params["cpus_per_task"] == 8
    assert params["mem_per_gpu"] == "64000M" and "mem" not in params
    env = task_environment(cluster, res)
    assert env["OMP_NUM_THREADS"] == "5"  # 8 cores minus 3 dataloader workers
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"
    directives = sbatch_directives(params)
    assert "#SBATCH --gpus-per-node=8" in directives and "#SBATCH --mem-per-gpu=64000M" in directives


def test_cpu_job_resources_from_the_node():
    node = NodeShape(cpus=128, mem_mb=256000, gpus=0)
    res = Resources(devices=4, num_nodes=2, num_workers=0, accelerator="cpu", node=node)
    cluster = ClusterConfig()
    assert cpus_per_task(cluster, res) == 32
    assert memory_request(cluster, res) == {"mem_per_cpu": "2000M"}
    assert task_environment(cluster, res)["OMP_NUM_THREADS"] == "32"
    assert "TORCH_NCCL_ASYNC_ERROR_HANDLING" not in task_environment(cluster, res)
    # explicit values win; without a node the old rule (num_workers + 1, the cluster's memory default)
    assert cpus_per_task(ClusterConfig(cpus_per_task=3), res) == 3
    assert memory_request(ClusterConfig(mem="10G"), res) == {"mem": "10G"}
    bare = Resources(devices=4, num_nodes=1, num_workers=2, accelerator="cpu")
    assert cpus_per_task(cluster, bare) == 3 and memory_request(cluster, bare) == {}


def test_signal_passthrough_and_array_limit_render():
    cluster = ClusterConfig(preempt_signal="TERM", signal_lead_s=200,
                            sbatch_options={"exclude": "node1", "mail-type": "END,FAIL", "contiguous": ""}, array_limit=3)
    params = slurm_parameters(cluster, Resources(1, 1, 0, "cpu"))
    directives = sbatch_directives(params)
    assert "#SBATCH --signal=TERM@200" in directives and "#SBATCH --exclude=node1" in directives
    assert "#SBATCH --mail-type=END,FAIL" in directives and "#SBATCH --contiguous" in directives
    assert params["array_parallelism"] == 3 and not any("array" in d for d in directives)


@pytest.mark.parametrize("layer, where", [
    ({"sbatch_options": {"time": "5"}}, "cluster.sbatch_options"),
    ({"sbatch_options": {"Bad Name": "x"}}, "cluster.sbatch_options"),
    ({"mem": "4G", "mem_per_gpu": "8G"}, "cluster"),
    ({"preempt_signal": "KILL"}, "cluster.preempt_signal"),
    ({"array_limit": 0}, "cluster.array_limit"),
])
def test_bad_cluster_options_are_one_line(layer, where):
    with pytest.raises(ClusterConfigError) as info:
        build_cluster_config(layer)
    line = info.value.one_line()
    assert "\n" not in line and where in line, line


def test_slurm_environment_takes_master_addr_from_the_first_node(monkeypatch):
    """What each rank sees under srun: Lightning reads MASTER_ADDR from the allocation's first node."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    for key, value in {"SLURM_NODELIST": "gpu[07-08,11]", "SLURM_JOB_NAME": "ptycho-train", "SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8",
                       "SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "MASTER_PORT": "12345"}.items():
        monkeypatch.setenv(key, value)
    # Lightning's main_address writes MASTER_ADDR into os.environ: set-then-delete records it, so
    # the test's end removes it (a leaked value would reach every later sbatch job of the session)
    monkeypatch.setenv("MASTER_ADDR", "set-by-this-test")
    monkeypatch.delenv("MASTER_ADDR")
    env = SLURMEnvironment(auto_requeue=False)
    assert env.main_address == "gpu07" and env.main_port == 12345
    assert env.global_rank() == 9 and env.local_rank() == 1 and env.world_size() == 16


def test_rank_info_under_srun_comes_from_lightnings_slurm_environment(monkeypatch):
    """The launcher's rank, local rank and world size are SLURMEnvironment's (no real SLURM needed)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from launcher.job import RankInfo

    for key, value in {"SLURM_JOB_ID": "77", "SLURM_JOB_NAME": "ptycho-train", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4",
                       "SLURM_NNODES": "2", "SLURM_PROCID": "6", "SLURM_LOCALID": "2", "SLURM_NODEID": "1",
                       "SLURMD_NODENAME": "gpu02"}.items():
        monkeypatch.setenv(key, value)
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    info = RankInfo.from_env()
    slurm = SLURMEnvironment(auto_requeue=False)
    assert (info.rank, info.local_rank, info.world_size) == (slurm.global_rank(), slurm.local_rank(), slurm.world_size())
    assert (info.rank, info.local_rank, info.world_size, info.job_id, info.node) == (6, 2, 8, "77", "gpu02")
    assert info.under_slurm and slurm.node_rank() == 1


def test_rank_info_outside_slurm(monkeypatch):
    from launcher.job import RankInfo

    for key in ("SLURM_PROCID", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("RANK", raising=False)
    info = RankInfo.from_env()
    assert (info.rank, info.local_rank, info.world_size, info.under_slurm) == (0, 0, 1, False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    info = RankInfo.from_env()
    assert (info.rank, info.local_rank, info.world_size, info.under_slurm) == (1, 1, 2, False)


def _dry_run(run_file: Path, tmp_path: Path, capsys, monkeypatch, *args: str) -> str:
    from launcher.cli import main

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no SLURM here: explicit choices only
    code = main(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--dry-run", *args])
    assert code == 0
    return capsys.readouterr().out


def test_dry_run_of_a_gpu_job_reaches_the_trainer(run_file, tmp_path, capsys, monkeypatch):
    out = _dry_run(run_file, tmp_path, capsys, monkeypatch, "--nodes", "4", "--devices", "8", "--accelerator", "gpu",
                   "--precision", "bf16-mixed", "--strategy", "ddp", "--mem-per-gpu", "40G", "--preempt-signal", "USR1")
    assert "#SBATCH --gpus-per-node=8" in out and "#SBATCH --mem-per-gpu=40G" in out and "#SBATCH --signal=USR1@60" in out
    assert "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in out
    assert '"accelerator": "gpu"' in out and '"precision": "bf16-mixed"' in out and '"strategy": "ddp"' in out
    assert '"devices": 8' in out and '"num_nodes": 4' in out
    assert "accelerator: gpu (accelerator 'gpu' was asked for)" in out


def test_dry_run_without_sinfo_says_why_auto_is_cpu(run_file, tmp_path, capsys, monkeypatch):
    import yaml

    config = yaml.safe_load(run_file.read_text())
    config["execution"]["accelerator"] = "auto"
    run_file.write_text(yaml.safe_dump(config))
    out = _dry_run(run_file, tmp_path, capsys, monkeypatch, "--nodes", "4", "--devices", "8", "--partition", "gpu")
    assert "sinfo is not on PATH or did not answer" in out and "--gpus-per-node" not in out
    assert '"accelerator": "cpu"' in out


def test_preemption_signal_names():
    from launcher.preempt import preempt_signals

    assert preempt_signals("TERM") == (signal.SIGTERM,) and preempt_signals("USR1") == (signal.SIGUSR1,)
