"""The one flag generator and the one ``KEY=VALUE`` parser of every CLI.

``ptycho-train``, ``ptycho-infer``, ``ptycho-simulate`` and ``ptycho-launch`` all build their
config flags with :func:`add_field_flags` (one ``--flag-name`` per pydantic field, help from
its description) and read ``--set``, ``--sweep``, ``--env`` and ``--sbatch-option`` items with
:func:`parse_key_values`.  Every value is read as a YAML 1.2 scalar by the run file's own
loader (:func:`ptycho_torch.config.io.parse_scalar`), so ``1e9`` is a float wherever it is
typed; text fields (``str``, paths, ``dict[str, str]`` values) keep the text as typed.

Flag style, from the field's annotation:

- ``bool``                       ``--x`` / ``--no-x``
- ``Literal[...]``               ``--x {a,b,c}`` (argparse choices)
- ``int`` / ``float``            ``--x N`` (``1e3`` is a valid float, ``1.5`` not a valid int)
- ``list[...]``                  ``--x LINE``, repeatable, one item each
- ``dict[str, ...]``             ``--x NAME=VALUE``, repeatable, one entry each
- anything else                  ``--x VALUE``
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from pydantic import BaseModel

from ptycho_torch.config.io import parse_scalar
from ptycho_torch.errors import ConfigError, UsageError

__all__ = [
    "OneLineParser",
    "add_config_flags",
    "add_field_flags",
    "flag_kind",
    "flag_overrides",
    "override_layers",
    "parse_key_values",
    "parse_scalar",
    "parse_set_overrides",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the flag, with a hint (exit 2 via ``run_cli``)."""

    def error(self, message: str) -> typing.NoReturn:  # noqa: D401 - argparse hook
        flag = next((tok.strip("'\",:") for tok in message.split() if tok.startswith(("--", "'--", "-"))), "command line")
        raise UsageError(" ".join(message.split()), where=flag, hint=f"`{self.prog} --help` lists every flag and its type")


# --------------------------------------------------------------------------- KEY=VALUE


def parse_key_values(items: Iterable[str], flag: str, *, raw: bool = False, example: str = "nepochs=5") -> dict[str, Any]:
    """``["nepochs=5", "model.N=128"]`` -> ``{"nepochs": 5, "model.N": 128}`` (values as YAML 1.2).

    ``raw`` keeps each value as the text typed (stripped), for text-valued options such as
    environment variables and sbatch options.  An item without ``=`` or without a key is a
    :class:`ConfigError` naming ``flag``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError("bad item", where=flag, expected="KEY=VALUE", found=repr(item), hint=f"e.g. {flag} {example}")
        out[key.strip()] = value.strip() if raw else parse_scalar(value)
    return out


def parse_set_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """The ``--set`` items of a command line as ``{dotted key: value}``."""
    return parse_key_values(items or (), "--set", example="nepochs=5 or --set model.N=128")


# --------------------------------------------------------------------------- field flags


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def flag_kind(annotation: Any) -> str:
    """``bool``, ``choice``, ``int``, ``float``, ``list``, ``dict``, ``text`` or ``value`` for a field annotation.

    ``list``/``dict`` only when the field itself is a container (``list[str] | None`` fields,
    such as a command split into words, take one text value).
    """
    if typing.get_origin(annotation) in (list, dict):
        return typing.get_origin(annotation).__name__
    base = _without_none(annotation)
    if base is bool:
        return "bool"
    if typing.get_origin(base) is typing.Literal:
        return "choice"
    if base in (int, float):
        return base.__name__
    if base is str or (isinstance(base, type) and issubclass(base, Path)) or typing.get_origin(base) in (list, dict):
        return "text"
    return "value"


def _number(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = parse_scalar(text)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}")
        return kind(value)

    convert.__name__ = kind.__name__
    return convert


def _choice(choices: Sequence[Any]) -> Any:
    by_text = {str(c): c for c in choices}

    def choice(text: str) -> Any:
        return by_text.get(text.strip(), text)

    return choice


class _KeyValueAction(argparse.Action):
    """``--env NAME=VALUE`` (repeatable): merges each entry into one dict."""

    def __init__(self, *args: Any, raw: bool = True, **kwargs: Any) -> None:
        self.raw = raw
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        current = dict(getattr(namespace, self.dest, None) or {})
        current.update(parse_key_values([values], option_string or self.option_strings[0], raw=self.raw, example="NAME=VALUE"))
        setattr(namespace, self.dest, current)


def _help(info: Any, kind: str) -> str:
    text = info.description or ""
    if not info.is_required() and kind not in ("list", "dict"):
        default = info.get_default(call_default_factory=True)
        text += f" [default: {default}]"
    elif kind in ("list", "dict"):
        text += " (repeatable)"
    return text.replace("%", "%%")


def _add_one(target: Any, names: list[str], dest: str, info: Any, kind: str, help_text: str) -> None:
    annotation = info.annotation
    if kind == "bool":
        target.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind == "choice":
        choices = list(typing.get_args(_without_none(annotation)))
        target.add_argument(*names, dest=dest, type=_choice(choices), choices=choices, default=None, help=help_text)
    elif kind in ("int", "float"):
        target.add_argument(*names, dest=dest, type=_number(int if kind == "int" else float), default=None,
                            metavar=dest.rsplit("__", 1)[-1].upper(), help=help_text)
    elif kind == "list":
        target.add_argument(*names, dest=dest, action="append", default=None, metavar="LINE", help=help_text)
    elif kind == "dict":
        value_type = (typing.get_args(annotation) or (str, str))[-1]
        target.add_argument(*names, dest=dest, action=_KeyValueAction, raw=value_type is str, default=None,
                            metavar="NAME=VALUE", help=help_text)
    else:
        target.add_argument(*names, dest=dest, type=str if kind == "text" else parse_scalar, default=None,
                            metavar=dest.rsplit("__", 1)[-1].upper(), help=help_text)


def add_field_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    path_prefix: str = "",
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    hidden_underscore_aliases: bool = False,
    title: str | None = None,
) -> dict[str, str]:
    """Add ``--<field-name>`` for each leaf field of ``model``; return ``{argparse dest: dotted path}``.

    Nested config models are expanded without a prefix on the flag (``--N``, ``--gridsize``);
    their dotted path keeps it (``model.N``).  ``only`` keeps just those fields; ``aliases``
    adds visible extra spellings (``{"num_nodes": ["--nodes"]}``); ``hidden_underscore_aliases``
    also accepts ``--field_name`` without listing it in ``--help``.  Every flag defaults to
    None, meaning "not given" (see :func:`flag_overrides`).
    """
    group = parser.add_argument_group(title or model.__name__)
    destinations: dict[str, str] = {}
    skipped, kept = set(skip), (set(only) if only is not None else None)
    for name, info in model.model_fields.items():
        if name in skipped or (kept is not None and name not in kept):
            continue
        annotation = _without_none(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            destinations.update(add_field_flags(parser, annotation, path_prefix=f"{path_prefix}{name}.", title=annotation.__name__,
                                                hidden_underscore_aliases=hidden_underscore_aliases))
            continue
        path = f"{path_prefix}{name}"
        dest = "field__" + path.replace(".", "__")
        kind = flag_kind(info.annotation)
        names = ["--" + name.replace("_", "-"), *(aliases or {}).get(name, ())]
        _add_one(group, names, dest, info, kind, _help(info, kind))
        if hidden_underscore_aliases and "_" in name:
            _add_one(group, ["--" + name], dest, info, kind, argparse.SUPPRESS)
        destinations[dest] = path
    return destinations


def flag_overrides(args: argparse.Namespace, destinations: Mapping[str, str]) -> dict[str, Any]:
    """The dotted-path values of the field flags the user actually gave."""
    return {path: getattr(args, dest) for dest, path in destinations.items() if getattr(args, dest, None) is not None}


# --------------------------------------------------------------------------- shared flags


def add_config_flags(parser: argparse.ArgumentParser, *, config_metavar: str, config_help: str) -> None:
    """The flags every config-driven CLI shares: ``--config``, ``--set KEY=VALUE``, ``--explain``, ``--dump-config``."""
    parser.add_argument("--config", metavar=config_metavar, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="Override any field by dotted key (repeatable), e.g. model.gridsize=2; values are YAML (1e9 is a float).")
    parser.add_argument("--explain", action="store_true", help="Print every resolved field with its value and source, then exit.")
    add_dump_config_flag(parser)


def add_dump_config_flag(parser: argparse.ArgumentParser) -> None:
    """``--dump-config FILE``: write the fully resolved config (editable, loadable with --config) and exit."""
    parser.add_argument("--dump-config", metavar="FILE", default=None,
                        help="Write the fully resolved config (every field, all layers applied) to FILE (YAML, or JSON by suffix) and exit; "
                        "edit it and pass it back with --config.")


class OverrideLayers(TypedDict):
    """The two override layers the factories take as keyword arguments."""

    overrides: dict[str, Any]
    flag_overrides: dict[str, Any]


def override_layers(args: argparse.Namespace, destinations: Mapping[str, str]) -> OverrideLayers:
    """The factories' ``overrides`` (from ``--set``) and ``flag_overrides`` (named flags) arguments."""
    return {"overrides": parse_set_overrides(args.overrides), "flag_overrides": flag_overrides(args, destinations)}
