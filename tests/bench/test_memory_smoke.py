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


def test_append_merges_sizes_and_infers_first_with_the_earlier_bundle(bench, tmp_path, monkeypatch):
    """Orchestration only (the stages are faked here; the smoke run above runs the real ones)."""
    calls = []

    def fake_run(argv, log_path):
        module = argv[2].rsplit(".", 1)[-1]
        calls.append((module, argv))
        if module == "simulate":
            Path(argv[argv.index("--out") + 1]).write_bytes(b"x" * 2048)
        if module == "train":
            run = Path(argv[argv.index("--output-dir") + 1])
            run.mkdir(parents=True)
            (run / "model.ptpinn").write_bytes(b"m")
        return {"wall_s": 1.0, "peak_rss_mib": 100.0 + len(calls)}

    monkeypatch.setattr(bench, "run_measured", fake_run)
    out, work = tmp_path / "m.json", tmp_path / "work"
    bench.main(["--sizes", "100", "--out", str(out), "--workdir", str(work)])
    assert [m for m, _ in calls] == ["simulate", "train", "infer"]
    calls.clear()
    result = bench.main(["--sizes", "400", "--append", "--out", str(out), "--workdir", str(work)])
    assert [m for m, _ in calls] == ["simulate", "infer", "train"]
    infer_argv = calls[1][1]
    assert infer_argv[infer_argv.index("--model") + 1] == str(work / "n100" / "run" / "model.ptpinn")
    assert [row["patterns"] for row in result["rows"]] == [100, 400]
    assert result["rows"][1]["infer_bundle"].endswith("n100/run/model.ptpinn")
    assert set(result["flatness"]) == set(bench.STAGES)
    assert json.loads(out.read_text())["rows"] == result["rows"]
