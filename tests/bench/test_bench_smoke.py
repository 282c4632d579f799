"""The reconstruction benchmark still runs end to end (tiny ``--budget smoke``, ~10 s on one core).

Runs ``bench/reconstruction.py``'s ``main`` on both default cases and checks the JSON it
writes: every documented key is present, every number is finite, the speed and count
figures are positive, the metrics are in their ranges, and the file matches what ``main``
returned.  It does not judge reconstruction quality: one epoch on a dozen samples.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "reconstruction.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_reconstruction", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture(scope="module")
def smoke_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "reconstruction.json"
    returned = bench.main(["--budget", "smoke", "--device", "cpu", "--out", str(out)])
    return returned, json.loads(out.read_text())


def test_json_written_and_matches_return(smoke_run):
    returned, written = smoke_run
    assert written["budget"] == "smoke"
    assert set(written) == set(returned)
    assert written["cases"].keys() == returned["cases"].keys()


def test_top_level_keys(bench, smoke_run):
    _, result = smoke_run
    for key in ("budget", "budget_settings", "device", "accelerator", "torch", "repeats", "test_scan",
                "published", "cases", "wall_s", "N", "nphotons"):
        assert key in result, key
    assert result["budget_settings"]["nepochs"] == bench.BUDGETS["smoke"].nepochs
    assert result["device"].startswith("CPU ")
    assert math.isfinite(result["wall_s"]) and result["wall_s"] > 0
    assert sorted(result["cases"]) == sorted(bench.DEFAULT_CASES)


def test_every_case_key_finite(bench, smoke_run):
    _, result = smoke_run
    for name, case in result["cases"].items():
        missing = [k for k in bench.CASE_KEYS if k not in case]
        assert not missing, f"{name} lacks {missing}"
        bad = {k: case[k] for k in bench.CASE_KEYS if not (isinstance(case[k], (int, float)) and math.isfinite(case[k]))}
        assert not bad, f"{name}: non-finite {bad}"
        for key in ("train_samples_per_s", "train_patterns_per_s", "infer_patterns_per_s", "infer_positions_per_s",
                    "train_fit_s", "infer_wall_s", "wall_s", "train_steps", "n_positions"):
            assert case[key] > 0, (name, key, case[key])
        for key in ("amp_ssim", "phase_ssim"):
            assert -1.0 <= case[key] <= 1.0, (name, key, case[key])
        for key in ("amp_frc_cutoff_cpp", "phase_frc_cutoff_cpp"):
            assert 0.0 <= case[key] <= 0.5, (name, key, case[key])
        assert case["train_patterns_per_s"] == pytest.approx(case["train_samples_per_s"] * case["gridsize"] ** 2)
        assert case["published_amp_ssim"] == bench.PUBLISHED[name]["amp_ssim"]


def test_smoke_budget_trains_several_batches(bench, smoke_run):
    """The timer needs batches after the first one; the smoke budget must provide them."""
    _, result = smoke_run
    budget = bench.BUDGETS["smoke"]
    steps_per_epoch = math.ceil(budget.n_groups / budget.batch_size)
    for case in result["cases"].values():
        assert case["train_steps"] == budget.nepochs * steps_per_epoch >= 2


def test_unknown_case_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--budget", "smoke", "--cases", "gs9-none", "--out", str(tmp_path / "x.json")])
