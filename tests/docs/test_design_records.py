"""ADR-003's records exist where MISSION.md section 6 puts them, and their code citations hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADR = REPO / "plans" / "active" / "ADR-003-BACKEND-API"
PHASE_B1 = ("factory_design.md", "override_matrix.md", "open_questions.md", "summary.md")
CITATION = re.compile(r"`(?P<file>(?:ptycho_torch|launcher)/[\w/]+\.py):(?P<line>\d+)`")


def _phase_b1() -> Path:
    found = sorted(ADR.glob("reports/*/phase_b_factories"))
    assert found, f"no reports/<UTC stamp>/phase_b_factories under {ADR}"
    return found[-1]


def test_adr_is_accepted_and_names_the_decision():
    text = (ADR / "ADR-003.md").read_text(encoding="utf-8")
    assert re.search(r"Status: \*\*accepted\*\*", text)
    for term in ("ExecutionConfig", "bridge", "create_training_payload", "create_inference_payload"):
        assert term in text


def test_phase_table_has_b1_done_and_later_phases():
    text = (ADR / "implementation.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| B")}
    assert "**done**" in rows["B1"], rows["B1"]
    for phase in ("B2", "B3"):
        status = rows[phase].split("|")[4]
        assert any(word in status for word in ("done", "in progress", "planned")), rows[phase]


def test_phase_b1_folder_is_stamped_and_complete():
    folder = _phase_b1()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{6}Z", folder.parent.name), folder.parent.name
    missing = [name for name in PHASE_B1 if not (folder / name).is_file()]
    assert not missing, f"{folder} lacks {missing}"


def _citations(name: str):
    text = (_phase_b1() / name).read_text(encoding="utf-8")
    return [(m["file"], int(m["line"]), text[m.end() : text.find("\n", m.end())]) for m in CITATION.finditer(text)]


CALL_SITES = _citations("factory_design.md")


def test_factory_design_cites_every_cli_and_the_launcher():
    files = {f for f, _, _ in CALL_SITES}
    assert {"ptycho_torch/cli/train.py", "ptycho_torch/cli/infer.py", "launcher/job.py"} <= files


@pytest.mark.parametrize("file,line,rest", CALL_SITES, ids=[f"{f}:{n}" for f, n, _ in CALL_SITES])
def test_call_site_citations_point_at_the_call(file, line, rest):
    """The cited line holds the function named first in the same table row."""
    source = (REPO / file).read_text(encoding="utf-8").splitlines()
    name = re.search(r"(create_\w+_payload|run_training|run_inference)", rest)
    assert name, f"row of {file}:{line} names no factory or workflow"
    assert line <= len(source) and name[1] in source[line - 1], (
        f"factory_design.md cites {file}:{line} for {name[1]}, but that line reads {source[line - 1].strip() if line <= len(source) else '(past the end)'!r}"
    )
