"""Issue 10 on the real dev cluster: the partition decides the accelerator, sbatch passthrough,
array limit, preemption by SIGTERM and the code snapshot.

The dev cluster (slurm/dev/up.sh) has a CPU partition `debug` (node1, node2) and a partition
`gpu` (node3) with two placeholder GPUs: SLURM allocates them and sets CUDA_VISIBLE_DEVICES
for each task, but nothing can compute on them, so a GPU job there fails once the Trainer
looks for CUDA; the tests check what SLURM and the job saw up to that point.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import yaml

from slurm_helpers import job_count, launch, read, run_dir, wait_job_done, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _auto_run_file(workdir, name: str, **cluster) -> str:
    """A copy of run.yaml with accelerator auto and no cpus_per_task (both left to the partition)."""
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["execution"]["accelerator"] = "auto"
    config["cluster"].pop("cpus_per_task", None)
    config["cluster"].update(cluster)
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def _launch_file(workdir, config_name: str, *args: str, timeout: float = 300):
    import sys

    cmd = [sys.executable, "-m", "launcher.cli", "--config", str(workdir / config_name), "--runs-dir", str(workdir / "runs"), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_auto_renders_a_gpu_job_for_the_gpu_partition_and_a_cpu_job_for_debug(workdir):
    name = _auto_run_file(workdir, "auto.yaml")
    gpu = _launch_file(workdir, name, "--dry-run", "--partition", "gpu", "--nodes", "1", "--devices", "2")
    assert gpu.returncode == 0, gpu.stderr
    assert "#SBATCH --gpus-per-node=2" in gpu.stdout and '"accelerator": "gpu"' in gpu.stdout
    assert "partition 'gpu' has 2 GPU(s) per node (sinfo GRES)" in gpu.stdout
    assert "#SBATCH --cpus-per-task=1" in gpu.stdout  # 2 cores / 2 GPUs
    assert re.search(r"#SBATCH --mem-per-gpu=\d+M", gpu.stdout)
    cpu = _launch_file(workdir, name, "--dry-run", "--partition", "debug", "--nodes", "2", "--devices", "2")
    assert cpu.returncode == 0, cpu.stderr
    assert "--gpus-per-node" not in cpu.stdout and '"accelerator": "cpu"' in cpu.stdout
    assert "partition 'debug' has no GPU GRES (sinfo); CPU job" in cpu.stdout
    assert "#SBATCH --cpus-per-task=1" in cpu.stdout and re.search(r"#SBATCH --mem-per-cpu=\d+M", cpu.stdout)
    explain = _launch_file(workdir, name, "--explain", "--partition", "gpu", "--devices", "2")
    assert explain.returncode == 0 and "accelerator: gpu (accelerator auto: partition 'gpu'" in explain.stdout
    assert not (workdir / "runs").exists() or not any((workdir / "runs").glob("auto-*"))


def test_gpu_job_gets_its_gpus_from_slurm(workdir):
    """Submitted for real: SLURM allocates both GPUs and each task sees CUDA_VISIBLE_DEVICES=0,1;
    the record says why the job is a GPU job; the Trainer then fails (placeholder GPUs)."""
    name = _auto_run_file(workdir, "auto-gpu.yaml", requeue_budget=0)
    out = _launch_file(workdir, name, "--run-id", "gpu-1x2", "--partition", "gpu", "--devices", "2", "--strategy", "ddp")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "gpu-1x2")
    target = read(rd / "launch.json")["target"]
    assert target["accelerator"] == "gpu" and target["partition"] == "gpu" and target["node"]["gpus"] == 2
    job = read(rd / "launch.json")["job_ids"][-1]
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True).stdout
    assert "gres:gpu:2" in shown or "gres/gpu=2" in shown, shown
    wait_job_done(workdir, "gpu-1x2", timeout=240)
    lines = [line for f in sorted((rd / "logs").glob(f"{job}_*_log.out")) for line in f.read_text().splitlines()
             if line.startswith("[launcher] rank")]
    assert len(lines) == 2 and all("CUDA_VISIBLE_DEVICES=0,1" in line and "on node3" in line for line in lines), lines


def test_explicit_gpu_on_a_cpu_partition_is_refused(workdir):
    before = job_count()
    out = launch(workdir, "--run-id", "gpu-on-debug", "--accelerator", "gpu", "--partition", "debug")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "execution.accelerator" in lines[0] and "HINT" in lines[0], out.stderr
    assert job_count() == before and not run_dir(workdir, "gpu-on-debug").exists()


# (sbatch --test-only of Slurm 22.05 does not check dependencies: afterok:<no such job> passes it)
@pytest.mark.parametrize("option, value", [("nodelist", "node9"), ("reservation", "nosuch")])
def test_sbatch_option_refused_by_the_scheduler_names_it(workdir, option, value):
    before = job_count()
    out = launch(workdir, "--run-id", f"bad-{option}", "--sbatch-option", f"{option}={value}")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cluster.sbatch_options.{option}" in lines[0] and "HINT" in lines[0], out.stderr
    assert job_count() == before and not run_dir(workdir, f"bad-{option}").exists()


def test_sbatch_option_managed_by_the_launcher_is_refused(workdir):
    out = launch(workdir, "--run-id", "bad-time", "--sbatch-arg", "time=5")
    assert out.returncode == 2 and "use --time" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_array_limit_throttles_the_sweep(workdir):
    out = launch(workdir, "--run-id", "swp", "--sweep", "seed=1", "--sweep", "seed=2", "--sweep", "seed=3", "--array-limit", "1")
    assert out.returncode == 0, out.stderr
    job = read(run_dir(workdir, "swp-0") / "launch.json")["job_ids"][-1]
    array_id = job.split("_")[0]
    try:
        shown = subprocess.run(["scontrol", "-o", "show", "job", array_id], capture_output=True, text=True).stdout
        assert "ArrayTaskThrottle=1" in shown, shown
        running = subprocess.run(["squeue", "-h", "-j", array_id, "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True).stdout
        assert len(running.split()) <= 1
    finally:
        subprocess.run(["scancel", array_id], capture_output=True)


def test_sigterm_preemption_with_passthrough_and_code_snapshot(workdir):
    """preempt_signal TERM: SIGTERM to the job's steps -> agreed checkpoint -> requeue -> completes;
    --sbatch-option exclude=node1 puts it on node2; every attempt imports the submitted code copy."""
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["nepochs"] = 8
    config["cluster"].update({"preempt_signal": "TERM", "code_snapshot": "copy"})
    (workdir / "term.yaml").write_text(yaml.safe_dump(config))
    out = _launch_file(workdir, "term.yaml", "--run-id", "term", "--devices", "2", "--strategy", "ddp",
                       "--sbatch-option", "exclude=node1")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "term")
    launch_rec = read(rd / "launch.json")
    code = launch_rec["code_snapshot"]
    assert code["mode"] == "copy" and (rd.parent / "_code").is_dir() and os.path.isdir(code["path"])
    script = next((rd / "logs").glob("*_submission.sh")).read_text()
    assert "#SBATCH --signal=TERM@30" in script and "#SBATCH --exclude=node1" in script
    job = launch_rec["job_ids"][-1]
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 3, 180, poll=0.1, what="step 3")
    subprocess.run(["scancel", "--signal=TERM", job], check=True)
    wait_until(lambda: read(rd / "state.json").get("requeues", 0) >= 1, 120, poll=0.2, what="requeue after SIGTERM")
    state = wait_job_done(workdir, "term", timeout=300)
    assert state["status"] == "COMPLETED" and state["requeues"] == 1, state
    assert (rd / "checkpoints" / f"preempt-step={state['preempted_at_step']}.ckpt").is_file()
    ranks = [read(rd / "ranks" / f"rank-{r}.json") for r in (0, 1)]
    assert {r["node"] for r in ranks} == {"node2"}
    lines = [line for f in (rd / "logs").glob("*_log.out") for line in f.read_text().splitlines()
             if line.startswith("[launcher] rank") and " threads " in line]  # each rank's start line, both attempts
    assert len(lines) >= 4 and all(f"code {code['path']}" in line for line in lines), lines


def test_cancel_of_a_term_preempted_job_is_not_requeued(workdir):
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["nepochs"] = 40
    config["cluster"].update({"preempt_signal": "TERM"})
    (workdir / "term-cancel.yaml").write_text(yaml.safe_dump(config))
    out = _launch_file(workdir, "term-cancel.yaml", "--run-id", "term-cancel")
    assert out.returncode == 0, out.stderr
    rd = run_dir(workdir, "term-cancel")
    wait_until(lambda: read(rd / "progress.json").get("global_step", 0) >= 2, 180, poll=0.1, what="step 2")
    assert launch(workdir, "cancel", "term-cancel").returncode == 0
    time.sleep(3)
    state = wait_job_done(workdir, "term-cancel", timeout=120)
    assert state.get("requeues", 0) == 0 and state["status"] != "REQUEUED", state


def _plain_sbatch(workdir, config_name: str, run_id: str) -> str:
    from slurm_helpers import REPO

    out = subprocess.run(["sbatch", "--parsable", str(REPO / "slurm" / "train.sbatch"), str(workdir / config_name), run_id],
                         cwd=workdir, capture_output=True, text=True,
                         env={**os.environ, "PTYCHO_RUNS_DIR": str(workdir / "runs"), "PYTHON": __import__("sys").executable})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def test_plain_sbatch_template_honours_the_run_files_time_and_signal(workdir):
    """Template asks 60 min; the run file's 10 min becomes the job's limit, its TERM@30 the timer's signal."""
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["cluster"].update({"preempt_signal": "TERM", "cpus_per_task": 1})
    (workdir / "plain-term.yaml").write_text(yaml.safe_dump(config))
    job = _plain_sbatch(workdir, "plain-term.yaml", "plain-time")
    wait_until(lambda: (workdir / f"ptycho-train-{job}.out").is_file()
               and "preemption signal" in (workdir / f"ptycho-train-{job}.out").read_text(), 120, what="batch step")
    limit = subprocess.run(["squeue", "-h", "-j", job, "-o", "%l"], capture_output=True, text=True).stdout.strip()
    text = (workdir / f"ptycho-train-{job}.out").read_text()
    subprocess.run(["scancel", job], capture_output=True)
    assert limit in ("10:00", "") , limit  # '' only if the job already ended
    delay = int(re.search(r"preemption signal TERM in (\d+) s", text).group(1))
    assert 500 <= delay <= 570, text  # 600 s - elapsed - 30 s lead


def test_plain_sbatch_template_refuses_more_time_than_the_allocation(workdir):
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["cluster"]["time"] = "02:00:00"
    (workdir / "plain-long.yaml").write_text(yaml.safe_dump(config))
    job = _plain_sbatch(workdir, "plain-long.yaml", "plain-long")
    wait_until(lambda: subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip() == "", 120,
               what="refused job to end")
    text = (workdir / f"ptycho-train-{job}.out").read_text()
    assert "cluster.time" in text and "sbatch --time=120" in text, text
    assert not run_dir(workdir, "plain-long").exists()
