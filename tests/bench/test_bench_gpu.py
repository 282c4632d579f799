"""``bench/gpu.py --smoke`` runs on the CPU in seconds and writes the JSON it documents."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_mode_measures_every_configuration(tmp_path):
    bench = _load()
    out = tmp_path / "gpu.json"
    returned = bench.main(["--smoke", "--device", "cpu", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["smoke"] is True and written["device"].startswith("CPU")
    assert set(written) == set(returned)
    # 2 precisions x channels_last on/off for training; 2 precisions for inference (compile off in smoke)
    assert {(r["precision"], r["channels_last"]) for r in written["train"]} == {
        ("fp32", True), ("fp32", False), ("bf16", True), ("bf16", False)}
    assert {r["precision"] for r in written["infer"]} == {"fp32", "bf16"}
    for row in written["train"] + written["infer"]:
        assert "error" not in row, row
        assert math.isfinite(row["median"]) and row["median"] > 0
        assert row["gridsize"] == 2 and row["batch"] == 2 and row["compile"] is False


def test_bad_arguments_exit_2(tmp_path):
    bench = _load()
    with pytest.raises(SystemExit) as exc:
        bench.main(["--batches", "0", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
