"""Bad requests: exit 2, one line on stderr with a HINT, and nothing queued."""

from __future__ import annotations

import pytest
import yaml

from slurm_helpers import job_count, launch

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

CASES = {
    "devices-0": (["--devices", "0"], "execution.devices"),
    "nodes-minus-1": (["--nodes", "-1"], "execution.num_nodes"),
    "unknown-partition": (["--partition", "nosuchpart"], "unknown partition 'nosuchpart'"),
    "missing-data": (["--set", "train_data_file=/nonexistent/scan.npz"], "/nonexistent/scan.npz"),
    "job-name-bash": (["--job-name", "bash"], "cluster.job_name"),
    "too-many-nodes": (["--nodes", "3"], "refuses"),
    "mem-too-big": (["--mem", "99999G"], "cluster.mem (--mem=99999G;"),
    "time-too-long-for-signal": (["--time", "1", "--signal-lead-s", "90"], "cluster.signal_lead_s"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_request_exits_2_with_one_line_and_queues_nothing(workdir, case):
    args, needle = CASES[case]
    before = job_count()
    out = launch(workdir, "--run-id", f"bad-{case}", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "HINT" in lines[0], out.stderr
    assert job_count() == before
    assert not (workdir / "runs" / f"bad-{case}").exists()


def test_unknown_cluster_key(workdir, tmp_path):
    config = yaml.safe_load((workdir / "run.yaml").read_text())
    config["cluster"]["partitoin"] = "debug"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    before = job_count()
    out = launch(workdir, "--config", str(bad), "--run-id", "bad-key")
    assert out.returncode == 2
    assert "unknown cluster key 'partitoin'" in out.stderr and "did you mean 'partition'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and job_count() == before
