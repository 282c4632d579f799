"""Bounds and documentation of every config field, generated from ``model_fields``.

A value just outside any declared bound is refused with one ConfigError line that names
the field; the value at (or just inside) the bound is accepted.  Every field of every
config model has a description (it is the ``--help`` text and the error hint).
"""

from __future__ import annotations

import pytest
from cfg_cases import CONFIG_MODELS, BoundCase, all_config_models, numeric_bound_cases, numeric_type

from ptycho_torch.errors import ConfigError
from ptycho_torch.factory import create_training_payload

BOUND_CASES = numeric_bound_cases()


def test_bound_cases_cover_every_numeric_field():
    numeric = {(m.__name__, n) for m in CONFIG_MODELS for n, i in m.model_fields.items() if numeric_type(i)}
    covered = {(c.model.__name__, c.field) for c in BOUND_CASES}
    assert numeric == covered, f"numeric fields without any bound: {sorted(numeric - covered)}"
    assert len(numeric) >= 30  # sanity: the generator really walked the models


@pytest.mark.parametrize("case", BOUND_CASES, ids=lambda c: c.id)
def test_value_just_outside_bound_is_refused(case: BoundCase):
    with pytest.raises(ConfigError) as info:
        case.model.from_mapping(case.mapping(case.outside))
    err = info.value
    assert err.where == case.field
    line = err.one_line()
    assert "\n" not in line
    assert line.startswith(f"{case.field}:")
    assert repr(case.outside) in line  # what was found
    assert "HINT:" in line


@pytest.mark.parametrize("case", BOUND_CASES, ids=lambda c: c.id)
def test_value_at_or_just_inside_bound_is_accepted(case: BoundCase):
    config = case.model.from_mapping(case.mapping(case.inside))
    assert getattr(config, case.field) == case.inside


FACTORY_CASES = [
    (prefix + case.field, case)
    for case in BOUND_CASES
    for prefix in {"TrainingConfig": [""], "ModelConfig": ["model."], "ExecutionConfig": ["execution."]}.get(case.model.__name__, [])
]


@pytest.mark.parametrize("path,case", FACTORY_CASES, ids=[p for p, _ in FACTORY_CASES])
def test_override_outside_bound_names_the_dotted_field_and_its_source(path, case):
    """The same bounds through the factory: the error names ``model.x`` and ``(from override)``."""
    with pytest.raises(ConfigError) as info:
        create_training_payload(overrides={path: case.outside}, inspect_data=False, resolve_device=False)
    assert info.value.where == f"{path} (from override)"


def test_execution_override_outside_bound_names_execution_field():
    with pytest.raises(ConfigError) as info:
        create_training_payload(overrides={"execution.num_workers": -1}, inspect_data=False, resolve_device=False)
    assert info.value.where == "execution.num_workers (from override)"
    assert "found -1" in str(info.value)


def test_every_config_model_is_known_to_the_generated_tests():
    assert set(CONFIG_MODELS) <= set(all_config_models())


@pytest.mark.parametrize("model", all_config_models(), ids=lambda m: m.__name__)
def test_every_field_has_a_description(model):
    missing = [name for name, info in model.model_fields.items() if not (info.description or "").strip()]
    assert not missing, f"{model.__name__} fields without a description: {missing}"
    assert (model.__doc__ or "").strip(), f"{model.__name__} has no docstring"


@pytest.mark.parametrize("model", CONFIG_MODELS, ids=lambda m: m.__name__)
def test_models_are_frozen_and_forbid_extras(model):
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
