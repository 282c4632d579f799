"""Run files (YAML/JSON) round-trip losslessly, and the config hash is stable and sensitive."""

from __future__ import annotations

import json

import pytest
import yaml
from cfg_cases import leaf_variants

from ptycho_torch.config.canonical import ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig
from ptycho_torch.config.io import config_hash, config_to_dict, load_run_file, save_run_file
from ptycho_torch.errors import ConfigError
from ptycho_torch.factory import create_training_payload

# sha256 of the default TrainingConfig's sorted compact JSON.  It is pinned so that a hash
# computed on another machine or Python version, or after an accidental change to a
# default or to the hashing, is caught.  A *deliberate* change of a default or of a field
# changes it: recompute with
#   python -c "from ptycho_torch.config import TrainingConfig, config_hash; print(config_hash(TrainingConfig()))"
# and record the change (it invalidates "same hash" comparisons against older runs).
# issue 8: the default architecture became "resunet" (was "cnn"); then model.estimate_iters
# (default 5) was added; later its default became 20 (it beat 5 in bench/quality_per_step.py).
DEFAULT_TRAINING_HASH = "5694e3ec27a98d8d656024d2a23eaf90f7bbb4ea7420efc688e9413bcba973ad"


def _payload(path=None, **kwargs):
    return create_training_payload(path, inspect_data=False, resolve_device=False, **kwargs)


def _non_default_configs():
    training = TrainingConfig(
        model=ModelConfig(N=128, gridsize=2, probe_mask=True, probe_mask_diameter=40.5, amp_activation="swish"),
        train_data_file="data/train scan.npz",
        nepochs=7,
        nphotons=1.0e7,
        learning_rate=3.0e-4,
        n_groups=1000,
        neighbor_count=7,
        gradient_clip_val=0.5,
        subsample_seed=11,
        scheduler="WarmupCosine",
        output_dir="runs/rt",
    )
    execution = ExecutionConfig(accelerator="cpu", devices=2, num_workers=2, persistent_workers=True, precision="bf16-mixed")
    return training, execution


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip_is_lossless_through_the_factory(tmp_path, suffix):
    training, execution = _non_default_configs()
    cluster = {"partition": "gpu", "time": "01:00:00", "setup": ["module load cuda"]}
    path = save_run_file(tmp_path / f"run{suffix}", training, execution, cluster)

    run = load_run_file(path)
    assert run.training == config_to_dict(training)
    assert run.execution == config_to_dict(execution)
    assert run.cluster == cluster

    payload = _payload(path)
    assert payload.training == training
    assert payload.execution == execution
    assert payload.config_hash == config_hash(training)
    assert dict(payload.cluster) == cluster
    assert all(r.source == f"file:{path}" for p, r in payload.provenance.items() if p in ("nepochs", "model.N", "execution.devices"))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    save_run_file(tmp_path / "sub" / "run.yaml", TrainingConfig())
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["run.yaml"]


def test_pinned_hash_of_the_default_training_config():
    assert config_hash(TrainingConfig()) == DEFAULT_TRAINING_HASH
    assert _payload().config_hash == DEFAULT_TRAINING_HASH


def test_same_config_same_hash_and_hash_is_sha256_hex():
    a, b = TrainingConfig(nepochs=3), TrainingConfig.from_mapping({"nepochs": 3})
    assert a is not b and config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 64 and int(config_hash(a), 16) >= 0


def test_key_order_in_the_file_does_not_change_the_hash(tmp_path):
    training, _ = _non_default_configs()
    data = config_to_dict(training)
    forward = tmp_path / "forward.yaml"
    backward = tmp_path / "backward.yaml"
    forward.write_text(yaml.safe_dump(data, sort_keys=True))
    reversed_data = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(list(data.items()))}
    backward.write_text(yaml.safe_dump(reversed_data, sort_keys=False))
    assert forward.read_text() != backward.read_text()
    assert _payload(forward).config_hash == _payload(backward).config_hash == config_hash(training)


def test_user_written_exponent_floats_hash_like_canonical_floats(tmp_path):
    """Plain PyYAML reads ``1e9`` as a string; run files read it as the float it means."""
    short = tmp_path / "short.yaml"
    short.write_text("nphotons: 1e9\nlearning_rate: 1.0e-3\nmodel:\n  probe_scale: 4E0\n")
    assert load_run_file(short).training == {"nphotons": 1.0e9, "learning_rate": 1.0e-3, "model": {"probe_scale": 4.0}}
    payload = _payload(short)
    assert payload.config_hash == DEFAULT_TRAINING_HASH
    assert payload.provenance["nphotons"].value == 1.0e9 and isinstance(payload.provenance["nphotons"].value, float)
    assert "'1e9'" not in payload.explain()
    # strings that merely look alike stay strings
    odd = tmp_path / "odd.yaml"
    odd.write_text("output_dir: e9\n")
    assert load_run_file(odd).training == {"output_dir": "e9"}


def test_execution_config_is_never_part_of_the_hash(tmp_path):
    payload = _payload(overrides={"execution.devices": 8, "execution.precision": "16-mixed"})
    assert payload.config_hash == DEFAULT_TRAINING_HASH


HASH_VARIANTS = leaf_variants(TrainingConfig, [{}])


@pytest.mark.parametrize("path", sorted(p for p, pairs in HASH_VARIANTS.items() if pairs))
def test_any_field_change_changes_the_hash(path):
    for base, variant in HASH_VARIANTS[path]:
        assert config_hash(variant) != config_hash(base), f"{path}: {variant} hashes like {base}"


def test_fields_without_alternative_are_the_known_ones():
    """Only single-choice fields have no variant; a new choice must join the walk above."""
    fixed = sorted(p for p, pairs in HASH_VARIANTS.items() if not pairs)
    assert fixed == ["model.model_type"]


# -- reading errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,text,fragment",
    [
        ("run.yaml", "nepochs: [1,\n", "cannot parse config file"),
        ("run.json", "{nepochs: 1}", "cannot parse config file"),
        ("run.toml", "nepochs = 1", "unsupported config file type"),
        ("run.yaml", "- 1\n- 2\n", "mapping at its top level"),
        ("run.yaml", "execution: 3\n", "'execution' section must be a mapping"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_run_file(path)
    line = info.value.one_line()
    assert fragment in line and str(path) in line and "\n" not in line


def test_missing_file_is_a_config_error_with_hint(tmp_path):
    with pytest.raises(ConfigError) as info:
        _payload(tmp_path / "nope.yaml")
    assert "not found" in str(info.value) and "HINT" in str(info.value)


def test_empty_file_means_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert _payload(path).config_hash == DEFAULT_TRAINING_HASH


def test_json_output_is_sorted_and_readable(tmp_path):
    path = save_run_file(tmp_path / "run.json", TrainingConfig(), ExecutionConfig())
    data = json.loads(path.read_text())
    assert list(data) == sorted(data)
    assert data["model"]["N"] == 64 and data["execution"]["devices"] == 1
