"""Command-line flags generated from config models: one flag per field, help from its docstring.

``--set key=value`` (dotted keys, values parsed as YAML scalars) reaches every field too;
named flags win over ``--set``.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from ptycho_torch.config.io import RunFileLoader
from ptycho_torch.errors import ConfigError


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _literal_choices(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return None


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def parse_scalar(text: str) -> Any:
    """A flag or ``--set`` value: YAML scalar syntax (``5``, ``1e9``, ``true``, ``null``, ``[a, b]``)."""
    try:
        return yaml.load(text, Loader=RunFileLoader)
    except yaml.YAMLError:
        return text


def add_field_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    path_prefix: str = "",
    skip: Iterable[str] = (),
    title: str | None = None,
) -> dict[str, str]:
    """Add ``--<field-name>`` for each leaf field of ``model``; return {argparse dest: dotted path}.

    Nested config models are expanded without a prefix on the flag (``--N``, ``--gridsize``);
    their dotted path keeps it (``model.N``).
    """
    group = parser.add_argument_group(title or model.__name__)
    destinations: dict[str, str] = {}
    skipped = set(skip)
    for name, info in model.model_fields.items():
        if name in skipped:
            continue
        annotation = _strip_optional(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            destinations.update(add_field_flags(parser, annotation, path_prefix=f"{path_prefix}{name}.", title=annotation.__name__))
            continue
        flag = "--" + name.replace("_", "-")
        dest = f"field__{path_prefix}{name}".replace(".", "__")
        help_text = (info.description or "").replace("%", "%%")
        if _is_bool(annotation):
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = _literal_choices(annotation)
            metavar = "{" + ",".join(str(c) for c in choices) + "}" if choices else name.upper()
            group.add_argument(flag, dest=dest, default=None, metavar=metavar, type=parse_scalar, help=help_text)
        destinations[dest] = f"{path_prefix}{name}"
    return destinations


def flag_overrides(args: argparse.Namespace, destinations: dict[str, str]) -> dict[str, Any]:
    """The dotted-path values of the flags the user actually gave."""
    return {path: getattr(args, dest) for dest, path in destinations.items() if getattr(args, dest, None) is not None}


def parse_set_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["nepochs=5", "model.N=128"]`` -> ``{"nepochs": 5, "model.N": 128}``."""
    overrides: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("override must look like KEY=VALUE", where=f"--set {item}", hint="e.g. --set nepochs=5 or --set model.N=128")
        overrides[key.strip()] = parse_scalar(value)
    return overrides


def add_config_flags(parser: argparse.ArgumentParser, *, config_metavar: str, config_help: str) -> None:
    """The flags every config-driven CLI shares: ``--config``, ``--set KEY=VALUE``, ``--explain``."""
    parser.add_argument("--config", metavar=config_metavar, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="Override any field by dotted key (repeatable), e.g. model.gridsize=2.")
    parser.add_argument("--explain", action="store_true", help="Print every resolved field with its value and source, then exit.")


def override_layers(args: argparse.Namespace, destinations: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The factories' ``overrides`` (from ``--set``) and ``flag_overrides`` (named flags) arguments."""
    return {"overrides": parse_set_overrides(args.overrides), "flag_overrides": flag_overrides(args, destinations)}
