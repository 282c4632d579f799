"""--python is a list of words, each quoted; --container prefixes them; MASTER_PORT never depends on them."""

from __future__ import annotations

import sys

import pytest

from slurm_helpers import job_count, launch, run_dir, wait_job_done

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def test_container_style_python_trains_ddp(workdir):
    out = launch(workdir, "--run-id", "py-env", "--devices", "2", "--strategy", "ddp",
                 "--python", f"env {sys.executable}", "--container", "env PTYCHO_IN_CONTAINER=1", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    rd = run_dir(workdir, "py-env")
    state = wait_job_done(workdir, "py-env")
    assert state["status"] == "COMPLETED" and state["world_size"] == 2
    script = next((rd / "logs").glob("*_submission.sh")).read_text()
    assert f"env PTYCHO_IN_CONTAINER=1 env {sys.executable} -u -m submitit" in script


def test_shell_in_python_runs_nothing(workdir):
    before = job_count()
    mark = workdir / "INJECTED"
    out = launch(workdir, "--run-id", "py-shell", "--python", f"true; touch {mark}; python3")
    assert out.returncode == 2 and "cluster.python" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not mark.exists() and job_count() == before and not run_dir(workdir, "py-shell").exists()
