"""ptycho-infer offers exactly the execution settings inference reads; the others are refused as flags."""

from __future__ import annotations

import types
import typing

import pytest

from ptycho_torch.cli.infer import INFERENCE_EXECUTION_FIELDS, main
from ptycho_torch.config.execution import ExecutionConfig

BASE_EXECUTION = {"num_workers": 2}  # so that the worker options are valid to vary


def _other_value(name: str):
    """A valid value of ExecutionConfig.<name> different from BASE_EXECUTION's / the default."""
    info = ExecutionConfig.model_fields[name]
    current = BASE_EXECUTION.get(name, info.default)
    annotation = info.annotation
    base = annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(annotation) if a is not type(None))
    if base is bool:
        return not current
    if typing.get_origin(base) is typing.Literal:
        return next(c for c in reversed(typing.get_args(base)) if c != current)
    if base is int:
        return (current or 1) + 2
    return (current or 1.0) * 2


def _plan(header_bundle, tiny_scan, tmp_path, **execution):
    from ptycho_torch.factory import create_inference_payload

    payload = create_inference_payload(
        config={"model_path": str(header_bundle), "test_data_file": str(tiny_scan), "output_dir": str(tmp_path),
                "execution": {**BASE_EXECUTION, **execution}},
        resolve_device=False)
    return payload.plan


@pytest.mark.parametrize("name", list(ExecutionConfig.model_fields))
def test_a_field_has_an_infer_flag_exactly_when_it_changes_the_inference_plan(name, header_bundle, tiny_scan, tmp_path):
    changed = _plan(header_bundle, tiny_scan, tmp_path, **{name: _other_value(name)}) != _plan(header_bundle, tiny_scan, tmp_path)
    assert changed == (name in INFERENCE_EXECUTION_FIELDS), (
        f"execution.{name} {'changes' if changed else 'does not change'} the inference plan; "
        "keep ptycho_torch/cli/infer.py INFERENCE_EXECUTION_FIELDS equal to what inference reads")


@pytest.mark.parametrize("flag", ["--devices", "--num-nodes", "--strategy", "--deterministic", "--checkpoint-every-n-steps",
                                  "--checkpoint-keep-last", "--logger-backend", "--log-every-n-steps", "--enable-progress-bar"])
def test_training_only_flags_are_refused_with_one_line(flag, capsys):
    argv = [flag] if flag in ("--deterministic", "--enable-progress-bar") else [flag, "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("usage error:") and flag in err[0] and "unrecognized arguments" in err[0]


def test_an_inference_file_may_keep_training_execution_keys(header_bundle, tiny_scan, tmp_path, capsys):
    config = tmp_path / "infer.yaml"
    config.write_text(f"model_path: {header_bundle}\ntest_data_file: {tiny_scan}\noutput_dir: {tmp_path / 'out'}\n"
                      "execution:\n  accelerator: cpu\n  devices: 4\n  logger_backend: csv\n  inference_batch_size: 8\n")
    assert main(["--config", str(config), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "execution.inference_batch_size" in out and not (tmp_path / "out").exists()
