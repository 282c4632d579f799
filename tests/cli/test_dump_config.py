"""--dump-config writes the fully resolved run file; passing it back with --config resolves the same."""

from __future__ import annotations

import re

import pytest
from cli_helpers import explain_rows

from ptycho_torch.config.io import read_mapping

HASH = re.compile(r"config hash: ([0-9a-f]{64})")


def _train_hash(argv, capsys) -> str:
    from ptycho_torch.cli.train import main as train

    assert train([*argv, "--explain"]) == 0
    return HASH.search(capsys.readouterr().out).group(1)


def test_train_dump_is_complete_and_resolves_to_the_same_hash(run_file, tmp_path, capsys, monkeypatch):
    from ptycho_torch.cli.train import main as train
    from ptycho_torch.config.canonical import TrainingConfig
    from ptycho_torch.config.execution import ExecutionConfig

    monkeypatch.chdir(tmp_path)
    argv = ["--config", str(run_file), "--set", "nepochs=3", "--set", "nphotons=1e9", "--batch-size", "4",
            "--gridsize", "2", "--neighbor-count", "4", "--no-deterministic"]
    original = _train_hash(argv, capsys)
    dumped = tmp_path / "out" / "resolved.yaml"
    assert train([*argv, "--dump-config", str(dumped)]) == 0
    assert original in capsys.readouterr().out
    assert not (tmp_path / "training_outputs").exists()  # nothing trained

    data = read_mapping(dumped)
    assert set(TrainingConfig.model_fields) <= set(data) and set(data["model"]) == set(TrainingConfig.model_fields["model"].annotation.model_fields)
    assert set(data["execution"]) == set(ExecutionConfig.model_fields)
    assert (data["nepochs"], data["batch_size"], data["nphotons"], data["model"]["gridsize"]) == (3, 4, 1e9, 2)
    assert data["execution"]["deterministic"] is False and data["cluster"]["env"] == {"FOO": "bar baz"}
    assert dumped.read_text().startswith("# Fully resolved by: ptycho-train")
    assert [p.name for p in dumped.parent.iterdir()] == ["resolved.yaml"]  # atomic: no temporary file left

    assert _train_hash(["--config", str(dumped)], capsys) == original
    # editable: change one field by hand, the hash follows
    dumped.write_text(dumped.read_text().replace("nepochs: 3", "nepochs: 5"))
    assert _train_hash(["--config", str(dumped)], capsys) != original
    assert _train_hash(["--config", str(dumped), "--nepochs", "3"], capsys) == original


def test_train_dump_json_by_suffix(tmp_path, capsys):
    from ptycho_torch.cli.train import main as train

    dumped = tmp_path / "resolved.json"
    assert train(["--set", "nepochs=7", "--accelerator", "cpu", "--dump-config", str(dumped)]) == 0
    assert read_mapping(dumped)["nepochs"] == 7
    assert _train_hash(["--config", str(dumped)], capsys) == _train_hash(["--set", "nepochs=7", "--accelerator", "cpu"], capsys)


def test_train_dump_of_bad_input_writes_nothing(tmp_path, capsys):
    from ptycho_torch.cli.train import main as train

    dumped = tmp_path / "resolved.yaml"
    assert train(["--set", "nepochs=0", "--dump-config", str(dumped)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not dumped.exists()


DRY_HASH = re.compile(r"## config hash\n([0-9a-f]{64})")
LAUNCH = ["--run-id", "dumped", "--nodes", "2", "--devices", "2", "--strategy", "ddp", "--partition", "debug", "--cpus-per-task", "1"]


def test_launch_dump_has_execution_and_cluster_and_the_same_hash(run_file, tmp_path, capsys, no_slurm):
    from launcher.cli import main as launch

    runs = tmp_path / "runs"
    base = ["--config", str(run_file), "--runs-dir", str(runs), *LAUNCH, "--set", "nphotons=1e9", "--env", "BAR=1e9",
            "--sbatch-option", "dependency=afterok:12"]
    assert launch([*base, "--dry-run"]) == 0
    original = DRY_HASH.search(capsys.readouterr().out).group(1)
    dumped = tmp_path / "launch.yaml"
    assert launch([*base, "--dump-config", str(dumped)]) == 0
    assert original in capsys.readouterr().out
    assert not runs.exists()  # nothing prepared, nothing submitted

    data = read_mapping(dumped)
    assert (data["execution"]["num_nodes"], data["execution"]["devices"], data["execution"]["strategy"]) == (2, 2, "ddp")
    cluster = data["cluster"]
    assert (cluster["partition"], cluster["time"], cluster["cpus_per_task"]) == ("debug", "00:30:00", 1)
    # as before: a --env flag replaces the file's env mapping (layers merge per field), values stay text
    assert cluster["env"] == {"BAR": "1e9"} and cluster["sbatch_options"] == {"dependency": "afterok:12"}
    assert cluster["setup"] == ["echo setup-line"] and data["nphotons"] == 1e9

    assert launch(["--config", str(dumped), "--runs-dir", str(runs), "--run-id", "dumped", "--dry-run"]) == 0
    again = capsys.readouterr().out
    assert DRY_HASH.search(again).group(1) == original
    assert "--partition=debug" in again.replace(" ", "") or "partition=debug" in again


def test_launch_dump_refuses_a_sweep(run_file, tmp_path, capsys, no_slurm):
    from launcher.cli import main as launch

    code = launch(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--sweep", "nepochs=1",
                   "--sweep", "nepochs=2", "--dump-config", str(tmp_path / "d.yaml")])
    assert code == 2 and "--dump-config" in capsys.readouterr().err
    assert not (tmp_path / "d.yaml").exists()


def test_infer_dump_resolves_to_the_same_settings(header_bundle, tiny_scan, tmp_path, capsys):
    from ptycho_torch.cli.infer import INFERENCE_EXECUTION_FIELDS
    from ptycho_torch.cli.infer import main as infer

    argv = ["--model", str(header_bundle), "--data", str(tiny_scan), "--out", str(tmp_path / "recon"),
            "--inference-batch-size", "16", "--set", "n_groups=8", "--accelerator", "cpu"]
    assert infer([*argv, "--explain"]) == 0
    original = explain_rows(capsys.readouterr().out)
    dumped = tmp_path / "infer.yaml"
    assert infer([*argv, "--dump-config", str(dumped)]) == 0
    capsys.readouterr()
    data = read_mapping(dumped)
    assert "model" not in data and set(data["execution"]) == set(INFERENCE_EXECUTION_FIELDS)
    assert (data["n_groups"], data["execution"]["inference_batch_size"]) == (8, 16)
    assert not (tmp_path / "recon").exists()

    assert infer(["--config", str(dumped), "--explain"]) == 0
    again = explain_rows(capsys.readouterr().out)
    assert {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in original.items()}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_dump_run_file_round_trips_text_that_looks_like_numbers(tmp_path, suffix):
    from ptycho_torch.config.io import dump_run_file

    data = {"a": "1e5", "b": "off", "c": 1e9, "d": None, "e": "010", "f": ["2", 3], "g": "01:00:00"}
    path = dump_run_file(tmp_path / f"x{suffix}", data, command="test")
    assert read_mapping(path) == data
