"""execution.precision 'auto': bf16-mixed only on a GPU with fast bf16, float32 elsewhere; --explain says which."""

from __future__ import annotations

import pytest
import torch

from ptycho_torch.config import execution as execution_module
from ptycho_torch.config.bridge import bridge_inference, bridge_training
from ptycho_torch.config.canonical import InferenceConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig, fast_bf16_available, resolve_precision
from ptycho_torch.factory import create_training_payload


def test_default_is_auto():
    assert ExecutionConfig().precision == "auto"


@pytest.mark.parametrize("requested", ["32-true", "16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
def test_an_explicit_precision_is_kept(requested, accelerator):
    assert resolve_precision(requested, accelerator, fast_bf16=True) == requested
    assert resolve_precision(requested, accelerator, fast_bf16=False) == requested


@pytest.mark.parametrize(
    "accelerator, fast_bf16, expected",
    [("gpu", True, "bf16-mixed"), ("cuda", True, "bf16-mixed"), ("gpu", False, "32-true"),
     ("cpu", True, "32-true"), ("mps", True, "32-true"), ("auto", True, "32-true")],
)
def test_auto_is_bf16_only_on_a_gpu_with_fast_bf16(accelerator, fast_bf16, expected):
    assert resolve_precision("auto", accelerator, fast_bf16=fast_bf16) == expected


def test_fast_bf16_needs_compute_capability_8(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, expected in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert fast_bf16_available() is expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fast_bf16_available() is False


def test_the_plans_carry_the_resolved_precision(monkeypatch):
    auto = ExecutionConfig(accelerator="cpu")
    assert bridge_training(TrainingConfig(), auto, "cpu").trainer["precision"] == "32-true"
    inference = InferenceConfig(model_path="m.ptpinn", test_data_file="s.npz")
    assert bridge_inference(inference, auto, "cpu", TrainingConfig()).precision == "32-true"
    monkeypatch.setattr(execution_module, "fast_bf16_available", lambda: True)
    assert bridge_training(TrainingConfig(), auto, "gpu").trainer["precision"] == "bf16-mixed"
    assert bridge_inference(inference, auto, "gpu", TrainingConfig()).precision == "bf16-mixed"


def test_explain_shows_what_auto_became_and_the_config_keeps_auto():
    payload = create_training_payload(inspect_data=False, overrides={"execution.accelerator": "cpu"})
    assert payload.execution.precision == "auto"  # what a launcher writes back into run.yaml
    assert payload.trainer_kwargs()["precision"] == "32-true"
    line = next(row for row in payload.explain().splitlines() if row.startswith("execution.precision"))
    assert "'auto'" in line and "resolved: '32-true' on cpu" in line
    explicit = create_training_payload(inspect_data=False, overrides={"execution.accelerator": "cpu",
                                                                      "execution.precision": "bf16-mixed"})
    line = next(row for row in explicit.explain().splitlines() if row.startswith("execution.precision"))
    assert "resolved" not in line and explicit.trainer_kwargs()["precision"] == "bf16-mixed"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_this_gpu_auto_follows_its_compute_capability():
    expected = "bf16-mixed" if torch.cuda.get_device_capability(0) >= (8, 0) else "32-true"
    payload = create_training_payload(inspect_data=False, overrides={"execution.accelerator": "gpu"})
    assert payload.trainer_kwargs()["precision"] == expected
