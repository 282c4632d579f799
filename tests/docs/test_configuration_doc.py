"""docs/configuration.md stays true: it names every field, its example run file is valid,
and its ``--explain`` excerpt is what the factory really prints for that example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from launcher.config import ClusterConfig
from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig
from ptycho_torch.factory import create_training_payload

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TEXT = DOC.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


@pytest.mark.parametrize("model", [ModelConfig, TrainingConfig, ExecutionConfig, InferenceConfig, ClusterConfig],
                         ids=lambda m: m.__name__)
def test_doc_names_every_field(model):
    missing = [name for name in model.model_fields if f"`{name}`" not in TEXT and name != "model"]
    assert not missing, f"docs/configuration.md does not mention {model.__name__} fields {missing}"


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The doc's run file in a temporary folder, next to a scan matching the doc's story."""
    (tmp_path / "run.yaml").write_text(_blocks("yaml")[0])
    (tmp_path / "data").mkdir()
    np.savez(
        tmp_path / "data" / "lines.npz",
        diffraction=np.ones((4, 128, 128), np.float32),
        probeGuess=np.ones((128, 128), np.complex64),
        xcoords=np.linspace(128.0, 134.0, 4),
        ycoords=np.linspace(128.0, 131.0, 4),
        _metadata=np.array(json.dumps({"nphotons": 1.0e6})),
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_example_run_file_is_valid(example):
    payload = create_training_payload("run.yaml", inspect_data=False, resolve_device=False)
    assert payload.training.nepochs == 30 and payload.training.model.gridsize == 2
    assert payload.training.nphotons == 1.0e9
    assert payload.execution.devices == 4 and payload.execution.precision == "bf16-mixed"
    assert payload.cluster["partition"] == "gpu"


def test_explain_excerpt_is_real(example):
    # the command line shown in the doc: --set learning_rate=3.0e-4 --set execution.num_nodes=2 --nepochs 40
    assert "--set learning_rate=3.0e-4 --set execution.num_nodes=2" in TEXT and "--nepochs 40" in TEXT
    payload = create_training_payload(
        "run.yaml",
        overrides={"learning_rate": 3.0e-4, "execution.num_nodes": 2},
        flag_overrides={"nepochs": 40},
        resolve_device=False,
    )
    real = payload.explain().splitlines() + [f"config hash: {payload.config_hash}"]
    tables = [block for block in _blocks("text") if block.startswith("field ")]
    assert len(tables) == 1, "docs/configuration.md should hold exactly one --explain excerpt"
    excerpt = [line for line in tables[0].splitlines() if line.strip()]
    assert len(excerpt) > 10
    for line in excerpt:
        if set(line) == {"-"}:
            continue
        assert line in real, f"docs/configuration.md --explain excerpt row is not what the factory prints: {line!r}"
