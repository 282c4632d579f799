"""ClusterConfig validation and the SLURM parameters derived from execution + cluster configs."""

from __future__ import annotations

import pytest

from launcher.config import build_cluster_config, time_to_minutes
from launcher.errors import ClusterConfigError
from launcher.spec import Resources, sbatch_directives, setup_lines, slurm_parameters, task_environment


@pytest.mark.parametrize("text,minutes", [("90", 90), ("01:30", 2), ("04:00:00", 240), ("1-00", 1440),
                                          ("1-02:03", 1563), ("0-00:00:01", 1), ("2-00:00:00", 2880)])
def test_time_to_minutes(text, minutes):
    assert time_to_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "0", "00:00:00", "-5"])
def test_time_rejects(text):
    with pytest.raises(ValueError):
        time_to_minutes(text)


def test_layers_merge_later_wins():
    cfg = build_cluster_config({"partition": "a", "time": "10"}, None, {"partition": "b"})
    assert cfg.partition == "b" and cfg.time_min == 10


def test_unknown_key_is_one_line_with_suggestion():
    with pytest.raises(ClusterConfigError) as info:
        build_cluster_config({"partiton": "gpu"})
    line = info.value.one_line()
    assert "unknown cluster key 'partiton'" in line and "did you mean 'partition'" in line and "\n" not in line


@pytest.mark.parametrize("layer,field", [({"mem": "lots"}, "mem"), ({"time": "soon"}, "time"),
                                         ({"env": {"1BAD": "x"}}, "env"), ({"cpus_per_task": 0}, "cpus_per_task"),
                                         ({"requeue_budget": -1}, "requeue_budget")])
def test_invalid_values_name_the_field(layer, field):
    with pytest.raises(ClusterConfigError) as info:
        build_cluster_config(layer)
    assert f"cluster.{field}" in info.value.one_line() and "HINT" in info.value.one_line()


def test_tasks_and_nodes_come_from_execution():
    cluster = build_cluster_config({"partition": "gpu", "time": "04:00:00", "exclusive": True, "mem": "64G"})
    res = Resources(devices=8, num_nodes=4, num_workers=3, accelerator="gpu")
    params = slurm_parameters(cluster, res)
    assert params["nodes"] == 4 and params["ntasks_per_node"] == 8 and params["gpus_per_node"] == 8
    assert params["cpus_per_task"] == 4 and params["time"] == 240 and params["exclusive"] is True
    assert params["signal_delay_s"] == cluster.signal_lead_s
    assert "--kill-on-bad-exit=1" in params["srun_args"]
    assert "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in params["setup"]
    assert params["setup"][0] == "set -e" and params["setup"][-1].endswith("export MASTER_PORT")


def test_cpu_job_has_no_gpus_and_one_thread_per_free_core():
    cluster = build_cluster_config({"cpus_per_task": 3, "env": {"OMP_NUM_THREADS": "5"}})
    res = Resources(devices=2, num_nodes=1, num_workers=1, accelerator="cpu")
    assert "gpus_per_node" not in slurm_parameters(cluster, res)
    assert task_environment(build_cluster_config({"cpus_per_task": 3}), res)["OMP_NUM_THREADS"] == "2"
    assert task_environment(cluster, res)["OMP_NUM_THREADS"] == "5"  # the user's env wins


def test_setup_order_and_quoting():
    cluster = build_cluster_config({"setup": ["module load cuda"], "env": {"A": "x y"}})
    lines = setup_lines(cluster, Resources(1, 1, 0, "cpu"))
    assert lines[:2] == ["set -e", "module load cuda"] and "export A='x y'" in lines
    assert lines[-1].startswith("MASTER_PORT=")


def test_sbatch_directives_render_like_submitit():
    cluster = build_cluster_config({"partition": "p", "exclusive": True})
    lines = sbatch_directives(slurm_parameters(cluster, Resources(2, 3, 0, "cpu")))
    assert lines == sorted(lines)
    assert "#SBATCH --nodes=3" in lines and "#SBATCH --ntasks-per-node=2" in lines
    assert "#SBATCH --exclusive" in lines and "#SBATCH --requeue" in lines and "#SBATCH --signal=USR2@120" in lines
    assert not any("setup" in line or "srun" in line for line in lines)


@pytest.mark.parametrize("job_id", ["1", "123", "22767", "987654321"])
def test_shell_master_port_matches_derive_port_and_needs_no_python(job_id):
    import subprocess

    from launcher.rendezvous import derive_port
    from launcher.spec import MASTER_PORT_LINE

    out = subprocess.run(["bash", "-c", f"set -e; {MASTER_PORT_LINE}; echo $MASTER_PORT"], env={"SLURM_JOB_ID": job_id, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) in range(derive_port(job_id), derive_port(job_id) + 64)


@pytest.mark.parametrize("python,container,expected", [
    ("env python3", None, "env python3"),
    ("touch M; python3", None, "touch 'M;' python3"),
    (["/opt/my py/bin/python"], "apptainer exec --nv img.sif", "apptainer exec --nv img.sif '/opt/my py/bin/python'"),
])
def test_python_is_a_quoted_word_list(python, container, expected):
    from launcher.spec import python_command

    cluster = build_cluster_config({"python": python, "container": container})
    assert python_command(cluster) == expected


@pytest.mark.parametrize("value", ["", "   ", ["python", ""], "python 'unclosed", ["py\nthon"]])
def test_bad_python_is_refused(value):
    with pytest.raises(ClusterConfigError) as info:
        build_cluster_config({"python": value})
    assert "cluster.python" in info.value.one_line() and "HINT" in info.value.one_line()
