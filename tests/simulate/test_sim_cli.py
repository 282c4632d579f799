"""ptycho-simulate: flags from the config, --config precedence, one-line errors, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ptycho_torch.cli.simulate import main
from ptycho_torch.simulate import SimulationConfig

FAST = ["--object-size", "96", "--step", "16"]


def read_meta(path):
    with np.load(path) as data:
        return json.loads(str(data["_metadata"])), data["diffraction"].shape


def test_writes_the_file_and_says_where(tmp_path, capsys):
    out = tmp_path / "demo.npz"
    code = main(["--out", str(out), *FAST, "--object", "dead_leaves", "--probe", "curved", "--nphotons", "1e4",
                 "--seed", "3", "--N", "64"])
    assert code == 0
    meta, shape = read_meta(out)
    cfg = meta["simulation_config"]
    assert (cfg["object"], cfg["probe"], cfg["nphotons"], cfg["seed"], cfg["object_size"]) == (
        "dead_leaves", "curved", 1e4, 3, 96)
    assert shape[1:] == (64, 64)
    assert str(out) in capsys.readouterr().out


def test_config_file_then_flags_override(tmp_path):
    config = tmp_path / "sim.yaml"
    config.write_text("simulation:\n  object: grf\n  object_size: 96\n  seed: 5\n  step: 16\n")
    out = tmp_path / "a.npz"
    assert main(["--out", str(out), "--config", str(config), "--seed", "9"]) == 0
    cfg = read_meta(out)[0]["simulation_config"]
    assert (cfg["object"], cfg["seed"], cfg["step"]) == ("grf", 9, 16.0)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--N", "65"], "invalid choice"),
        (["--nphotons", "-1"], "nphotons"),
        (["--scan", "random"], "n_images"),
        (["--object", "cat"], "invalid choice"),
        (["--no-such-flag"], "unrecognized"),
        (["--seed", "abc"], "invalid int"),
    ],
)
def test_bad_values_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, text):
    out = tmp_path / "x.npz"
    assert main(["--out", str(out), *FAST, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_key_in_config_file_names_the_file(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text("nphoton: 1e4\n")
    assert main(["--out", str(tmp_path / "x.npz"), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "did you mean 'nphotons'" in err


def test_help_lists_every_field_with_its_description(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, field in SimulationConfig.model_fields.items():
        assert f"--{name.replace('_', '-')}" in text
        assert " ".join(field.description.split())[:40] in text
        if "_" in name:
            assert f"--{name} " not in text and f"--{name}]" not in text  # the old spelling is hidden


@pytest.mark.parametrize("flag", ["--n-images", "--n_images"])
def test_dashed_and_hidden_underscore_spellings_both_work(tmp_path, flag):
    dumped = tmp_path / "sim.yaml"
    assert main(["--scan", "random", flag, "37", "--object_size", "96", "--dump-config", str(dumped)]) == 0
    from ptycho_torch.config.io import read_mapping

    values = read_mapping(dumped)
    assert (values["n_images"], values["object_size"], values["scan"]) == (37, 96, "random")
    assert not list(tmp_path.glob("*.npz"))  # --dump-config simulates nothing


def test_dump_config_round_trips(tmp_path, capsys):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert main(["--object", "grf", "--nphotons", "1e4", "--seed", "7", *FAST, "--dump-config", str(first)]) == 0
    assert main(["--config", str(first), "--dump-config", str(second)]) == 0
    body = lambda p: [ln for ln in p.read_text().splitlines() if not ln.startswith("#")]  # noqa: E731
    assert body(first) == body(second)
    assert "nphotons: 10000.0" in body(first)


def test_out_is_required_without_dump_config(tmp_path, capsys):
    assert main([*FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err


def test_module_entry_point_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ptycho_torch.cli.simulate", "--out", str(tmp_path / "x.npz"), "--N", "7"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "HINT" in result.stderr
