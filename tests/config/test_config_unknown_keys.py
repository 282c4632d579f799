"""Unknown keys are refused everywhere, with the closest valid name and the list of valid ones."""

from __future__ import annotations

import pytest

from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig
from ptycho_torch.errors import ConfigError
from ptycho_torch.factory import create_training_payload


def _payload(**kwargs):
    return create_training_payload(inspect_data=False, resolve_device=False, **kwargs)


def _assert_lists_valid_names(line: str, names) -> None:
    assert "valid names:" in line
    listed = line.split("valid names:", 1)[1]
    missing = [n for n in names if n not in listed]
    assert not missing, f"valid names missing from the hint: {missing}"


@pytest.mark.parametrize(
    "model,typo,meant",
    [
        (TrainingConfig, "nepoch", "nepochs"),
        (TrainingConfig, "learningrate", "learning_rate"),
        (ModelConfig, "grid_size", "gridsize"),
        (ExecutionConfig, "num_worker", "num_workers"),
        (InferenceConfig, "modelpath", "model_path"),
    ],
)
def test_unknown_top_level_key_suggests_the_closest_field(model, typo, meant):
    with pytest.raises(ConfigError) as info:
        model.from_mapping({typo: 1})
    line = info.value.one_line()
    assert info.value.where == typo
    assert f"unknown key '{typo}'" in line
    assert f"did you mean '{meant}'" in line
    _assert_lists_valid_names(line, model.model_fields)
    assert "\n" not in line


def test_unknown_nested_model_key_names_its_dotted_path():
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_mapping({"model": {"n_filter_scale": 3}})
    assert info.value.where == "model.n_filter_scale"
    line = info.value.one_line()
    assert "did you mean 'n_filters_scale'" in line
    _assert_lists_valid_names(line, ModelConfig.model_fields)


def test_unknown_key_without_close_match_still_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        ExecutionConfig.from_mapping({"zzzz": 1})
    line = info.value.one_line()
    assert "did you mean" not in line
    _assert_lists_valid_names(line, ExecutionConfig.model_fields)


def test_section_that_is_not_a_mapping_is_refused():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_mapping([1, 2], where="model")
    assert info.value.where == "model" and "found list" in str(info.value)


@pytest.mark.parametrize(
    "key,meant",
    [("nepoch", "nepochs"), ("model.grid_size", "model.gridsize"), ("execution.device", "execution.devices")],
)
def test_unknown_set_override_is_refused_with_suggestion(key, meant):
    with pytest.raises(ConfigError) as info:
        _payload(overrides={key: 2})
    line = info.value.one_line()
    assert info.value.where == "override"
    assert f"unknown key '{key}'" in line and f"'{meant}'" in line
    _assert_lists_valid_names(line, ["nepochs", "model.N", "execution.devices"])


def test_unknown_flag_override_names_the_flag_layer():
    with pytest.raises(ConfigError) as info:
        _payload(flag_overrides={"batchsize": 8})
    assert info.value.where == "flag" and "did you mean 'batch_size'" in str(info.value)


@pytest.mark.parametrize(
    "text,key",
    [
        ("nepochs: 2\nnepoch: 3\n", "nepoch"),
        ("model:\n  gridsize: 2\n  gridsise: 2\n", "model.gridsise"),
        ("execution:\n  precison: 16-mixed\n", "execution.precison"),
    ],
)
def test_unknown_key_in_yaml_file_names_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        _payload(config_path=path)
    line = info.value.one_line()
    assert str(path) in line and f"unknown key '{key}'" in line and "did you mean" in line


def test_cluster_section_is_not_validated_by_the_training_factory(tmp_path):
    """``cluster:`` belongs to ptycho-launch; ptycho-train passes it through untouched."""
    path = tmp_path / "run.yaml"
    path.write_text("nepochs: 2\ncluster:\n  partition: gpu\n  anything: 1\n")
    payload = _payload(config_path=path)
    assert dict(payload.cluster) == {"partition": "gpu", "anything": 1}
    assert payload.training.nepochs == 2


def test_execution_argument_with_unknown_key_is_refused():
    with pytest.raises(ConfigError) as info:
        _payload(execution={"gpus": 2})
    assert "unknown key 'execution.gpus'" in str(info.value)
