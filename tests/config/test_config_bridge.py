"""The bridge walk: no config field is silently dropped.

For every leaf field of TrainingConfig (``model.*`` included), InferenceConfig and
ExecutionConfig, each other valid value changes what the bridge hands the backend
(TrainingPlan / InferencePlan), unless the field is listed in ``bridge.UNUSED_FIELDS``.
Cases are generated from ``model_fields`` (tests/config/cfg_cases.py), so a new field that
the bridge forgets fails here.

The bridge is given the *requested* accelerator string (as the factory does with
``resolve_device=False``); resolving 'auto' to a device is POLICY-001, tested on its own.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cfg_cases import REQUIRED, leaf_variants, plan_as_dict

from ptycho_torch.config.bridge import UNUSED_FIELDS, bridge_inference, bridge_training
from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig, resolve_precision

BASE_EXECUTION = ExecutionConfig(accelerator="cpu")
BASE_TRAINING = TrainingConfig()
BASE_INFERENCE = InferenceConfig(**REQUIRED[InferenceConfig])

#: Fields whose type admits only one valid value (nothing to walk).  A new option makes the
#: field walkable, and this list must shrink -- deliberately.
SINGLE_CHOICE = {"TrainingConfig.model.model_type", "InferenceConfig.model.model_type"}


def _training_output(training, execution):
    return plan_as_dict(bridge_training(training, execution, execution.accelerator))


def _inference_output(inference, execution):
    # the bundle's training config is BASE_TRAINING: inference fields must act on their own
    return plan_as_dict(bridge_inference(inference, execution, execution.accelerator, BASE_TRAINING))


def _is_unused(owner: str, path: str) -> bool:
    parts = path.split(".")
    return any(f"{owner}.{'.'.join(parts[:i])}" in UNUSED_FIELDS for i in range(1, len(parts) + 1))


def _walk_cases():
    cases = []
    walks = [
        ("TrainingConfig", leaf_variants(TrainingConfig, [{}]), lambda c: _training_output(c, BASE_EXECUTION)),
        ("InferenceConfig", leaf_variants(InferenceConfig, [REQUIRED[InferenceConfig]]), lambda c: _inference_output(c, BASE_EXECUTION)),
        (
            "ExecutionConfig",
            # the second base enables the fields that need DataLoader workers
            leaf_variants(ExecutionConfig, [{"accelerator": "cpu"}, {"accelerator": "cpu", "num_workers": 2}]),
            # precision 'auto' is '32-true' on the CPU by design: also compare what a GPU with fast bf16 gets
            lambda e: (_training_output(BASE_TRAINING, e), _inference_output(BASE_INFERENCE, e),
                       resolve_precision(e.precision, "gpu", fast_bf16=True)),
        ),
    ]
    for owner, variants, output in walks:
        for path, pairs in sorted(variants.items()):
            cases.append(pytest.param(owner, path, pairs, output, id=f"{owner}.{path}"))
    return cases


WALK = _walk_cases()


@pytest.mark.parametrize("owner,path,pairs,output", WALK)
def test_every_field_reaches_the_plan_or_is_declared_unused(owner, path, pairs, output):
    key = f"{owner}.{path}"
    if key in SINGLE_CHOICE:
        assert not pairs, f"{key} now has other valid values: remove it from SINGLE_CHOICE"
        return
    assert pairs, f"{key}: no other valid value found to walk; teach cfg_cases.candidates or list it in SINGLE_CHOICE"
    # base and every variant must give pairwise different outputs (comparing variants with
    # each other too catches a field that only acts through another, e.g. num_nodes -> strategy)
    configs = [pairs[0][0]] + [variant for _, variant in pairs]
    outputs = [output(c) for c in configs]
    for i in range(len(configs)):
        for j in range(i + 1, len(configs)):
            changed = outputs[i] != outputs[j]
            a, b = (_value(configs[k], path) for k in (i, j))
            if _is_unused(owner, path):
                assert not changed, f"{key} is listed in bridge.UNUSED_FIELDS but changes the plan: drop it from the list"
            else:
                assert changed, f"{key}: {a!r} and {b!r} give the same bridge output: wire it or list it in bridge.UNUSED_FIELDS"


def _value(config, path):
    for part in path.split("."):
        config = getattr(config, part)
    return config


def test_walk_covers_every_leaf_field():
    walked = {p.id for p in WALK}
    assert len(walked) == len(WALK)
    assert "TrainingConfig.model.N" in walked and "ExecutionConfig.prefetch_factor" in walked
    assert "InferenceConfig.model_path" in walked


def test_unused_fields_name_real_fields_with_a_reason():
    models = {m.__name__: m for m in (TrainingConfig, InferenceConfig, ExecutionConfig, ModelConfig)}
    for key, reason in UNUSED_FIELDS.items():
        owner, field = key.split(".", 1)
        assert field.split(".")[0] in models[owner].model_fields, key
        assert len(reason) > 10, key


# -- what the plan contains (the upstream defects: devices, num_nodes, precision dropped) --------


def test_trainer_kwargs_carry_every_parallelism_knob():
    execution = ExecutionConfig(accelerator="gpu", devices=8, num_nodes=4, precision="bf16-mixed", deterministic=False)
    trainer = bridge_training(TrainingConfig(nepochs=9, gradient_clip_val=1.5), execution, "gpu").trainer
    assert trainer["devices"] == 8 and trainer["num_nodes"] == 4 and trainer["strategy"] == "ddp"
    assert trainer["precision"] == "bf16-mixed" and trainer["deterministic"] is False
    assert trainer["max_epochs"] == 9 and trainer["gradient_clip_val"] == 1.5


def test_defaults_resolved_by_the_bridge():
    plan = bridge_training(TrainingConfig(seed=5, model=ModelConfig(N=128)), BASE_EXECUTION, "cpu")
    assert plan.data["subsample_seed"] == 5  # None -> seed
    assert plan.module.model.mask_diameter == 64.0  # None -> N/2
    assert bridge_training(TrainingConfig(seed=5, subsample_seed=9), BASE_EXECUTION, "cpu").data["subsample_seed"] == 9


def test_inference_builds_the_module_from_the_bundles_training_config():
    trained = TrainingConfig(model=ModelConfig(gridsize=2, architecture="cnn"), nll_weight=0.5, nphotons=1e6)
    plan = bridge_inference(BASE_INFERENCE, BASE_EXECUTION, "cpu", trained)
    assert plan.module == bridge_training(trained, BASE_EXECUTION, "cpu").module
    assert plan.data["gridsize"] == 2 and plan.module.model.channels == 4


def test_dataloader_options_only_where_torch_accepts_them():
    plain = bridge_training(BASE_TRAINING, BASE_EXECUTION, "cpu").data
    assert "persistent_workers" not in plain and "prefetch_factor" not in plain
    workers = ExecutionConfig(accelerator="cpu", num_workers=3, persistent_workers=True, prefetch_factor=4)
    data = bridge_training(BASE_TRAINING, workers, "cpu").data
    assert (data["num_workers"], data["persistent_workers"], data["prefetch_factor"]) == (3, True, 4)


def test_plans_are_read_only():
    plan = bridge_training(BASE_TRAINING, BASE_EXECUTION, "cpu")
    with pytest.raises(TypeError):
        plan.trainer["devices"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        plan.seed = 3  # type: ignore[misc]


def test_bridge_is_pure_and_imports_no_torch():
    code = (
        "import sys; import ptycho_torch.config.bridge as b, ptycho_torch.factory as f; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "f.create_training_payload(inspect_data=False, resolve_device=False); "
        "assert 'torch' not in sys.modules, 'torch imported by the factory'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
