"""CNNGenerator: shapes, dtype, heads, gradients."""

import math

import pytest
import torch

from ptycho_torch.model.generator import CNNGenerator


@pytest.mark.parametrize("n,gridsize", [(64, 1), (64, 2), (128, 1), (128, 2)])
def test_shapes_and_dtype(n, gridsize):
    torch.manual_seed(0)
    gen = CNNGenerator(n, gridsize, n_filters_scale=1)
    c = gridsize * gridsize
    out = gen(torch.rand(2, c, n, n))
    assert out.shape == (2, c, n, n) and out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()


def test_amplitude_and_phase_ranges_and_zero_border_without_probe_big():
    torch.manual_seed(0)
    n = 32
    gen = CNNGenerator(n, 1, 1, "sigmoid", probe_big=False)
    out = gen(torch.rand(3, 1, n, n) * 5)
    amp, phase = out.abs(), out.angle()
    assert amp.max() <= 1.0 and phase.abs().max() <= math.pi + 1e-6
    q = n // 4
    border = torch.ones(n, n, dtype=torch.bool)
    border[q : q + n // 2, q : q + n // 2] = False
    assert out[..., border].abs().max() == 0
    assert (amp[..., q : q + n // 2, q : q + n // 2] > 0).all()


def test_probe_big_fills_the_border():
    torch.manual_seed(0)
    out = CNNGenerator(32, 1, 1, probe_big=True)(torch.rand(2, 1, 32, 32))
    assert (out[..., 0, :].abs() > 0).all() and (out[..., :, -1].abs() > 0).all()


def test_pad_object_false_predicts_the_full_patch():
    torch.manual_seed(0)
    gen = CNNGenerator(32, 2, 1, pad_object=False)
    out = gen(torch.rand(1, 4, 32, 32))
    assert out.shape == (1, 4, 32, 32) and (out.abs() > 0).all()


@pytest.mark.parametrize("act", ["sigmoid", "swish", "softplus", "relu"])
def test_gradient_reaches_every_weight(act):
    torch.manual_seed(0)
    gen = CNNGenerator(32, 1, 1, act)
    out = gen(torch.rand(2, 1, 32, 32))
    (out.real.square().sum() + out.imag.sum()).backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert gen.encoder[0].weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        CNNGenerator(48)
    with pytest.raises(ValueError, match="amp_activation"):
        CNNGenerator(64, amp_activation="tanh")
    with pytest.raises(ValueError, match=r"input must be \[B, 4, 64, 64\]"):
        CNNGenerator(64, 2, 1)(torch.rand(1, 1, 64, 64))
