"""``bench/gpu_launch.py --smoke``: the GPU machine's script runs end to end on the CPU (2 gloo ranks):
throughput rows through ``ptycho-launch --local --devices 2`` and a preemption round trip."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_launch.py"


def test_smoke_mode_trains_two_ranks_and_round_trips_a_preemption(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu_launch", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu_launch.json"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["accelerator"] == "cpu"
    row = result["throughput"]["2"]
    assert row["median_steps_per_s"] > 0 and row["runs"][0]["steps"] >= 1, row
    trip = result["preemption"]
    assert trip["ok"] is True, trip
    assert trip["first_exit_code"] != 0 and trip["resume_exit_code"] == 0
    assert trip["checkpoint"] == f"preempt-step={trip['preempted_at_step']}.ckpt"


def test_launcher_callbacks_bench_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_callbacks", BENCH.with_name("launcher_callbacks.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "callbacks.json"
    assert bench.main(["--repeats", "1", "--steps", "30", "--warmup", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["median_step_ms"]) == {"none", "old", "new"}
    assert all(v > 0 for v in result["median_step_ms"].values()) and result["ratio_new_to_old"] > 0
