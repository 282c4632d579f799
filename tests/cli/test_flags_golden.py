"""Snapshot of every CLI's flags: a change to any flag fails until the golden file is refreshed.

Each line is one flag of one CLI (or ``ptycho-launch`` subcommand): its spellings, kind,
choices, default, and whether ``--help`` hides it.  After an intended change:

    UPDATE_GOLDEN=1 python -m pytest tests/cli/test_flags_golden.py
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "flags.txt"


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from launcher.cli import build_lifecycle_parser, build_submit_parser
    from ptycho_torch.cli import infer, simulate, train

    return [("ptycho-train", train.build_parser()[0]), ("ptycho-infer", infer.build_parser()[0]),
            ("ptycho-simulate", simulate.build_parser()[0]), ("ptycho-launch", build_submit_parser()),
            ("ptycho-launch", build_lifecycle_parser())]


def _kind(action: argparse.Action) -> str:
    if isinstance(action, argparse.BooleanOptionalAction):
        return "bool"
    if isinstance(action, argparse._StoreTrueAction):
        return "switch"
    if isinstance(action, argparse._AppendAction):
        return f"repeatable {getattr(action.type, '__name__', 'str')}"
    if type(action).__name__ == "_KeyValueAction":
        return "repeatable NAME=VALUE" + (" (text)" if action.raw else " (yaml)")
    if action.choices is not None:
        return "choice"
    return getattr(action.type, "__name__", "str") if action.type is not None else "str"


def describe_flags(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """One line per flag of ``parser`` (subcommands recursively), in declaration order."""
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                lines += describe_flags(f"{name} {sub}", subparser)
            continue
        spelled = ", ".join(action.option_strings) or f"<{action.dest}>"
        parts = [f"{name}: {spelled}", f"kind={_kind(action)}"]
        if action.choices is not None:
            parts.append("choices=" + "|".join(str(c) for c in action.choices))
        field_default = re.search(r"\[default: (.*)\]$", action.help or "")
        if field_default:  # a config field's flag: None means "not given", the field's default applies
            parts.append(f"default={field_default.group(1)}")
        elif action.default is not None and action.default is not argparse.SUPPRESS and not isinstance(action.default, Path):
            parts.append(f"default={action.default!r}")
        if action.required:
            parts.append("required")
        if action.help == argparse.SUPPRESS:
            parts.append("hidden")
        lines.append("  ".join(parts))
    return lines


def render_flags() -> str:
    return "\n".join(line for name, parser in _parsers() for line in describe_flags(name, parser)) + "\n"


def test_every_cli_flag_matches_the_golden_file():
    got = render_flags()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(got, encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file: run UPDATE_GOLDEN=1 python -m pytest tests/cli/test_flags_golden.py"
    assert got == GOLDEN.read_text(encoding="utf-8"), (
        "a CLI's flags changed; if intended, refresh with: UPDATE_GOLDEN=1 python -m pytest tests/cli/test_flags_golden.py")


@pytest.mark.parametrize("name,parser", _parsers()[:4], ids=[n for n, _ in _parsers()[:4]])
def test_visible_flags_use_dashes(name, parser):
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        for option in action.option_strings:
            assert "_" not in option, f"{name}: {option} (flags are spelled with dashes)"


def test_every_field_flag_comes_from_the_one_generator():
    """The config flags of all four CLIs are built by ptycho_torch.cli.fields (dest field__<path>)."""
    from launcher.config import ClusterConfig
    from ptycho_torch.config.canonical import TrainingConfig
    from ptycho_torch.config.execution import ExecutionConfig
    from ptycho_torch.simulate.simulate import SimulationConfig

    for name, parser in _parsers()[:4]:
        generated = {a.dest for a in parser._actions if a.dest.startswith("field__") and a.help != argparse.SUPPRESS}
        if name == "ptycho-launch":
            assert generated == {f"field__execution__{n}" for n in ExecutionConfig.model_fields} | {
                f"field__cluster__{n}" for n in ClusterConfig.model_fields}
        elif name == "ptycho-simulate":
            assert generated == {f"field__{n}" for n in SimulationConfig.model_fields}
        elif name == "ptycho-train":
            training = {f"field__{n}" for n, f in TrainingConfig.model_fields.items() if n != "model"}
            training |= {f"field__model__{n}" for n in TrainingConfig.model_fields["model"].annotation.model_fields}
            assert generated == training | {f"field__execution__{n}" for n in ExecutionConfig.model_fields}
        else:  # ptycho-infer: its own fields and only the execution fields inference reads
            from ptycho_torch.cli.infer import INFERENCE_EXECUTION_FIELDS

            assert {d for d in generated if d.startswith("field__execution__")} == {
                f"field__execution__{n}" for n in INFERENCE_EXECUTION_FIELDS}
