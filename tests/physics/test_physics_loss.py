"""Tests of the Poisson NLL, the MAE and their combination."""

import math

import pytest
import torch

from ptycho_torch.physics.loss import amplitude_mae, combined_loss, poisson_nll


def test_poisson_nll_equals_log_pmf_sum():
    counts = torch.tensor([[[[0.0, 1.0], [4.0, 9.0]]]])  # k
    rate = torch.tensor([[[[0.5, 2.0], [3.0, 10.0]]]])  # lambda
    x = counts.sqrt()
    a = rate.sqrt()
    expected = sum(
        r - k * math.log(r + 1e-8) + math.lgamma(k + 1) for k, r in zip(counts.flatten().tolist(), rate.flatten().tolist())
    )
    got = poisson_nll(a, x, 1.0, 1.0)
    assert got.item() == pytest.approx(expected / x.mean().item(), rel=1e-5)


def test_poisson_nll_is_minimal_at_true_rate():
    g = torch.Generator().manual_seed(0)
    true_amp = torch.rand(4, 1, 16, 16, generator=g) + 0.1
    s = 30.0
    counts = torch.poisson((s * true_amp) ** 2, generator=g)
    measured = counts.sqrt() / s
    factors = torch.linspace(0.8, 1.2, 41)
    losses = torch.stack([poisson_nll(f * true_amp, measured, s, s) for f in factors])
    best = factors[losses.argmin()].item()
    assert best == pytest.approx(1.0, abs=0.02)
    assert losses[0] > losses.min() and losses[-1] > losses.min()


def test_poisson_gradient_vanishes_at_expected_counts():
    amp = torch.full((2, 1, 4, 4), 0.7, requires_grad=True)
    measured = torch.full((2, 1, 4, 4), 0.7)
    poisson_nll(amp, measured, 5.0, 5.0).backward()
    assert amp.grad.abs().max() < 1e-4


def test_intensity_scale_multiplies_only_prediction():
    amp = torch.full((1, 1, 2, 2), 0.5)
    measured = torch.full((1, 1, 2, 2), 1.0)
    # doubling the prediction scale exactly compensates half the amplitude
    a = poisson_nll(amp, measured, 2.0, 1.0)
    b = poisson_nll(measured, measured, 1.0, 1.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_mae_and_combination():
    pred = torch.tensor([[[[1.0, 2.0]]]])
    meas = torch.tensor([[[[1.5, 1.0]]]])
    assert amplitude_mae(pred, meas, 2.0, 2.0).item() == pytest.approx((1.0 + 2.0) / 2)
    nll = poisson_nll(pred, meas, 2.0, 2.0)
    mae = amplitude_mae(pred, meas, 2.0, 2.0)
    mix = combined_loss(pred, meas, 2.0, 2.0, nll_weight=0.25, mae_weight=0.5)
    assert mix.item() == pytest.approx(0.25 * nll.item() + 0.5 * mae.item(), rel=1e-6)
    assert combined_loss(pred, meas, 2.0, 2.0, 0.0, 1.0).item() == pytest.approx(mae.item())
    with pytest.raises(ValueError, match="both 0"):
        combined_loss(pred, meas, 1.0, 1.0, 0.0, 0.0)
