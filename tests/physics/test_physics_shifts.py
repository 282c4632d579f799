"""Analytic tests of the sub-pixel translation stage."""

import pytest
import torch

from ptycho_torch.physics.shifts import KERNELS, shift_matrix, shift_zero_fill, translate


def _gaussian(n, cx, cy, sigma=3.0):
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def _centroid(img):
    y, x = torch.meshgrid(torch.arange(img.shape[-2], dtype=img.dtype), torch.arange(img.shape[-1], dtype=img.dtype), indexing="ij")
    w = img.sum()
    return float((img * x).sum() / w), float((img * y).sum() / w)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dx,dy", [(0, 0), (3, -2), (-5, 4), (7, 7), (-20, 1), (40, 0)])
def test_integer_shift_is_exact_roll_with_zero_fill(dx, dy, kernel):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, 16, 20, generator=g)
    shifts = torch.tensor([dx, dy], dtype=torch.float32).expand(2, 3, 2)
    out = translate(img, shifts, kernel)
    assert torch.equal(out, shift_zero_fill(img, dx, dy))


def test_integer_shift_complex_is_exact_and_keeps_dtype():
    g = torch.Generator().manual_seed(1)
    img = torch.complex(torch.randn(1, 2, 12, 12, generator=g), torch.randn(1, 2, 12, 12, generator=g))
    shifts = torch.tensor([[[2.0, -3.0], [-1.0, 5.0]]])
    out = translate(img, shifts)
    assert out.dtype == torch.complex64
    assert torch.equal(out[0, 0], shift_zero_fill(img[0, 0], 2, -3))
    assert torch.equal(out[0, 1], shift_zero_fill(img[0, 1], -1, 5))


def test_subpixel_shift_of_gaussian_moves_its_centroid():
    n = 48
    img = _gaussian(n, 24.0, 24.0).view(1, 1, n, n)
    out = translate(img, torch.tensor([[[1.3, -0.6]]], dtype=torch.float64))
    cx, cy = _centroid(out[0, 0])
    assert cx == pytest.approx(25.3, abs=1e-3)
    assert cy == pytest.approx(23.4, abs=1e-3)
    # the shape follows the analytic shifted Gaussian up to the bilinear interpolation error,
    # bounded by |f''| * t(1-t) / 2 per axis ~ (1/sigma^2) * 0.21 / 2 * 2 axes ~ 0.024
    err = (out[0, 0] - _gaussian(n, 25.3, 23.4)).abs().max()
    assert err < 0.03


def test_per_channel_shifts_are_independent():
    n = 40
    img = _gaussian(n, 20.0, 20.0).view(1, 1, n, n).expand(2, 2, n, n).contiguous()
    shifts = torch.tensor([[[0.5, 0.0], [-2.25, 1.75]], [[0.0, 3.5], [4.0, -4.0]]], dtype=torch.float64)
    out = translate(img, shifts)
    for b in range(2):
        for c in range(2):
            cx, cy = _centroid(out[b, c])
            assert cx == pytest.approx(20.0 + float(shifts[b, c, 0]), abs=1e-3)
            assert cy == pytest.approx(20.0 + float(shifts[b, c, 1]), abs=1e-3)


def test_linear_ramp_half_pixel_interior_is_exact():
    ramp = torch.arange(10, dtype=torch.float32).view(1, 1, 1, 10).expand(1, 1, 4, 10)
    out = translate(ramp, torch.tensor([[[0.5, 0.0]]]))
    assert torch.allclose(out[0, 0, :, 1:], ramp[0, 0, :, 1:] - 0.5)
    assert torch.allclose(out[0, 0, :, 0], torch.zeros(4))  # half of the zero outside


def test_gradient_flows_to_images_and_shifts():
    img = _gaussian(24, 12.0, 12.0).view(1, 1, 24, 24).float().requires_grad_(True)
    shifts = torch.tensor([[[0.3, 0.7]]], requires_grad=True)
    out = translate(img, shifts)
    (out * torch.arange(24.0).view(1, 1, 1, 24)).sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all()
    assert shifts.grad is not None and shifts.grad[0, 0, 0] > 0  # moving right raises the x-moment


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="shifts_xy"):
        translate(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="images"):
        translate(torch.zeros(4, 4), torch.zeros(1, 1, 2))


def test_lanczos_subpixel_shift_is_far_more_accurate_than_bilinear():
    n = 48
    img = _gaussian(n, 24.0, 24.0, sigma=2.0).view(1, 1, n, n)
    shifts = torch.tensor([[[0.5, -0.37]]], dtype=torch.float64)
    truth = _gaussian(n, 24.5, 23.63, sigma=2.0)
    err = {k: float((translate(img, shifts, k)[0, 0] - truth).abs().max()) for k in KERNELS}
    # a sigma-2 Gaussian has detail near the grid's limit: bilinear smears it, Lanczos-3 does not
    assert err["lanczos3"] < 0.01 < err["bilinear"]
    assert err["lanczos3"] < err["bilinear"] / 5


def test_lanczos_weights_sum_to_one_and_keep_a_constant_interior():
    w = shift_matrix(torch.tensor([0.3, -1.7, 2.5]), 20, "lanczos3")
    interior = w[:, 5:15].sum(-1)
    assert torch.allclose(interior, torch.ones_like(interior), atol=1e-6)
    out = translate(torch.ones(1, 1, 20, 20), torch.tensor([[[0.3, -0.6]]]), "lanczos3")
    assert torch.allclose(out[0, 0, 4:16, 4:16], torch.ones(12, 12), atol=1e-6)


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel"):
        translate(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2), "cubic")


@pytest.mark.parametrize("kernel", KERNELS)
def test_banded_translate_equals_the_dense_matrix_form_values_and_gradients(kernel):
    from ptycho_torch.physics.shifts import translate_dense

    g = torch.Generator().manual_seed(7)
    img = torch.complex(torch.randn(2, 3, 24, 20, generator=g), torch.randn(2, 3, 24, 20, generator=g)).to(torch.complex128)
    # sub-pixel, whole, negative and beyond-the-image shifts
    shifts = torch.tensor([[[0.3, -1.7], [2.5, 4.0], [-6.25, 0.5]], [[11.9, -3.01], [-30.0, 2.2], [0.0, 0.0]]], dtype=torch.float64)
    a_img, a_sh = img.clone().requires_grad_(True), shifts.clone().requires_grad_(True)
    b_img, b_sh = img.clone().requires_grad_(True), shifts.clone().requires_grad_(True)
    banded, dense = translate(a_img, a_sh, kernel), translate_dense(b_img, b_sh, kernel)
    assert banded.dtype == dense.dtype == torch.complex128
    assert torch.allclose(banded, dense, atol=1e-12, rtol=0)
    probe = torch.randn(banded.shape, generator=g, dtype=torch.float64)
    (banded.real * probe + banded.imag * probe.flip(-1)).sum().backward()
    (dense.real * probe + dense.imag * probe.flip(-1)).sum().backward()
    assert torch.allclose(a_img.grad, b_img.grad, atol=1e-12, rtol=0)
    assert torch.allclose(a_sh.grad, b_sh.grad, atol=1e-9, rtol=0)


def test_translate_parts_without_zero_fill_differs_only_where_sources_are_outside():
    from ptycho_torch.physics.shifts import translate_parts

    g = torch.Generator().manual_seed(8)
    src = torch.randn(3, 16, 16, 2, generator=g)
    shifts = torch.tensor([[2.4, -1.5], [-3.0, 0.0], [0.7, 5.2]])
    filled, clamped = translate_parts(src, shifts, "lanczos3"), translate_parts(src, shifts, "lanczos3", zero_fill=False)
    # pixels whose taps all read inside the image agree; the rest differ
    for m, (sx, sy) in enumerate(shifts.tolist()):
        x0, x1 = int(torch.tensor(sx).floor()) + 3, 16 + int(torch.tensor(sx).floor()) - 3
        y0, y1 = int(torch.tensor(sy).floor()) + 3, 16 + int(torch.tensor(sy).floor()) - 3
        inner = (slice(max(y0, 0), min(y1, 16)), slice(max(x0, 0), min(x1, 16)))
        assert torch.allclose(filled[m][inner], clamped[m][inner], atol=1e-6)
    assert not torch.allclose(filled, clamped)
