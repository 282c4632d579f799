"""The generalisation benchmark runs end to end (``--smoke``: one tiny training, three scans).

Checks the JSON ``bench/generalisation.py`` writes: one run, the three scans (training scan,
unseen scan of the same family, unseen scan of the other family) with the families the pair
names, finite SSIMs in [-1, 1] for the network and the flat reference, and the refinement
rows on the other-family scan.  It does not judge quality (a couple of steps on 8 groups).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "generalisation.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_generalisation", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _check_scores(scores: dict) -> None:
    for key in ("amp_ssim", "phase_ssim"):
        assert math.isfinite(scores[key]) and -1.0 <= scores[key] <= 1.0, scores


def test_generalisation_smoke(tmp_path):
    out = tmp_path / "generalisation.json"
    returned = _load_bench().main(["--smoke", "--pairs", "lines:grf", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["runs"] and len(written["runs"]) == len(returned["runs"]) == 1
    run = written["runs"][0]
    assert run["pair"] == "lines:grf" and run["gridsize"] == 1 and run["steps"] >= 1
    assert set(run["scans"]) == {"train", "same_family", "other_family"}
    assert [run["scans"][r]["family"] for r in ("train", "same_family", "other_family")] == ["lines", "lines", "grf"]
    for row in run["scans"].values():
        _check_scores(row["network"])
        _check_scores(row["flat"])
    other = run["scans"]["other_family"]
    for key in ("refined_from_network", "refined_from_flat"):
        _check_scores(other[key])
        assert other[key]["iteration"] == 1


def test_generalisation_rejects_unknown_family(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        _load_bench().main(["--pairs", "lines:clouds"])
    assert exit_info.value.code == 2
    assert "--pairs" in capsys.readouterr().err
