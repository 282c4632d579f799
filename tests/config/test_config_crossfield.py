"""Cross-field rules: the deprecated n_images alias, grouping, loss mix, dataloader knobs, POLICY-001."""

from __future__ import annotations

import warnings

import pytest

from ptycho_torch.config.bridge import bridge_training
from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import AcceleratorFallbackWarning, ExecutionConfig, resolve_accelerator
from ptycho_torch.errors import ConfigError
from ptycho_torch.factory import create_training_payload

INFER_REQUIRED = {"model_path": "m.ptpinn", "test_data_file": "s.npz"}


def _payload(**kwargs):
    return create_training_payload(inspect_data=False, resolve_device=False, **kwargs)


# -- n_images, the deprecated alias of n_groups ---------------------------------------------


@pytest.mark.parametrize("model,extra", [(TrainingConfig, {}), (InferenceConfig, INFER_REQUIRED)])
def test_n_images_alias_maps_to_n_groups_with_deprecation_warning(model, extra):
    with pytest.warns(DeprecationWarning, match="n_images.*n_groups"):
        config = model.from_mapping({**extra, "n_images": 100})
    assert config.n_groups == 100
    assert "n_images" not in config.model_dump()


def test_n_images_equal_to_n_groups_is_accepted():
    with pytest.warns(DeprecationWarning):
        assert TrainingConfig.from_mapping({"n_images": 64, "n_groups": 64}).n_groups == 64


@pytest.mark.parametrize("model,extra", [(TrainingConfig, {}), (InferenceConfig, INFER_REQUIRED)])
def test_n_images_and_different_n_groups_is_an_error(model, extra):
    with pytest.raises(ConfigError) as info:
        model.from_mapping({**extra, "n_images": 100, "n_groups": 200})
    line = str(info.value)
    assert "n_images (100)" in line and "n_groups (200)" in line and "give only n_groups" in line


def test_n_images_in_a_run_file_is_accepted_with_warning_and_provenance(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("n_images: 96\n")
    with pytest.warns(DeprecationWarning, match="n_images"):
        payload = _payload(config_path=path)
    assert payload.training.n_groups == 96
    assert payload.provenance["n_groups"].source == f"file:{path}"
    assert "n_images" not in payload.provenance


def test_n_images_and_n_groups_disagreeing_in_one_layer_is_an_error():
    with pytest.raises(ConfigError) as info:
        _payload(overrides={"n_images": 10, "n_groups": 20})
    assert info.value.where == "override" and "deprecated alias" in str(info.value)


def test_n_groups_override_beats_n_images_from_file(tmp_path):
    """Different layers do not conflict: the higher one simply wins."""
    path = tmp_path / "old.yaml"
    path.write_text("n_images: 96\n")
    with pytest.warns(DeprecationWarning):
        payload = _payload(config_path=path, overrides={"n_groups": 128})
    assert payload.training.n_groups == 128
    assert payload.provenance["n_groups"].source == "override"


# -- grouping, model and loss ------------------------------------------------------------------


@pytest.mark.parametrize("gridsize,neighbors,ok", [(2, 3, False), (2, 4, True), (3, 8, False), (3, 9, True), (1, 1, True)])
def test_neighbor_count_must_cover_a_group(gridsize, neighbors, ok):
    data = {"model": {"gridsize": gridsize}, "neighbor_count": neighbors}
    if ok:
        assert TrainingConfig.from_mapping(data).neighbor_count == neighbors
    else:
        with pytest.raises(ConfigError, match=rf"neighbor_count \({neighbors}\) must be >= gridsize\*\*2 \({gridsize**2}\)"):
            TrainingConfig.from_mapping(data)


def test_probe_mask_diameter_cannot_exceed_n():
    assert ModelConfig.from_mapping({"N": 64, "probe_mask_diameter": 64.0}).probe_mask_diameter == 64.0
    with pytest.raises(ConfigError, match=r"probe_mask_diameter \(65.0\) must not exceed N \(64\)"):
        ModelConfig.from_mapping({"N": 64, "probe_mask_diameter": 65.0})


def test_poisson_loss_needs_a_positive_weight():
    with pytest.raises(ConfigError, match="nll_weight \\+ mae_weight must be > 0"):
        TrainingConfig.from_mapping({"nll_weight": 0.0, "mae_weight": 0.0})
    # the MAE-only mode does not use the weights
    assert TrainingConfig.from_mapping({"nll_weight": 0.0, "mae_weight": 0.0, "torch_loss_mode": "mae"}).torch_loss_mode == "mae"


def test_supervised_model_type_is_refused_with_the_alternative():
    with pytest.raises(ConfigError, match="use 'pinn'"):
        TrainingConfig.from_mapping({"model": {"model_type": "supervised"}})


def test_unsupported_patch_size_lists_the_supported_ones():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_mapping({"N": 96})
    assert info.value.where == "N" and "64" in str(info.value) and "256" in str(info.value)


def test_configs_are_immutable():
    config = TrainingConfig()
    with pytest.raises(Exception):
        config.nepochs = 3  # type: ignore[misc]
    assert config.nepochs == 50


# -- execution knobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,message",
    [
        ({"persistent_workers": True}, "persistent_workers=True needs num_workers > 0"),
        ({"prefetch_factor": 2}, "prefetch_factor needs num_workers > 0"),
    ],
)
def test_worker_options_need_workers(data, message):
    with pytest.raises(ConfigError, match=message):
        ExecutionConfig.from_mapping(data)
    config = ExecutionConfig.from_mapping({**data, "num_workers": 2})
    assert config.num_workers == 2


def test_worker_options_from_a_file_are_checked(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("execution:\n  persistent_workers: true\n")
    with pytest.raises(ConfigError, match="persistent_workers"):
        _payload(config_path=path)


def test_world_size_and_strategy_resolution():
    execution = ExecutionConfig(devices=4, num_nodes=2, accelerator="cpu")
    assert execution.world_size == 8
    plan = bridge_training(TrainingConfig(), execution, "cpu")
    assert plan.trainer["strategy"] == "ddp"
    assert (plan.trainer["devices"], plan.trainer["num_nodes"]) == (4, 2)
    assert bridge_training(TrainingConfig(), ExecutionConfig(), "cpu").trainer["strategy"] == "auto"


def test_policy_001_auto_falls_back_to_cpu_with_warning():
    with pytest.warns(AcceleratorFallbackWarning, match="no GPU"):
        assert resolve_accelerator("auto", cuda_available=False) == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_accelerator("auto", cuda_available=True) == "gpu"
        assert resolve_accelerator("cuda", cuda_available=False) == "gpu"
        assert resolve_accelerator("cpu", cuda_available=True) == "cpu"


def test_factory_without_device_resolution_keeps_the_request():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        payload = _payload(execution={"accelerator": "auto"})
    assert payload.accelerator == "auto" and payload.plan.trainer["accelerator"] == "auto"


# -- rules that need the bundle or the machine --------------------------------------------------


def test_inference_neighbour_count_is_checked_against_the_bundles_gridsize():
    # the factory puts the bundle's model in InferenceConfig.model; K must reach C there too
    with pytest.raises(ConfigError, match=r"neighbor_count \(3\) must be >= gridsize\*\*2 \(4\)"):
        InferenceConfig.from_mapping({**INFER_REQUIRED, "model": {"gridsize": 2}, "neighbor_count": 3})
    assert InferenceConfig.from_mapping({**INFER_REQUIRED, "model": {"gridsize": 2}, "neighbor_count": 4}).neighbor_count == 4


def test_float16_on_the_cpu_is_refused_by_the_factory_before_any_work():
    with pytest.raises(ConfigError) as info:
        _payload(overrides={"execution.accelerator": "cpu", "execution.precision": "16-mixed"})
    line = info.value.one_line()
    assert line.startswith("execution.precision") and "needs a GPU" in line and "HINT" in line
    # unresolved 'auto' is not judged (the launcher resolves the job's target first), a GPU passes
    _payload(overrides={"execution.precision": "16-mixed"})
    _payload(overrides={"execution.accelerator": "gpu", "execution.precision": "16-mixed"})
