"""ptycho-launch flags, the --dry-run golden file, the slurm/ template golden test, boundaries.

Regenerate the golden files after an intended change:
    UPDATE_GOLDEN=1 python -m pytest tests/launcher/test_cli_golden.py     (dry run)
    python -m launcher.templates --write                                   (slurm/*.sbatch)
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

from launcher.cli import build_submit_parser, main
from launcher.templates import SLURM_DIR, TEMPLATES

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "dry_run.txt"


def test_every_execution_field_has_a_flag():
    from launcher.config import ClusterConfig
    from ptycho_torch import ExecutionConfig

    options = {opt for action in build_submit_parser()._actions for opt in action.option_strings}
    for name in [*ExecutionConfig.model_fields, *ClusterConfig.model_fields]:
        assert f"--{name.replace('_', '-')}" in options, name
    assert "--nodes" in options


def _normalise(text: str, runs: Path, data: Path) -> str:
    text = text.replace(str(runs), "<RUNS>").replace(str(data), "<DATA>").replace(sys.executable, "<PYTHON>")
    text = re.sub(r"/_code/[0-9a-f]{16}\b", "/_code/<DIGEST>", text)
    return re.sub(r"\b[0-9a-f]{64}\b", "<HASH>", text)


def test_dry_run_matches_golden(run_file, tiny_scan, tmp_path, capsys, monkeypatch):
    # no SLURM on PATH: the rendering must not depend on whether a cluster answers here
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    runs = tmp_path / "runs"
    code = main(["--config", str(run_file), "--runs-dir", str(runs), "--run-id", "golden", "--dry-run",
                 "--nodes", "2", "--devices", "2", "--strategy", "ddp", "--partition", "debug", "--cpus-per-task", "1"])
    assert code == 0
    got = _normalise(capsys.readouterr().out, runs, tiny_scan)
    assert not runs.exists() or not any(runs.iterdir())  # a dry run creates nothing
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(got, encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file: run UPDATE_GOLDEN=1 python -m pytest tests/launcher/test_cli_golden.py"
    assert got == GOLDEN.read_text(encoding="utf-8"), (
        "dry-run output changed; if intended, regenerate with: UPDATE_GOLDEN=1 python -m pytest tests/launcher/test_cli_golden.py")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_committed_templates_equal_rendering(name):
    committed = (SLURM_DIR / name).read_text(encoding="utf-8")
    assert committed == TEMPLATES[name](), f"slurm/{name} is stale: regenerate with `python -m launcher.templates --write`"


@pytest.mark.parametrize("args,needle", [
    (["--devices", "0"], "execution.devices"),
    (["--job-name", "interactive"], "cluster.job_name"),
    (["--signal-lead-s", "20", "--checkpoint-time-s", "30"], "cluster.signal_lead_s"),
    (["--num-workers", "3", "--cpus-per-task", "2"], "cluster.cpus_per_task"),
    (["--set", "train_data_file=/no/such.npz"], "/no/such.npz"),
    (["--env", "NOEQUALS"], "--env"),
    (["--nodes", "1.5"], "--nodes"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--job-name", "a\nb"], "cluster.job_name"),
    (["--account", "lab\nx"], "cluster.account"),
    (["--setup", "module load a\nrm -rf x"], "cluster.setup"),
    (["--set", "train_data_file="], "train_data_file"),
])
def test_bad_requests_exit_2_with_one_line(run_file, tmp_path, capsys, args, needle):
    code = main(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--dry-run", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and "HINT" in err[0], err


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_boundaries():
    for path in (REPO / "ptycho_torch").rglob("*.py"):
        assert "launcher" not in _imports(path), f"{path} imports launcher"
    importers = sorted(p.name for p in (REPO / "launcher").rglob("*.py") if "submitit" in _imports(p))
    assert importers == ["submit.py"], importers


def test_local_mode_scrubs_slurm_variables():
    from launcher.submit import scrubbed_environment

    env = scrubbed_environment({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "SRUN_CPUS_PER_TASK": "1", "HOME": "/h"})
    assert env == {"HOME": "/h"}


def test_empty_run_file_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    code = main(["--config", str(empty), "--runs-dir", str(tmp_path / "runs"), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run file is empty" in err[0] and "HINT" in err[0], err


def test_n_groups_larger_than_the_scan_is_said(run_file, tmp_path, capsys):
    code = main(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--dry-run", "--set", "n_groups=999"])
    err = capsys.readouterr().err
    assert code == 0 and "n_groups 999 is larger than the 16 scan positions" in err, err


def test_lifecycle_usage_error_is_one_line(tmp_path, capsys):
    code = main(["--runs-dir", str(tmp_path), "logs", "x", "--rank", "two"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--rank" in err[0] and "HINT" in err[0], err
