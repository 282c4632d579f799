"""Layered assembly of a config with provenance: each resolved field remembers its source.

Values are kept as a flat mapping of dotted paths (``nepochs``, ``model.N``,
``execution.devices``).  Each layer may only name known paths; a later layer wins.  Pure
logic, no I/O: the factories feed it the layers (defaults, file, data, overrides).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from pydantic import BaseModel

from ptycho_torch.config.base import suggest
from ptycho_torch.errors import ConfigError


@dataclass(frozen=True)
class Resolved:
    """A resolved value, the layer it came from, and an optional note (e.g. what it replaced)."""

    value: Any
    source: str
    note: str = ""


def field_paths(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field of a config model (nested config models expanded)."""
    paths: list[str] = []
    for name, info in cls.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(field_paths(annotation, prefix=f"{path}."))
        else:
            paths.append(path)
    return paths


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"N": 64}}`` -> ``{"model.N": 64}``; non-mapping values are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{path}."))
        else:
            flat[path] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


class LayeredConfig:
    """Flat values plus their provenance, built from lowest to highest precedence."""

    def __init__(self, known_paths: Iterable[str], aliases: Mapping[str, str] | None = None) -> None:
        self.known = list(known_paths)
        self._known_set = set(self.known)
        self.aliases = dict(aliases or {})
        self.values: dict[str, Resolved] = {}

    def apply(self, layer: Mapping[str, Any], source: str, *, flat: bool = False) -> None:
        """Apply one layer (nested or already flat) on top of the current values."""
        items = dict(layer) if flat else flatten(layer)
        items = self._resolve_aliases(items, source)
        for path, value in items.items():
            if path not in self._known_set:
                raise ConfigError(f"unknown key '{path}'", where=source, hint=suggest(path, self.known))
            previous = self.values.get(path)
            note = ""
            if previous is not None and previous.source != "default" and previous.value != value:
                note = f"replaces {previous.value!r} from {previous.source}"
            self.values[path] = Resolved(value, source, note)

    def _resolve_aliases(self, items: dict[str, Any], source: str) -> dict[str, Any]:
        for old, new in self.aliases.items():
            if old not in items:
                continue
            legacy = items.pop(old)
            if new in items and items[new] != legacy:
                raise ConfigError(
                    f"'{old}' ({legacy!r}) and '{new}' ({items[new]!r}) disagree",
                    where=source,
                    hint=f"'{old}' is a deprecated alias of '{new}': give only '{new}'",
                )
            warnings.warn(f"{source}: '{old}' is deprecated, use '{new}'", DeprecationWarning, stacklevel=3)
            items[new] = legacy
        return items

    def get(self, path: str, default: Any = None) -> Any:
        resolved = self.values.get(path)
        return default if resolved is None else resolved.value

    def section(self, prefix: str = "", exclude: Iterable[str] = ()) -> dict[str, Any]:
        """Nested mapping of the values under ``prefix`` (``""`` for the top level)."""
        skip = tuple(f"{p}." for p in exclude)
        flat = {
            path[len(prefix) :]: resolved.value
            for path, resolved in self.values.items()
            if path.startswith(prefix) and not path.startswith(skip)
        }
        return unflatten(flat)

    def source_of(self, path: str) -> str | None:
        resolved = self.values.get(path)
        return None if resolved is None else resolved.source
