"""bench/memory.py: the peak-RSS measurement is right, and ``--smoke`` runs the three stages end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_peak_rss_is_the_childs_own_high_water_mark(bench, tmp_path):
    grow = "import numpy as np; a = np.ones(300 * 2**20 // 8); del a"
    small = bench.run_measured([sys.executable, "-c", "import numpy"], tmp_path / "small.log")
    large = bench.run_measured([sys.executable, "-c", grow], tmp_path / "large.log")
    assert large["peak_rss_mib"] - small["peak_rss_mib"] > 250  # the 300 MiB it touched, freed before exit
    assert small["wall_s"] > 0


def test_a_failing_stage_is_reported_with_its_output(bench, tmp_path):
    with pytest.raises(RuntimeError, match="exited 3: .*boom"):
        bench.run_measured([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "x.log")


@pytest.mark.slow
def test_smoke_run_writes_the_table_and_json(bench, tmp_path, capsys):
    out = tmp_path / "memory.json"
    returned = bench.main(["--smoke", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    assert written["smoke"] is True and written["sizes"] == list(bench.SMOKE_SIZES)
    assert [row["patterns"] for row in written["rows"]] == list(bench.SMOKE_SIZES)
    for row in written["rows"]:
        for stage in bench.STAGES:
            numbers = row[stage]
            assert numbers["peak_rss_mib"] > 50 and math.isfinite(numbers["wall_s"]) and numbers["wall_s"] > 0
    assert set(written["flatness"]) == set(bench.STAGES)
    assert all(value > 0 for value in written["flatness"].values())
    printed = capsys.readouterr().out
    assert "patterns" in printed and "peak at largest / smallest size" in printed
