"""The physics estimate fed to the generator (ptycho_torch/physics/estimate.py).

From noise-free patterns of a known object and the curved probe, the estimate must carry
the patch: its relative error over the lit area (1 = no information, what the uniform start
scores) falls below stated bounds and improves with iterations.  With the overlap constraint
(gridsize 2) the shapes and the no-iteration identity hold; the feature layout is fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptycho_torch.physics.estimate import ESTIMATE_FEATURES, estimate_features, patch_estimate
from ptycho_torch.physics.forward import far_field_amplitude
from ptycho_torch.simulate.objects import lines_object
from ptycho_torch.simulate.probes import curved_probe


def _patches_and_amplitudes(n=64, count=6, seed=3):
    rng = np.random.default_rng(seed)
    obj = lines_object(160, rng)
    probe = torch.as_tensor(np.asarray(curved_probe(n, 0.45 * n)), dtype=torch.complex64)
    starts = rng.integers(0, 160 - n, size=(count, 2))
    patches = torch.stack([torch.as_tensor(obj[y:y + n, x:x + n], dtype=torch.complex64) for y, x in starts])[:, None]
    return patches, probe, far_field_amplitude(patches * probe)


def _relative_error(estimate, truth, probe):
    """Weighted (|P|^2) error of the best complex-scalar fit, over the weighted variance of the truth."""
    w = probe.abs().square() / probe.abs().square().max()
    est, ref = estimate[:, 0], truth[:, 0]
    scale = (est.conj() * ref * w).sum((-2, -1)) / (est.abs().square() * w).sum((-2, -1))
    fit = est * scale[:, None, None]
    mean = (ref * w).sum((-2, -1), keepdim=True) / w.sum()
    return ((fit - ref).abs().square() * w).sum((-2, -1)) / ((ref - mean).abs().square() * w).sum((-2, -1))


def test_estimate_carries_the_patch_and_improves_with_iterations():
    patches, probe, amplitude = _patches_and_amplitudes()
    errors = {k: float(_relative_error(patch_estimate(amplitude, probe, k), patches, probe).median()) for k in (0, 1, 10)}
    assert errors[0] == pytest.approx(1.0, abs=1e-3)  # the uniform start knows nothing
    assert errors[1] < 0.6
    assert errors[10] < 0.35 and errors[10] < errors[1]


def test_zero_iterations_is_the_uniform_start_and_features_layout():
    patches, probe, amplitude = _patches_and_amplitudes(count=2)
    estimate = patch_estimate(amplitude, probe, 0)
    assert torch.equal(estimate, torch.ones_like(estimate))
    features = estimate_features(amplitude, probe, 2)
    assert features.shape == (2, 1 + ESTIMATE_FEATURES, 64, 64) and features.dtype == torch.float32
    assert torch.equal(features[:, :1], amplitude)
    expected = patch_estimate(amplitude, probe, 2)
    assert torch.equal(features[:, 1:2], expected.real) and torch.equal(features[:, 2:3], expected.imag)


def test_group_estimate_uses_the_overlap_constraint():
    patches, probe, amplitude = _patches_and_amplitudes(count=8)
    group = amplitude.view(2, 4, 64, 64)
    offsets = torch.tensor([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]]).expand(2, 4, 2)
    joint = patch_estimate(group, probe, 3, offsets)
    alone = patch_estimate(group, probe, 3)
    assert joint.shape == (2, 4, 64, 64) and torch.isfinite(torch.view_as_real(joint)).all()
    assert not torch.allclose(joint, alone)
    # outside every patch's central N/2 mask and its neighbours' (moved by 8 px) the constraint leaves nothing
    assert float(joint[..., :2, :].abs().max()) < 1e-6
