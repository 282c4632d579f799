"""The overlap constraint: consistent patches survive merge + re-extract; others are averaged."""

import pytest
import torch

from ptycho_torch.physics.overlap import COUNT_EPS, canvas_size, central_mask, merge_patches, overlap_constraint
from ptycho_torch.physics.shifts import translate


def _smooth_object(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    amp = torch.full((size, size), 0.6)
    phase = torch.zeros(size, size)
    for _ in range(8):
        cx, cy = (torch.rand(2, generator=g) * size).tolist()
        w = 4 + 6 * torch.rand(1, generator=g).item()
        blob = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w**2))
        amp = amp + 0.3 * blob
        phase = phase + 0.8 * blob
    return (amp * torch.exp(1j * phase)).to(torch.complex64)


def _cut(obj, centre_xy, offsets_xy, n):
    """Patches [1, C, N, N] of obj centred at centre + offsets (sub-pixel via translate)."""
    size = obj.shape[-1]
    c = offsets_xy.shape[0]
    whole = obj.view(1, 1, size, size).expand(1, c, size, size)
    # move the point centre+off to the image centre, then crop N x N around it
    shift = torch.tensor([size // 2, size // 2], dtype=torch.float32) - (centre_xy + offsets_xy)
    moved = translate(whole, shift.view(1, c, 2))
    lo = size // 2 - n // 2
    return moved[..., lo : lo + n, lo : lo + n]


def test_canvas_size_from_offsets():
    off = torch.tensor([[[-3.2, 1.0], [3.2, -1.0]]])
    assert canvas_size(32, off) == 32 + 2 * 4
    assert canvas_size(32, torch.zeros(1, 4, 2)) == 32


def test_consistent_patches_come_back_unchanged_integer_offsets():
    n = 32
    obj = _smooth_object(96)
    offsets = torch.tensor([[-5.0, -4.0], [5.0, -4.0], [-5.0, 4.0], [5.0, 4.0]])  # mean 0, integer
    offsets = offsets - offsets.mean(0)
    patches = _cut(obj, torch.tensor([48.0, 48.0]), offsets, n)
    out = overlap_constraint(patches, offsets.view(1, 4, 2))
    _, count = merge_patches(patches, offsets.view(1, 4, 2))
    lo, hi = n // 4, 3 * n // 4
    centre_in, centre_out = patches[..., lo:hi, lo:hi], out[..., lo:hi, lo:hi]
    # every central pixel is covered by its own mask (count >= 1): exact up to count/(count+eps)
    assert torch.allclose(centre_out, centre_in, atol=2 * COUNT_EPS, rtol=0)
    assert count.max() == pytest.approx(4.0) and out.shape == patches.shape and out.dtype == torch.complex64


def test_consistent_patches_come_back_close_subpixel_offsets():
    n = 32
    obj = _smooth_object(96, seed=1)
    offsets = torch.tensor([[-4.3, -3.6], [5.1, -3.2], [-4.7, 4.4], [3.9, 2.4]])
    offsets = offsets - offsets.mean(0)
    patches = _cut(obj, torch.tensor([47.6, 48.3]), offsets, n)
    out = overlap_constraint(patches, offsets.view(1, 4, 2))
    lo, hi = n // 4 + 1, 3 * n // 4 - 1
    err = (out[..., lo:hi, lo:hi] - patches[..., lo:hi, lo:hi]).abs().max().item()
    # only bilinear re-interpolation of a smooth object: small compared with amplitudes ~0.6-1.2
    assert err < 0.03


def test_inconsistent_patches_are_averaged_where_they_overlap():
    n = 16
    values = torch.tensor([1.0, 3.0])
    patches = values.view(1, 2, 1, 1).expand(1, 2, n, n).to(torch.complex64)
    offsets = torch.tensor([[[-2.0, 0.0], [2.0, 0.0]]])
    out = overlap_constraint(patches, offsets)
    scale = 2 / (2 + COUNT_EPS)
    # patch 0 is centred 2 px left of the group centre, patch 1 2 px right; masks span 8 px,
    # so canvas columns where both masks sit hold the average 2; others keep their own value
    # patch 0 col j <-> canvas col j - 2 (relative to patch frame); overlap in patch-0 cols 8..11
    assert torch.allclose(out[0, 0, 8, 8:12].real, torch.full((4,), 2.0 * scale), atol=1e-6)
    assert torch.allclose(out[0, 0, 8, 4:8].real, torch.full((4,), 1.0 / (1 + COUNT_EPS)), atol=1e-6)
    assert torch.allclose(out[0, 1, 8, 4:8].real, torch.full((4,), 2.0 * scale), atol=1e-6)
    assert torch.allclose(out[0, 1, 8, 8:12].real, torch.full((4,), 3.0 / (1 + COUNT_EPS)), atol=1e-6)
    # outside the union of the masks the patches are zero
    assert out[0, 0, 0, 0] == 0 and out[0, 1, 8, 14] == 0


def test_overlap_constraint_is_differentiable_and_batched():
    n = 16
    g = torch.Generator().manual_seed(2)
    patches = torch.complex(torch.randn(3, 4, n, n, generator=g), torch.randn(3, 4, n, n, generator=g)).requires_grad_(True)
    offsets = torch.randn(3, 4, 2, generator=g) * 2
    out = overlap_constraint(patches, offsets)
    out.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(patches.grad)).all()
    # each sample is merged on its own: changing sample 1 leaves sample 0 alone
    p2 = patches.detach().clone()
    p2[1] = 0
    assert torch.equal(overlap_constraint(p2, offsets)[0], out.detach()[0])


def test_central_mask():
    m = central_mask(8)
    assert m.sum() == 16 and m[2, 2] == 1 and m[1, 2] == 0 and m[5, 5] == 1 and m[6, 5] == 0
