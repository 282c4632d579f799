"""The time-to-quality benchmark (bench/refinement.py) runs end to end (``--smoke``: seconds).

Checks the JSON: the network's score, the three refinement traces (network, flat and
ground-truth starts) with a pass per row, what refinement returned (its pass, its stop reason),
finite SSIMs in [-1, 1], and that the ground-truth start scores as the truth.  No quality claim.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "refinement.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_refinement", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _in_range(value):
    return math.isfinite(value) and -1.0 <= value <= 1.0


def test_refinement_bench_smoke(tmp_path):
    out = tmp_path / "refinement.json"
    _load_bench().main(["--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")])
    case = json.loads(out.read_text())["cases"]["dense"]
    assert _in_range(case["network"]["amp_ssim"]) and _in_range(case["network"]["phase_ssim"])
    for key in ("refine_from_network", "refine_from_flat", "refine_from_truth"):
        trace = case[key]
        assert 1 <= len(trace["curve"]) <= 2 and all(_in_range(row["amp_ssim"]) for row in trace["curve"])
        returned = trace["returned"]
        assert _in_range(returned["amp_ssim"]) and 0 <= returned["best_iteration"] <= returned["iterations"] <= 2
        assert returned["stop_reason"] in ("iterations", "tolerance", "over-fitting")
    assert case["refine_from_truth"]["start"]["amp_ssim"] > 0.99  # the truth scored against itself
    assert (tmp_path / "work" / "dense-test.npz").exists()  # --workdir keeps the scan
