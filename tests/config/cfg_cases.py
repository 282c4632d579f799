"""Test cases generated from the config models' own field metadata.

Nothing here is hand-listed per field: a field added to a config model is picked up by
every generated test (bounds, descriptions, the bridge walk, the hash walk) automatically.

- :func:`numeric_bound_cases` -- for every bound (ge/gt/le/lt) of every numeric field, a
  value just outside it and a value just inside it.
- :func:`leaf_variants` -- for every leaf field (dotted path, ``model.N``), valid configs
  that differ from a base config in that field only.
"""

from __future__ import annotations

import copy
import math
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ptycho_torch.config.base import FrozenConfig
from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig
from ptycho_torch.config.layers import field_paths

CONFIG_MODELS: tuple[type[FrozenConfig], ...] = (ModelConfig, TrainingConfig, InferenceConfig, ExecutionConfig)

#: Values a model needs before it validates at all (its required fields).
REQUIRED: dict[type[BaseModel], dict[str, Any]] = {
    InferenceConfig: {"model_path": "runs/a/model.ptpinn", "test_data_file": "data/scan.npz"},
}

#: Extra context so that a value at a field's own bound passes the cross-field checks.
BOUND_CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("ModelConfig", "probe_mask_diameter"): {"N": 256},  # diameter <= N
    ("TrainingConfig", "nll_weight"): {"mae_weight": 1.0},  # some loss term must be on
    ("ExecutionConfig", "prefetch_factor"): {"num_workers": 1},  # needs workers
}


def all_config_models() -> list[type[FrozenConfig]]:
    """Every FrozenConfig subclass defined so far (so a new config model is covered too)."""
    found: list[type[FrozenConfig]] = []
    todo = list(FrozenConfig.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def numeric_type(info: FieldInfo) -> type | None:
    """``int`` or ``float`` for a numeric field (``bool`` excluded), else None."""
    base, _ = unwrap(info.annotation)
    return base if base in (int, float) else None


def bounds(info: FieldInfo) -> dict[str, float]:
    """The field's bounds from its metadata, e.g. ``{"ge": 1, "le": 64}``."""
    found: dict[str, float] = {}
    for item in info.metadata:
        for kind, cls in (("ge", annotated_types.Ge), ("gt", annotated_types.Gt), ("le", annotated_types.Le), ("lt", annotated_types.Lt)):
            if isinstance(item, cls):
                found[kind] = getattr(item, kind)
    return found


@dataclass(frozen=True)
class BoundCase:
    """One bound of one numeric field: a value just outside it and one just inside it."""

    model: type[FrozenConfig]
    field: str
    bound: str  # "ge", "gt", "le" or "lt"
    limit: float
    outside: float
    inside: float

    @property
    def id(self) -> str:
        return f"{self.model.__name__}.{self.field}-{self.bound}{self.limit:g}"

    def mapping(self, value: Any) -> dict[str, Any]:
        data = dict(REQUIRED.get(self.model, {}))
        data.update(BOUND_CONTEXT.get((self.model.__name__, self.field), {}))
        data[self.field] = value
        return data


def _step(value: float, kind: type, direction: float) -> float:
    """The next representable value from ``value`` towards ``direction`` (+inf or -inf)."""
    if kind is int:
        return int(value) + (1 if direction > 0 else -1)
    return math.nextafter(float(value), direction)


def numeric_bound_cases(models: tuple[type[FrozenConfig], ...] = CONFIG_MODELS) -> list[BoundCase]:
    """A :class:`BoundCase` for every bound of every numeric field of ``models``."""
    cases: list[BoundCase] = []
    for model in models:
        for name, info in model.model_fields.items():
            kind = numeric_type(info)
            if kind is None:
                continue
            for bound, limit in bounds(info).items():
                down, up = -math.inf, math.inf
                if bound == "ge":
                    outside, inside = _step(limit, kind, down), kind(limit)
                elif bound == "gt":
                    outside, inside = kind(limit), _step(limit, kind, up)
                elif bound == "le":
                    outside, inside = _step(limit, kind, up), kind(limit)
                else:  # lt
                    outside, inside = kind(limit), _step(limit, kind, down)
                cases.append(BoundCase(model, name, bound, limit, outside, inside))
    return cases


# -- walking every leaf field --------------------------------------------------------------


def field_info(cls: type[BaseModel], path: str) -> FieldInfo:
    """The FieldInfo of a dotted leaf path (``model.N`` -> ModelConfig.N)."""
    *parents, leaf = path.split(".")
    model: type[BaseModel] = cls
    for part in parents:
        model = model.model_fields[part].annotation
    return model.model_fields[leaf]


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node[part]
    return node


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def candidates(path: str, info: FieldInfo, current: Any) -> list[Any]:
    """Values that differ from ``current`` and fit the field's type and bounds."""
    base, optional = unwrap(info.annotation)
    values: list[Any]
    if typing.get_origin(base) is Literal:
        values = list(typing.get_args(base))
    elif base is bool:
        values = [not current]
    elif base is Path:
        values = [f"elsewhere/{path.replace('.', '_')}"]
    elif base in (int, float):
        if current is None:
            values = [3, 7, 2]
        else:
            values = [current + 1, current - 1, current * 2, current / 2, current * 10]
        limits = bounds(info)
        values = [
            base(v)
            for v in values
            if (base is float or float(v).is_integer())
            and v >= limits.get("ge", -math.inf)
            and v > limits.get("gt", -math.inf)
            and v <= limits.get("le", math.inf)
            and v < limits.get("lt", math.inf)
        ]
    else:
        raise AssertionError(f"cfg_cases.candidates: no rule for {path} of type {info.annotation!r}; add one")
    if optional and current is not None:
        values.append(None)
    return [v for v in dict.fromkeys(values) if v != current and not (isinstance(current, Path) and str(current) == v)]


def leaf_variants(cls: type[BaseModel], bases: list[dict[str, Any]]) -> dict[str, list[tuple[BaseModel, BaseModel]]]:
    """For every leaf path of ``cls``: ``(base config, config differing in that field)`` pairs.

    Each base is tried in turn (the first is the plain one; later ones enable fields that
    need another, e.g. ``persistent_workers`` needs ``num_workers > 0``).  A candidate that
    fails validation (bounds or cross-field checks) is skipped.  A path with no valid
    variant maps to an empty list.
    """
    result: dict[str, list[tuple[BaseModel, BaseModel]]] = {}
    for path in field_paths(cls):
        pairs: list[tuple[BaseModel, BaseModel]] = []
        for base_data in bases:
            base_cfg = cls.model_validate(base_data)
            current = _get(base_cfg.model_dump(mode="python"), path)
            dumped = base_cfg.model_dump(mode="json")
            for value in candidates(path, field_info(cls, path), current):
                try:
                    variant = cls.model_validate(_set(dumped, path, value))
                except ValidationError:
                    continue
                pairs.append((base_cfg, variant))
            if pairs:
                break
        result[path] = pairs
    return result


def plan_as_dict(plan: Any) -> dict[str, Any]:
    """A bridge plan (frozen dataclasses of mapping proxies and configs) as plain comparable data."""
    def plain(value: Any) -> Any:
        if is_dataclass(value):
            return plan_as_dict(value)
        if isinstance(value, Mapping):
            return dict(value)
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="python")
        return value

    return {f.name: plain(getattr(plan, f.name)) for f in fields(plan)}
