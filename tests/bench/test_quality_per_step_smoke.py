"""The quality-per-step benchmark runs end to end (``--smoke``: a tiny scan, a few steps, seconds).

Checks the JSON it writes (every run has the documented keys, finite SSIMs in range, a
summary per (case, recipe, steps)), that recipes compose from base + modifiers, and that
bad recipe names are refused with the valid ones.  It does not judge quality.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality_per_step.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_quality_per_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture(scope="module")
def smoke_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("qps") / "qps.json"
    returned = bench.main(["--smoke", "--cases", "gs1-curved", "gs2-disk", "--recipes", "cnn+bf16", "resunet-fno+cos+maewarm",
                           "--seeds", "0", "--threads", "2", "--stitching", "both", "--out", str(out)])
    return returned, json.loads(out.read_text())


def test_runs_and_summary(bench, smoke_run):
    returned, written = smoke_run
    assert written["smoke"] is True and written["threads"] == 2
    assert len(written["runs"]) == 4 == len(returned["runs"])
    for run in written["runs"]:
        for key in ("case", "recipe", "steps", "seed", "amp_ssim", "phase_ssim", "collapsed", "samples_per_s", "wall_s",
                    "train_steps"):
            assert key in run, key
        assert run["steps"] == bench.SMOKE_STEPS and run["train_steps"] >= 2
        assert -1 <= run["amp_ssim"] <= 1 and -1 <= run["phase_ssim"] <= 1
        assert math.isfinite(run["wall_s"]) and run["wall_s"] > 0
        assert run["amp_ssim"] == run["amp_ssim_probe_weighted"] and -1 <= run["amp_ssim_central_crop"] <= 1
    assert {(r["case"], r["recipe"]) for r in written["summary"]} == {
        (c, r) for c in ("gs1-curved", "gs2-disk") for r in ("cnn+bf16", "resunet-fno+cos+maewarm")}
    assert {r["recipe"]: r["precision"] for r in written["runs"]} == {
        "cnn+bf16": "bf16-mixed", "resunet-fno+cos+maewarm": "default"}
    assert "amp SSIM" in bench.format_table(written["summary"])


def test_recipe_composition(bench):
    recipe = bench.parse_recipe("resunet-bn+cos+clip1+b8")
    assert recipe.model["architecture"] == "resunet" and recipe.generator_kwargs == {"norm": "batch"}
    assert recipe.config["scheduler"] == "WarmupCosine" and recipe.config["gradient_clip_val"] == 1.0
    assert recipe.config["batch_size"] == 8
    assert bench.parse_recipe("resunet+bf16").execution == {"precision": "bf16-mixed"}
    assert bench.parse_recipe("resunet+bf16+fp32").execution == {"precision": "32-true"}  # left to right
    assert bench.parse_recipe("resunet").execution == {}


@pytest.mark.parametrize("spec", ["transformer", "cnn+turbo"])
def test_unknown_recipe_is_refused(bench, spec, tmp_path):
    with pytest.raises(SystemExit, match="valid"):
        bench.main(["--smoke", "--recipes", spec, "--out", str(tmp_path / "x.json")])
