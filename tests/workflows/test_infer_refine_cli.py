"""ptycho-infer with physics refinement: outputs, the summary, and bad refinement flags."""

from __future__ import annotations

import json
import warnings

import lightning as L
import numpy as np
import pytest

from ptycho_torch.bundle import save_bundle
from ptycho_torch.cli import infer as infer_cli
from ptycho_torch.config.io import config_to_dict
from ptycho_torch.factory import create_training_payload
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan
from ptycho_torch.workflows.train import build_datamodule, build_module


@pytest.fixture(scope="module")
def untrained_bundle(tmp_path_factory):
    """A bundle with initial weights (no training needed to exercise inference) and its scan."""
    tmp = tmp_path_factory.mktemp("refine-cli")
    scan = write_scan(SimulationConfig(object_size=112, step=8.0, probe="curved", seed=2), tmp / "scan.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = create_training_payload(overrides={
            "train_data_file": str(scan), "output_dir": str(tmp / "run"), "model.n_filters_scale": 1,
            "execution.accelerator": "cpu"})
    datamodule = build_datamodule(payload)
    L.seed_everything(0, verbose=False)
    module = build_module(payload, datamodule)
    bundle = tmp / "model.ptpinn"
    save_bundle(bundle, state_dict=module.state_dict(), training=config_to_dict(payload.training),
                physics={"mean_total_intensity": datamodule.mean_total_intensity, "nphotons": 1e9,
                         "intensity_scale": module.intensity_scale},
                config_hash=payload.config_hash)
    return bundle, scan


def test_refinement_improves_the_fit_and_reports_both_objects(untrained_bundle, tmp_path, capsys):
    bundle, scan = untrained_bundle
    out = tmp_path / "recon"
    code = infer_cli.main(["--model", str(bundle), "--data", str(scan), "--out", str(out), "--accelerator", "cpu",
                           "--refine-iters", "8", "--refine-tolerance", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "network alone:" in printed and "refined:" in printed and len(printed.strip().splitlines()) <= 15
    refinement = json.loads((out / "refinement.json").read_text())
    assert refinement["iterations"] == 8 and len(refinement["misfit_curve"]) == 8
    assert refinement["misfit_after"] < 0.1 * refinement["misfit_before"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["amp_ssim"] > metrics["network"]["amp_ssim"] + 0.3  # an untrained network is a poor start
    saved = np.load(out / "reconstruction.npz")
    assert {"object", "network_object", "weights", "positions"} <= set(saved.files)


def test_cpu_forwards_in_small_parts_give_the_same_object(untrained_bundle, tmp_path, monkeypatch):
    from ptycho_torch.workflows import infer as infer_workflow

    bundle, scan = untrained_bundle
    objects = []
    for patterns in (4, 100_000):  # 4 patterns per forward, or the whole batch in one
        monkeypatch.setattr(infer_workflow, "CPU_FORWARD_PATTERNS", patterns)
        out = tmp_path / f"recon-{patterns}"
        assert infer_cli.main(["--model", str(bundle), "--data", str(scan), "--out", str(out),
                               "--accelerator", "cpu", "--inference-batch-size", "32"]) == 0
        objects.append(np.load(out / "reconstruction.npz")["object"])
    finite = np.isfinite(objects[0])
    assert finite.sum() > 1000 and np.array_equal(finite, np.isfinite(objects[1]))
    np.testing.assert_allclose(objects[0][finite], objects[1][finite], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flag, value, field", [("--refine-iters", "-1", "refine_iters"),
                                                ("--refine-tolerance", "2", "refine_tolerance"),
                                                ("--stitching", "median", "stitching")])
def test_bad_refinement_flags_exit_2_with_one_line(untrained_bundle, tmp_path, capsys, flag, value, field):
    bundle, scan = untrained_bundle
    out = tmp_path / "recon"
    code = infer_cli.main(["--model", str(bundle), "--data", str(scan), "--out", str(out), flag, value])
    assert code == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]
    assert not out.exists()
