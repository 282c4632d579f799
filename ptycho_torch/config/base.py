"""Shared machinery of every config model: frozen, unknown keys refused with suggestions.

Validation errors from pydantic are turned into one :class:`ConfigError` line that names
the field, what was expected, what was found, and a hint (the list of valid names for an
unknown key, with the closest match first).
"""

from __future__ import annotations

import difflib
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from ptycho_torch.errors import ConfigError


class FrozenConfig(BaseModel):
    """Base of all config models: immutable, no unknown keys, validated on assignment."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @classmethod
    def field_names(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def from_mapping(cls, data: Any, *, where: str = "") -> Self:
        """Validate ``data`` into this model; any problem becomes one :class:`ConfigError`."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                "section must be a mapping of field names to values",
                where=where or cls.__name__,
                found=type(data).__name__,
                hint=f"valid fields: {', '.join(cls.field_names())}",
            )
        check_known_keys(cls, data, prefix=where)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error_from_validation(exc, cls, prefix=where) from None


def suggest(name: str, valid: list[str]) -> str:
    """Hint text for an unknown name: the closest valid names, then all of them."""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    did_you_mean = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"{did_you_mean}valid names: {', '.join(valid)}"


def check_known_keys(cls: type[BaseModel], data: dict, *, prefix: str = "") -> None:
    """Refuse keys that are not fields of ``cls`` (recursing into nested config models)."""
    aliases = getattr(cls, "DEPRECATED_ALIASES", {})
    valid = list(cls.model_fields)
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key in aliases:
            continue
        if key not in cls.model_fields:
            raise ConfigError(
                f"unknown key '{key}' in {cls.__name__}",
                where=path,
                expected=f"a {cls.__name__} field",
                hint=suggest(str(key), valid),
            )
        annotation = cls.model_fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
            check_known_keys(annotation, value, prefix=path)


def config_error_from_validation(exc: ValidationError, cls: type[BaseModel], *, prefix: str = "") -> ConfigError:
    """The first pydantic error as one line: field path, what was expected, what was found."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    path = ".".join(p for p in (prefix, loc) if p) or cls.__name__
    found = err.get("input")
    found_text = None if isinstance(found, dict) else repr(found)
    message = err.get("msg", "invalid value")
    expected = None
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Input should be "):  # pydantic's wording of a type, range or choice
        message, expected = "invalid value", message[len("Input should be ") :]
    field_hint = None
    owner = _owning_model(cls, loc)
    if owner is not None:
        name = loc.split(".")[-1]
        info = owner.model_fields.get(name)
        if info is not None and info.description:
            field_hint = f"{name}: {info.description}"
    extra_errors = len(exc.errors()) - 1
    if extra_errors > 0:
        message += f" (and {extra_errors} more problem{'s' if extra_errors > 1 else ''})"
    return ConfigError(message, where=path, expected=expected, found=found_text, hint=field_hint)


def _owning_model(cls: type[BaseModel], loc: str) -> type[BaseModel] | None:
    model: type[BaseModel] = cls
    parts = [p for p in loc.split(".") if p]
    for part in parts[:-1]:
        info = model.model_fields.get(part)
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            return None
        model = info.annotation
    return model
