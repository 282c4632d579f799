"""Reading and writing configs (YAML or JSON) and their content hash.

A *run file* is a TrainingConfig mapping (``model:`` nested) that may also carry an
``execution:`` section (ExecutionConfig) and a ``cluster:`` section (read by ptycho-launch
only; ptycho-train ignores it).  Writing is atomic; a round trip is lossless.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ptycho_torch.atomic import write_text_atomic
from ptycho_torch.errors import ConfigError

RUN_FILE_SECTIONS = ("execution", "cluster")


class RunFileLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` reading plain scalars by the YAML 1.2 core schema.

    PyYAML follows YAML 1.1: ``1e9`` is a string there (an exponent needs a dot), ``off`` and
    ``yes`` are booleans, ``010`` is octal 8 and ``01:30`` is the number 90.  Run files, every
    ``--set KEY=VALUE`` and every flag value go through this loader instead, so ``1e9`` is a
    float, only ``true``/``false`` are booleans, ``null``/``~``/empty is None, ``010`` is 10
    and ``01:00:00`` stays text.  Quoted scalars are always text.
    """


def _yaml12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0o", "0x"):
        return sign * int(digits, 8 if digits[1] == "o" else 16)
    return sign * int(digits, 10)


RunFileLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    ("merge", r"^(?:<<)$", "<"),
):
    RunFileLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))
RunFileLoader.add_constructor("tag:yaml.org,2002:int", _yaml12_int)


def parse_scalar(text: str) -> Any:
    """A command-line value read as YAML 1.2 (``5``, ``1e9``, ``true``, ``null``, ``[a, b]``); text if not YAML."""
    try:
        return yaml.load(text, Loader=RunFileLoader)  # safe: SafeLoader subclass
    except yaml.YAMLError:
        return text


@dataclass(frozen=True)
class RunFile:
    """The sections of a run file, still as plain mappings (validated by the factory)."""

    path: Path | None
    training: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] | None = None


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or JSON (.json) file whose top level is a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", where=str(path), hint="check the path passed to --config")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file ({exc.strerror})", where=str(path)) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.load(text, Loader=RunFileLoader)  # safe: SafeLoader subclass
        else:
            raise ConfigError(
                "unsupported config file type", where=str(path), expected=".yaml, .yml or .json", found=suffix or "no suffix"
            )
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"cannot parse config file: {detail}", where=str(path), hint="fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            "config file must hold a mapping at its top level", where=str(path), found=type(data).__name__
        )
    return data


def load_run_file(path: str | Path) -> RunFile:
    """Split a run file into its training, execution and cluster sections."""
    data = read_mapping(path)
    execution = data.pop("execution", None) or {}
    cluster = data.pop("cluster", None)
    for name, section in (("execution", execution), ("cluster", cluster)):
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"'{name}' section must be a mapping", where=f"{path}:{name}", found=type(section).__name__)
    return RunFile(path=Path(path), training=data, execution=dict(execution), cluster=cluster)


def config_to_dict(config: BaseModel) -> dict[str, Any]:
    """JSON-safe plain data of a config (paths as strings), the form that is written and hashed."""
    return config.model_dump(mode="json")


def config_hash(config: BaseModel) -> str:
    """Stable content hash: sha256 of the sorted, compact JSON of the config (any machine)."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


class RunFileDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes every string :class:`RunFileLoader` would not read back as text.

    (PyYAML quotes by YAML 1.1 rules; a string such as ``1e5`` would otherwise come back a float.)
    """


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    tag = RunFileLoader.resolve(RunFileLoader, yaml.ScalarNode, data, (True, False))
    style = "'" if tag != "tag:yaml.org,2002:str" else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


RunFileDumper.add_representer(str, _represent_str)


def dump_text(data: dict[str, Any], suffix: str) -> str:
    """Serialise a mapping as JSON or YAML according to a file suffix (YAML that RunFileLoader reads back)."""
    if suffix.lower() == ".json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    return yaml.dump(data, Dumper=RunFileDumper, sort_keys=False)


def resolved_run_sections(
    config: BaseModel,
    execution: BaseModel | None = None,
    *,
    cluster: Any = None,
    exclude: tuple[str, ...] = (),
    execution_fields: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The plain data of a resolved run file: the config's fields, then ``execution:`` and ``cluster:``.

    ``exclude`` drops top-level fields (inference: ``model``, which comes from the bundle);
    ``execution_fields`` keeps only those execution fields (inference: the ones it reads).
    """
    data = {k: v for k, v in config_to_dict(config).items() if k not in exclude}
    if execution is not None:
        values = config_to_dict(execution)
        data["execution"] = {k: v for k, v in values.items() if execution_fields is None or k in execution_fields}
    if cluster is not None:
        data["cluster"] = config_to_dict(cluster) if isinstance(cluster, BaseModel) else dict(cluster)
    return data


def dump_run_file(
    path: str | Path,
    sections: dict[str, Any],
    *,
    command: str,
) -> Path:
    """Write a fully resolved run file (``--dump-config``) atomically, YAML or JSON by suffix.

    ``sections`` is the plain data to write (top-level fields, then ``execution:`` and, for
    ptycho-launch, ``cluster:``).  A YAML file starts with a comment naming the command that
    resolved it; the file is meant to be edited and passed back with ``--config``.
    """
    path = Path(path)
    text = dump_text(sections, path.suffix)
    if path.suffix.lower() != ".json":
        header = (f"# Fully resolved by: {command}\n"
                  "# Every field, after defaults < --config < data file < --set < flags. Edit it and pass it back with --config.\n")
        text = header + text
    return write_text_atomic(path, text)


def save_run_file(
    path: str | Path,
    training: BaseModel,
    execution: BaseModel | None = None,
    cluster: dict[str, Any] | None = None,
) -> Path:
    """Write a run file (YAML or JSON by suffix) that :func:`load_run_file` reads back losslessly."""
    data = config_to_dict(training)
    if execution is not None:
        data["execution"] = config_to_dict(execution)
    if cluster is not None:
        data["cluster"] = cluster
    return write_text_atomic(path, dump_text(data, Path(path).suffix))
