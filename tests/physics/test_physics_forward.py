"""Analytic tests of illumination, far-field diffraction, masks and the ForwardModel."""

import math

import numpy as np
import pytest
import torch

from ptycho_torch.physics.forward import (
    ForwardModel,
    far_field_amplitude,
    gaussian_smooth,
    illuminate,
    probe_disk_mask,
)


def _probe(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    disk = probe_disk_mask(n, n / 2, 1.0)
    phase = torch.randn(n, n, generator=g) * 0.3
    return (disk * torch.exp(1j * phase)).to(torch.complex64)


def test_flat_unit_object_gives_probe_far_field_intensity():
    n, scale = 32, 4.0
    probe = _probe(n)
    obj = torch.ones(2, 1, n, n, dtype=torch.complex64)
    amp = far_field_amplitude(illuminate(obj, probe, scale))
    ref = np.fft.fftshift(np.abs(np.fft.fft2(probe.numpy().astype(np.complex128) / scale)) ** 2) / (n * n)
    assert amp.dtype == torch.float32 and amp.shape == (2, 1, n, n)
    np.testing.assert_allclose(amp[0, 0].numpy() ** 2, ref, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(amp[1, 0].numpy() ** 2, ref, rtol=1e-4, atol=1e-9)


def test_parseval_holds_for_far_field_amplitude():
    g = torch.Generator().manual_seed(3)
    psi = torch.complex(torch.randn(3, 4, 64, 64, generator=g), torch.randn(3, 4, 64, 64, generator=g))
    amp = far_field_amplitude(psi)
    lhs = amp.square().sum(dim=(-2, -1))
    rhs = psi.abs().square().sum(dim=(-2, -1))
    assert torch.allclose(lhs, rhs, rtol=1e-4)


def test_zero_frequency_is_at_centre_pixel():
    n = 16
    psi = torch.full((1, 1, n, n), 2.0 + 0j, dtype=torch.complex64)
    amp = far_field_amplitude(psi)
    # all energy (sum |psi|^2 = 4 n^2) lands in pixel (n//2, n//2)
    assert amp[0, 0, n // 2, n // 2] == pytest.approx(2.0 * n, rel=1e-5)
    amp[0, 0, n // 2, n // 2] = 0
    assert amp.max() < 1e-5


def test_far_field_gradient_is_finite_at_zero_intensity():
    psi = torch.zeros(1, 1, 8, 8, dtype=torch.complex64, requires_grad=True)
    far_field_amplitude(psi).sum().backward()
    assert torch.isfinite(torch.view_as_real(psi.grad)).all()


def test_illuminate_divides_by_probe_scale_and_applies_mask():
    n = 8
    probe = torch.full((n, n), 2.0 + 2.0j, dtype=torch.complex64)
    obj = torch.full((1, 1, n, n), 0.5j, dtype=torch.complex64)
    mask = torch.zeros(n, n)
    mask[2:5, 3:6] = 1
    psi = illuminate(obj, probe, 4.0, mask)
    expected = 0.5j * (2 + 2j) / 4.0
    assert torch.allclose(psi[0, 0, 3, 4], torch.tensor(expected, dtype=torch.complex64))
    assert psi[0, 0, 0, 0] == 0


def test_probe_disk_mask_geometry():
    n = 64
    hard = probe_disk_mask(n, 32, 0.0)
    assert hard.sum().item() == pytest.approx(math.pi * 16**2, rel=0.03)
    soft = probe_disk_mask(n, None, 1.0)
    assert soft[n // 2, n // 2] == pytest.approx(1.0, abs=1e-6)
    assert soft[0, 0] < 1e-6
    # the edge (r = 16) sits at one half; the soft disk keeps the hard disk's area
    assert soft[n // 2, n // 2 + 16].item() == pytest.approx(0.5, abs=1e-6)
    assert soft.sum().item() == pytest.approx(math.pi * 16**2, rel=0.02)
    with pytest.raises(ValueError):
        probe_disk_mask(n, -1.0, 1.0)


def test_gaussian_smooth_conserves_sum_and_has_right_width():
    img = torch.zeros(1, 31, 31)
    img[0, 15, 15] = 1.0
    out = gaussian_smooth(img, 2.0)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    x = torch.arange(31.0) - 15
    var_x = (out[0].sum(0) * x**2).sum().item()
    assert var_x == pytest.approx(4.0, rel=0.05)
    assert gaussian_smooth(img, 0.0) is img
    c = gaussian_smooth(img.to(torch.complex64) * 1j, 2.0)
    assert torch.allclose(c.imag, out, atol=1e-7) and c.real.abs().max() == 0


def test_forward_model_composes_stages_and_keeps_probe_in_state_dict():
    n = 16
    probe = _probe(n)
    fm = ForwardModel(probe, probe_scale=2.0, probe_trainable=True, object_big=True)
    assert "probe_ri" in fm.state_dict() and any(p is fm.probe_ri for p in fm.parameters())
    obj = torch.ones(1, 1, n, n, dtype=torch.complex64)
    amp, out_obj = fm(obj)
    assert torch.equal(out_obj, obj)  # C == 1: no overlap constraint
    assert torch.allclose(amp, far_field_amplitude(illuminate(obj, probe, 2.0)))
    amp.sum().backward()
    assert fm.probe_ri.grad is not None and fm.probe_ri.grad.abs().sum() > 0
    frozen = ForwardModel(probe)
    assert "probe_ri" in frozen.state_dict() and len(list(frozen.parameters())) == 0
    assert torch.equal(frozen.probe, probe)


def test_forward_model_requires_offsets_for_groups():
    fm = ForwardModel(_probe(16))
    with pytest.raises(ValueError, match="offsets"):
        fm(torch.ones(1, 4, 16, 16, dtype=torch.complex64))
