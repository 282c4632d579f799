"""The one KEY=VALUE parser: YAML 1.2 values everywhere, so every CLI reads ``1e9`` as the same float."""

from __future__ import annotations

import pytest
from cli_helpers import explain_rows

from ptycho_torch.cli.fields import parse_key_values, parse_set_overrides
from ptycho_torch.config.io import parse_scalar
from ptycho_torch.errors import ConfigError, UsageError


@pytest.mark.parametrize("text,value", [
    ("1e9", 1e9), ("1.5e-3", 1.5e-3), ("5", 5), ("-7", -7), ("010", 10), ("0x10", 16), ("true", True), ("false", False),
    ("null", None), ("~", None), ("", None), ("[a, b]", ["a", "b"]), ("{x: 1}", {"x": 1}),
    # YAML 1.1 would read these as bools, octal or base-60 numbers; YAML 1.2 keeps them as text
    ("off", "off"), ("yes", "yes"), ("01:00:00", "01:00:00"), ("'5'", "5"), ("1_000", "1_000"),
])
def test_values_are_yaml_1_2_scalars(text, value):
    got = parse_scalar(text)
    assert got == value and type(got) is type(value)


def test_dotted_keys_and_last_one_wins():
    assert parse_set_overrides(["nphotons=1e9", "model.N=128", "nepochs=2", "nepochs=3", "output_dir=a=b"]) == {
        "nphotons": 1e9, "model.N": 128, "nepochs": 3, "output_dir": "a=b"}


@pytest.mark.parametrize("item", ["nepochs", "=5", " =5"])
def test_an_item_without_key_or_equals_is_one_line_naming_the_flag(item):
    with pytest.raises(ConfigError) as info:
        parse_key_values([item], "--sweep")
    line = info.value.one_line()
    assert "\n" not in line
    assert line.startswith("--sweep:") and "expected KEY=VALUE" in line and f"found {item!r}" in line and "HINT:" in line


def test_raw_values_keep_the_text_as_typed():
    assert parse_key_values(["X=1e9", "Y=true", "Z=afterok:12", "E="], "--env", raw=True) == {
        "X": "1e9", "Y": "true", "Z": "afterok:12", "E": ""}


def _nphotons_row(text: str) -> list[str]:
    return explain_rows(text)["nphotons"]


def test_launch_and_train_read_set_1e9_as_the_same_float(run_file, tmp_path, capsys, no_slurm):
    from launcher.cli import main as launch
    from ptycho_torch.cli.train import main as train

    assert train(["--config", str(run_file), "--set", "nphotons=1e9", "--explain"]) == 0
    from_train = _nphotons_row(capsys.readouterr().out)
    assert launch(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--set", "nphotons=1e9", "--explain"]) == 0
    from_launch = _nphotons_row(capsys.readouterr().out)
    assert from_train[:2] == from_launch[:2] == ["1000000000.0", "override"]  # a string would print as '1e9'


def test_launch_factory_payload_holds_a_float(run_file, tmp_path):
    """The value the launcher hands the factory, not just its rendering."""
    from launcher.cli import build_submit_parser, section_flags, sweep_members
    from launcher.prepare import LaunchRequest, resolve_run

    args = build_submit_parser().parse_args(["--config", str(run_file), "--set", "nphotons=1e9",
                                             "--sweep", "nphotons=2e9,seed=4", "--env", "X=1e9"])
    request = LaunchRequest(config_path=args.config, overrides=parse_set_overrides(args.overrides), runs_dir=tmp_path / "runs", local=True)
    payload = resolve_run(request, mode="local").payload
    assert payload.training.nphotons == 1e9 and isinstance(payload.training.nphotons, float)
    assert sweep_members(args) == [{"nphotons": 2e9, "seed": 4}]
    assert isinstance(sweep_members(args)[0]["nphotons"], float)
    assert section_flags(args, "cluster.")["env"] == {"X": "1e9"}  # environment values are text


def test_sbatch_options_stay_raw_text(run_file):
    from launcher.cli import build_submit_parser, section_flags

    args = build_submit_parser().parse_args(["--config", str(run_file), "--sbatch-option", "dependency=afterok:12",
                                             "--sbatch-arg", "exclude=node[1-3]", "--env", "A=1", "--env", "B=x=y"])
    cluster = section_flags(args, "cluster.")
    assert cluster["sbatch_options"] == {"dependency": "afterok:12", "exclude": "node[1-3]"}
    assert cluster["env"] == {"A": "1", "B": "x=y"}


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NOEQUALS"], "--env: bad item; expected KEY=VALUE, found 'NOEQUALS'"),
    (["--sbatch-option", "exclusive"], "--sbatch-option: bad item; expected KEY=VALUE"),
    (["--set", "nepochs"], "--set: bad item; expected KEY=VALUE, found 'nepochs'"),
    (["--sweep", "nepochs=2,seed"], "--sweep: bad item; expected KEY=VALUE, found 'seed'"),
])
def test_launcher_bad_items_exit_2_with_one_line(run_file, tmp_path, capsys, no_slurm, argv, needle):
    from launcher.cli import main as launch

    assert launch(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "HINT:" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_flag_values_are_typed_like_set_values():
    from ptycho_torch.cli.train import build_parser

    parser, _ = build_parser()
    args = parser.parse_args(["--nphotons", "1e9", "--nepochs", "3", "--N", "128", "--accelerator", "cpu"])
    assert (args.field__nphotons, args.field__nepochs, args.field__model__N, args.field__execution__accelerator) == (1e9, 3, 128, "cpu")
    assert isinstance(args.field__nphotons, float)
    with pytest.raises(UsageError, match=r"--nepochs: invalid int value: '1.5'"):
        parser.parse_args(["--nepochs", "1.5"])
    with pytest.raises(UsageError, match=r"invalid choice: '96'"):
        parser.parse_args(["--N", "96"])


def test_cluster_and_sweep_files_are_read_as_yaml_1_2(run_file, tmp_path, capsys, no_slurm):
    """`time: 1:30:00` is text (YAML 1.1 would read 5400) and `1e9` a float, in every file the launcher reads."""
    from launcher.cli import main as launch
    from ptycho_torch.config.io import read_mapping

    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("cluster:\n  time: 1:30:00\n  job_name: off\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("- {nphotons: 1e9}\n- {nphotons: 2e9}\n")
    dumped = tmp_path / "d.yaml"
    assert launch(["--config", str(run_file), "--runs-dir", str(tmp_path / "runs"), "--cluster", str(cluster),
                   "--dump-config", str(dumped)]) == 0, capsys.readouterr().err
    assert read_mapping(dumped)["cluster"]["time"] == "1:30:00" and read_mapping(dumped)["cluster"]["job_name"] == "off"
    from launcher.cli import build_submit_parser, sweep_members

    members = sweep_members(build_submit_parser().parse_args(["--config", str(run_file), "--sweep-file", str(sweep)]))
    assert members == [{"nphotons": 1e9}, {"nphotons": 2e9}] and all(isinstance(m["nphotons"], float) for m in members)
