"""Precedence of the factory's layers and the provenance each resolved field records.

default < file < data (N from probeGuess, nphotons from _metadata) < override (--set) < flag.
The data layer goes through ``ptycho_torch.data.open_scan`` on a tiny NPZ written here with
numpy (4 patterns), so it exercises the real contract check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ptycho_torch.config.canonical import TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig
from ptycho_torch.config.layers import field_paths
from ptycho_torch.errors import ConfigError, PtychoError
from ptycho_torch.factory import create_training_payload, inspect_training_data

N_FIELDS = len(field_paths(TrainingConfig)) + len(field_paths(ExecutionConfig))


def write_tiny_scan(path, n_pixels: int = 128, nphotons: float | None = 2.5e6, n: int = 4):
    """A DATA-001 NPZ: ``n`` patterns of ``n_pixels`` squared, positions inside the object."""
    rng = np.random.default_rng(0)
    arrays = {
        "diffraction": rng.random((n, n_pixels, n_pixels), dtype=np.float32),
        "probeGuess": np.ones((n_pixels, n_pixels), dtype=np.complex64),
        "xcoords": np.linspace(n_pixels, n_pixels + 6.0, n),
        "ycoords": np.linspace(n_pixels, n_pixels + 3.0, n),
    }
    if nphotons is not None:
        arrays["_metadata"] = np.array(json.dumps({"nphotons": nphotons}))
    np.savez(path, **arrays)
    return path


def _payload(path=None, **kwargs):
    kwargs.setdefault("resolve_device", False)
    return create_training_payload(path, **kwargs)


def _source(payload, path):
    return payload.provenance[path].source


@pytest.fixture
def scan(tmp_path):
    return write_tiny_scan(tmp_path / "scan.npz")


@pytest.fixture
def run_file(tmp_path, scan):
    path = tmp_path / "run.yaml"
    path.write_text(
        f"train_data_file: {scan}\nnepochs: 5\nbatch_size: 8\nnphotons: 1.0e8\n"
        "model:\n  N: 64\n  gridsize: 2\nexecution:\n  devices: 2\n  accelerator: cpu\n"
    )
    return path


def test_defaults_record_default_source():
    payload = _payload(inspect_data=False)
    assert payload.training == TrainingConfig()
    assert {r.source for r in payload.provenance.values()} == {"default"}
    assert len(payload.provenance) == N_FIELDS  # every leaf of TrainingConfig + ExecutionConfig


def test_file_beats_default(run_file):
    payload = _payload(run_file, inspect_data=False)
    assert payload.training.nepochs == 5 and payload.training.model.gridsize == 2
    assert payload.execution.devices == 2
    for path in ("nepochs", "batch_size", "model.gridsize", "execution.devices"):
        assert _source(payload, path) == f"file:{run_file}"
    assert _source(payload, "learning_rate") == "default"


def test_data_beats_file_for_n_and_nphotons(run_file, scan):
    payload = _payload(run_file)
    assert payload.training.model.N == 128 and payload.training.nphotons == 2.5e6
    assert _source(payload, "model.N") == f"data:{scan}"
    assert _source(payload, "nphotons") == f"data:{scan}"
    assert payload.provenance["model.N"].note == f"replaces 64 from file:{run_file}"
    assert payload.provenance["nphotons"].note == f"replaces 100000000.0 from file:{run_file}"
    assert _source(payload, "nepochs") == f"file:{run_file}"  # the data layer touches only N, nphotons


def test_data_beats_default_without_a_file(scan):
    payload = _payload(overrides={"train_data_file": str(scan)})
    assert payload.training.model.N == 128
    assert _source(payload, "model.N") == f"data:{scan}" and payload.provenance["model.N"].note == ""
    assert _source(payload, "train_data_file") == "override"


def test_file_without_nphotons_metadata_keeps_the_file_value(tmp_path, run_file):
    bare = write_tiny_scan(tmp_path / "bare.npz", n_pixels=64, nphotons=None)
    payload = _payload(run_file, overrides={"train_data_file": str(bare)})
    assert payload.training.nphotons == 1.0e8 and _source(payload, "nphotons") == f"file:{run_file}"
    assert _source(payload, "model.N") == f"data:{bare}"


def test_override_beats_data(run_file, scan):
    payload = _payload(run_file, overrides={"nphotons": 1.0e5, "model.N": 256, "nepochs": 9})
    assert payload.training.nphotons == 1.0e5 and payload.training.model.N == 256
    assert _source(payload, "nphotons") == "override"
    assert payload.provenance["nphotons"].note == f"replaces 2500000.0 from data:{scan}"
    assert _source(payload, "nepochs") == "override"


def test_flag_beats_override(run_file):
    payload = _payload(run_file, overrides={"nepochs": 9, "execution.devices": 3}, flag_overrides={"nepochs": 11})
    assert payload.training.nepochs == 11 and _source(payload, "nepochs") == "flag"
    assert payload.provenance["nepochs"].note == "replaces 9 from override"
    assert payload.execution.devices == 3 and _source(payload, "execution.devices") == "override"


def test_execution_argument_sits_between_file_and_overrides(run_file):
    payload = _payload(run_file, inspect_data=False, execution={"devices": 4, "num_nodes": 2})
    assert (payload.execution.devices, payload.execution.num_nodes) == (4, 2)
    assert _source(payload, "execution.devices") == "execution argument"
    assert _source(payload, "execution.accelerator") == f"file:{run_file}"
    payload = _payload(run_file, inspect_data=False, execution={"devices": 4}, overrides={"execution.devices": 5})
    assert payload.execution.devices == 5 and _source(payload, "execution.devices") == "override"


def test_overridden_train_file_is_the_one_inspected(tmp_path, run_file):
    other = write_tiny_scan(tmp_path / "other.npz", n_pixels=64, nphotons=7.0e4)
    payload = _payload(run_file, flag_overrides={"train_data_file": str(other)})
    assert payload.training.model.N == 64 and payload.training.nphotons == 7.0e4
    assert _source(payload, "nphotons") == f"data:{other}"


def test_inspect_data_false_skips_the_data_layer(run_file):
    payload = _payload(run_file, inspect_data=False)
    assert payload.training.model.N == 64 and _source(payload, "model.N") == f"file:{run_file}"


def test_programmatic_config_is_the_file_layer():
    payload = _payload(config={"nepochs": 3, "execution": {"devices": 2}}, inspect_data=False)
    assert _source(payload, "nepochs") == "config" and _source(payload, "execution.devices") == "config"
    payload = _payload(config=TrainingConfig(nepochs=4), inspect_data=False)
    assert payload.training.nepochs == 4 and _source(payload, "nepochs") == "config"


def test_config_and_config_path_together_is_an_error(run_file):
    with pytest.raises(ConfigError, match="either config_path or config"):
        _payload(run_file, config={"nepochs": 3})


def test_unsupported_probe_size_names_the_file_and_key(tmp_path):
    odd = write_tiny_scan(tmp_path / "odd.npz", n_pixels=48)
    with pytest.raises(ConfigError) as info:
        inspect_training_data(odd)
    line = info.value.one_line()
    assert f"{odd}:probeGuess" in line and "48 x 48" in line and "HINT" in line


def test_missing_data_file_fails_before_anything_runs(tmp_path):
    with pytest.raises(PtychoError) as info:
        _payload(overrides={"train_data_file": str(tmp_path / "missing.npz")})
    assert "missing.npz" in str(info.value) and "not found" in str(info.value)


def test_explain_lists_every_field_with_value_and_source(run_file, scan):
    text = _payload(run_file, overrides={"nepochs": 9}).explain()
    lines = text.splitlines()
    assert lines[0].split() == ["field", "value", "source"] and set(lines[1]) == {"-"}
    assert len(lines) == 2 + N_FIELDS
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["nepochs"].split()[1:] == ["9", "override", "(replaces", "5", "from", f"file:{run_file})"]
    assert rows["model.N"].split()[1:3] == ["128", f"data:{scan}"]
    assert rows["learning_rate"].split()[1:] == ["0.001", "default"]
