"""override_matrix.md (ADR-003, phase B1) stays true to the code.

The matrix must name every field of every config model (from ``model_fields``), show its
real default, and cite for each field a ``file:line`` that exists and defines that field.
When this fails, regenerate the matrix (never edit it by hand):

    python plans/active/ADR-003-BACKEND-API/tools/render_override_matrix.py
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.config.canonical import ModelConfig

REPO = Path(__file__).resolve().parents[2]
ADR = REPO / "plans" / "active" / "ADR-003-BACKEND-API"
TOOL = ADR / "tools" / "render_override_matrix.py"
REGENERATE = f"regenerate it with: python {TOOL.relative_to(REPO)}"
ROW = re.compile(r"^\| (?P<field>[\w.]+) +\| (?P<default>.*?) +\| (?P<sources>.*?) +\| (?P<cli>.*?) +\| (?P<cite>[\w/.-]+\.py:\d+) +\|$")


def _tool():
    spec = importlib.util.spec_from_file_location("render_override_matrix", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL_MODULE = _tool()


def _matrix_path() -> Path:
    found = sorted(ADR.glob("reports/*/phase_b_factories/override_matrix.md"))
    assert found, f"no reports/<UTC stamp>/phase_b_factories/override_matrix.md under {ADR}; {REGENERATE} --out <path>"
    return found[-1]


def parse_matrix(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """``{section model name: {field path: row}}`` from the ASCII tables under ``## <Model> (...)``."""
    sections: dict[str, dict[str, dict[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].split()[0], {})
            continue
        match = ROW.match(line)
        if match and current is not None and match["field"] != "field":
            current[match["field"]] = match.groupdict()
    return sections


MATRIX = parse_matrix(_matrix_path().read_text(encoding="utf-8"))
SECTIONS = [(title.split()[0], model, prefix, kind) for title, model, prefix, kind in TOOL_MODULE.SECTIONS]
if TOOL_MODULE.cluster_section() is not None:
    title, model, prefix, kind = TOOL_MODULE.cluster_section()
    SECTIONS.append((title.split()[0], model, prefix, kind))
ALL_ROWS = [(name, path, row) for name, rows in MATRIX.items() for path, row in rows.items()]


@pytest.mark.parametrize("name,model,prefix,kind", SECTIONS, ids=[s[0] for s in SECTIONS])
def test_matrix_names_every_field(name, model, prefix, kind):
    expected = {f"{prefix}{path}" for path, _, _ in TOOL_MODULE.leaves(model)}
    assert len(expected) == len(TOOL_MODULE.leaves(model)) and expected
    rows = MATRIX.get(name)
    assert rows is not None, f"override_matrix.md has no section for {name}; {REGENERATE}"
    missing, stale = sorted(expected - set(rows)), sorted(set(rows) - expected)
    assert not missing and not stale, f"{name}: missing {missing}, no longer fields {stale}; {REGENERATE}"


def test_nested_model_fields_are_listed_through_their_parent():
    assert set(MATRIX["TrainingConfig"]) >= {f"model.{n}" for n in ModelConfig.model_fields}


@pytest.mark.parametrize("section,path,row", ALL_ROWS, ids=[f"{s}:{p}" for s, p, _ in ALL_ROWS])
def test_citation_points_at_the_line_defining_the_field(section, path, row):
    file_name, line_no = row["cite"].rsplit(":", 1)
    source = REPO / file_name
    assert source.is_file(), f"{section}.{path}: cited file {file_name} does not exist; {REGENERATE}"
    lines = source.read_text(encoding="utf-8").splitlines()
    index = int(line_no) - 1
    assert 0 <= index < len(lines), f"{section}.{path}: {row['cite']} is past the end of the file; {REGENERATE}"
    leaf = path.split(".")[-1]
    assert re.match(rf"^\s+{re.escape(leaf)}\s*:", lines[index]), (
        f"{section}.{path}: {row['cite']} reads {lines[index].strip()!r}, not the definition of {leaf!r}; {REGENERATE}"
    )


@pytest.mark.parametrize("name,model,prefix,kind", SECTIONS, ids=[s[0] for s in SECTIONS])
def test_defaults_match_the_code(name, model, prefix, kind):
    for path, owner, field in TOOL_MODULE.leaves(model):
        row = MATRIX[name].get(f"{prefix}{path}")
        assert row is not None, f"{name}.{path} is not in the matrix; {REGENERATE}"
        shown = row["default"]
        assert shown == TOOL_MODULE.default_text(owner.model_fields[field]), f"{name}.{path}: default {shown}; {REGENERATE}"


def test_data_layer_rows_are_the_fields_the_factory_infers(tmp_path):
    """The rows that list a ``data`` layer are exactly what inspect_training_data returns."""
    import json

    from ptycho_torch.factory import inspect_training_data

    scan = tmp_path / "scan.npz"
    np.savez(
        scan,
        diffraction=np.ones((2, 64, 64), np.float32),
        probeGuess=np.ones((64, 64), np.complex64),
        xcoords=np.array([64.0, 66.0]),
        ycoords=np.array([64.0, 65.0]),
        _metadata=np.array(json.dumps({"nphotons": 1.0e6})),
    )
    inferred = set(inspect_training_data(scan))
    documented = {p for p, row in MATRIX["TrainingConfig"].items() if "< data <" in row["sources"]}
    assert documented == inferred == set(TOOL_MODULE.DATA_FIELDS)


def test_matrix_is_up_to_date_with_the_generator():
    current = _matrix_path().read_text(encoding="utf-8")
    assert current == TOOL_MODULE.render(), f"{_matrix_path().relative_to(REPO)} is out of date; {REGENERATE}"
