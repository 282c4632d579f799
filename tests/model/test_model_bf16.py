"""bf16-mixed on the CPU: the network runs under autocast, the physics and the loss in float32.

Regression for issue 12: ``precision: bf16-mixed`` at gridsize 2 crashed inside the overlap
constraint (``torch.complex`` on bf16 parts).  Here one real training step through
``run_training`` and one inference through ``run_inference`` at gridsize 1 and 2, plus a
direct check of which dtypes each stage sees under autocast.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from ptycho_torch.evaluate.stitch import WEIGHT_FLOOR
from ptycho_torch.factory import create_inference_payload, create_training_payload
from ptycho_torch.model.module import PtychoPINNModule
from ptycho_torch.physics.forward import probe_disk_mask
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan
from ptycho_torch.workflows.infer import run_inference
from ptycho_torch.workflows.train import run_training


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("bf16") / "scan.npz"
    return write_scan(SimulationConfig(probe="disk", object_size=96, step=8, seed=5), path)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_bf16_mixed_trains_one_step_and_infers(scan, tmp_path, gridsize):
    overrides = {
        "train_data_file": str(scan),
        "output_dir": str(tmp_path / "run"),
        "nepochs": 1,
        "n_groups": 4,
        "batch_size": 4,  # one optimiser step
        "model.gridsize": gridsize,
        "model.n_filters_scale": 1,
        "seed": 0,
        "execution.accelerator": "cpu",
        "execution.precision": "bf16-mixed",
        "execution.enable_progress_bar": False,
        "execution.logger_backend": "csv",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_training(create_training_payload(overrides=overrides), resume="never")
        assert result.completed and result.global_step == 1
        inference = create_inference_payload(
            overrides={
                "model_path": str(result.bundle_path),
                "test_data_file": str(scan),
                "output_dir": str(tmp_path / "recon"),
                "execution.accelerator": "cpu",
                "execution.precision": "bf16-mixed",
            }
        )
        out = run_inference(inference)
    npz = np.load(out.npz_path)
    assert npz["object"].dtype == np.complex64
    lit = npz["weights"] >= WEIGHT_FLOOR * npz["weights"].max()  # the pixels stitching covers
    assert np.isfinite(npz["object"][lit]).all() and lit.any()
    metrics = json.loads(out.metrics_path.read_text())
    assert np.isfinite(metrics["amp_ssim"])


@pytest.mark.parametrize("gridsize", [1, 2])
def test_network_in_bf16_physics_and_loss_in_float32(gridsize):
    n, c = 32, gridsize**2
    torch.manual_seed(0)
    module = PtychoPINNModule({"N": n, "gridsize": gridsize, "n_filters_scale": 1},
                              (probe_disk_mask(n) * 3).numpy().astype(np.complex64), mean_total_intensity=50.0, nphotons=1e6)
    g = torch.Generator().manual_seed(1)
    batch = {"diffraction": torch.rand(2, c, n, n, generator=g), "offsets": torch.randn(2, c, 2, generator=g) * 2}
    seen = {}
    first_conv = next(m for m in module.generator.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o.dtype))
    module.forward_model.register_forward_hook(lambda m, i, o: seen.__setitem__("physics", (o[0].dtype, o[1].dtype)))
    reference = module.compute_loss(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.compute_loss(batch)
    assert seen["conv"] == torch.bfloat16  # the network did run in bf16
    assert seen["physics"] == (torch.float32, torch.complex64)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    # same weights, only the network's rounding differs: the loss agrees closely
    assert loss.item() == pytest.approx(reference.item(), rel=1e-2)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(gr).all() for gr in grads)
