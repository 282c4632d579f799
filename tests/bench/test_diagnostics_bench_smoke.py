"""bench/diagnostics.py still runs (``--smoke``: a small scan, a few steps) and writes sane JSON."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "diagnostics.py"


@pytest.mark.slow
def test_diagnostics_bench_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_diagnostics", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "diagnostics.json"
    assert module.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("step_s", "scalars_s", "snapshot_s", "demo_projected_overhead"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["n_positions"] > 0
    assert 0 <= result["snapshot_scalars"]["snapshot/amp_ssim"] <= 1
