"""Every registered architecture: contract, one training step, bundle round trip; ResUNet details."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptycho_torch.bundle import load_bundle, save_bundle
from ptycho_torch.config.canonical import ModelConfig, TrainingConfig
from ptycho_torch.config.io import config_to_dict
from ptycho_torch.model.module import PtychoPINNModule
from ptycho_torch.model.registry import ARCHITECTURES, GENERATORS, build_generator
from ptycho_torch.model.resunet import ResUNetGenerator
from ptycho_torch.physics.forward import probe_disk_mask
from ptycho_torch.workflows.infer import module_from_bundle


def _probe(n):
    return (probe_disk_mask(n) * 3.0).numpy().astype(np.complex64)


def _batch(n, c, b=2):
    g = torch.Generator().manual_seed(1)
    return {
        "diffraction": torch.rand(b, c, n, n, generator=g) * 3,
        "offsets": torch.randn(b, c, 2, generator=g) if c > 1 else torch.zeros(b, c, 2),
    }


def test_registry_matches_the_canonical_choices():
    field = ModelConfig.model_fields["architecture"]
    assert set(ARCHITECTURES) == set(field.annotation.__args__)
    for name in ARCHITECTURES:
        assert f"'{name}'" in field.description, name
    with pytest.raises(ValueError, match="valid"):
        build_generator("fno", 64, 1, 1, "sigmoid", True, True)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("n,gridsize", [(64, 1), (64, 2), (128, 1)])
def test_contract_shapes_dtype_ranges(architecture, n, gridsize):
    torch.manual_seed(0)
    gen = build_generator(architecture, n, gridsize, 1, "sigmoid", True, True)
    c = gridsize * gridsize
    out = gen(torch.rand(2, c, n, n))
    assert out.shape == (2, c, n, n) and out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()
    assert out.abs().max() <= 1.0 and out.angle().abs().max() <= math.pi + 1e-6
    with pytest.raises(ValueError, match="input must be"):
        gen(torch.rand(1, c + 1, n, n))


@pytest.mark.parametrize("estimate_iters", [0, 3])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_training_step_then_bundle_round_trip(architecture, estimate_iters, tmp_path):
    n, gridsize = 64, 2
    training = TrainingConfig(model={"N": n, "gridsize": gridsize, "n_filters_scale": 1, "architecture": architecture,
                                     "estimate_iters": estimate_iters})
    model = training.model.model_dump()
    model["probe_mask_diameter"] = n / 2
    torch.manual_seed(0)
    module = PtychoPINNModule(model, _probe(n), mean_total_intensity=50.0, nphotons=1e6)
    batch = _batch(n, gridsize**2)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    before = {k: v.detach().clone() for k, v in module.generator.named_parameters()}
    loss = module.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in module.generator.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    opt.step()
    changed = [k for k, v in module.generator.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) >= 0.8 * len(before)  # (a few CNN border-head weights can get no gradient on noise)

    path = save_bundle(tmp_path / "m.ptpinn", state_dict=module.state_dict(), training=config_to_dict(training),
                       physics={"mean_total_intensity": 50.0, "nphotons": 1e6}, config_hash="x")
    loaded = module_from_bundle(load_bundle(path), _probe(n))
    assert type(loaded.generator) is GENERATORS[architecture]
    assert loaded.estimate_iters == estimate_iters
    assert loaded.generator.input_channels == gridsize**2 * (3 if estimate_iters else 1)
    module.eval()
    assert torch.equal(module.predict_patches(batch["diffraction"], batch["offsets"]),
                       loaded.predict_patches(batch["diffraction"], batch["offsets"]))


def test_resunet_small_heads_start_near_a_uniform_object():
    torch.manual_seed(0)
    out = ResUNetGenerator(64, 1, 1)(torch.rand(4, 1, 64, 64) * 5)
    amp, phase = out.abs(), out.angle()
    assert abs(float(amp.mean()) - 0.5) < 0.1 and float(phase.abs().max()) < 1.0
    assert float(amp.std()) > 0 and float(phase.std()) > 0  # small, not constant


def test_resunet_zero_border_without_probe_big_and_full_patch_with_it():
    torch.manual_seed(0)
    n, q = 32, 8
    inner = ResUNetGenerator(n, 1, 1, probe_big=False)(torch.rand(2, 1, n, n))
    border = torch.ones(n, n, dtype=torch.bool)
    border[q : q + n // 2, q : q + n // 2] = False
    assert inner[..., border].abs().max() == 0 and (inner[..., ~border].abs() > 0).all()
    full = ResUNetGenerator(n, 1, 1, probe_big=True)(torch.rand(2, 1, n, n))
    assert (full.abs() > 0).all()


@pytest.mark.parametrize("kwargs", [{"norm": "batch"}, {"norm": "none"}, {"act": "gelu"}, {"spectral_modes": 4},
                                    {"full_res_blocks": False}])
def test_resunet_variants_run_and_backpropagate(kwargs):
    torch.manual_seed(0)
    gen = ResUNetGenerator(64, 1, 1, **kwargs)
    out = gen(torch.rand(2, 1, 64, 64))
    (out.real.square().sum() + out.imag.sum()).backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_resunet_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        ResUNetGenerator(48)
    with pytest.raises(ValueError, match="norm"):
        ResUNetGenerator(64, norm="layer")
    with pytest.raises(ValueError, match="amp_activation"):
        ResUNetGenerator(64, amp_activation="tanh")
