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
    """``yaml.SafeLoader`` that also reads ``1e9`` and ``1.0e8`` as floats.

    PyYAML follows YAML 1.1, where an exponent needs a dot and a sign (``1.0e+9``); users
    write ``1e9``.  Without this the value arrives as a string: validation still converts
    it, but ``--explain`` would show a string and provenance notes would compare a string
    with a number.
    """


RunFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


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


def dump_text(data: dict[str, Any], suffix: str) -> str:
    """Serialise a mapping as JSON or YAML according to a file suffix."""
    if suffix.lower() == ".json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


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
