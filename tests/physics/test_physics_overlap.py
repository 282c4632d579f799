"""The overlap constraint: consistent patches survive it; disagreeing patches are averaged."""

import pytest
import torch
import torch.nn.functional as F

from ptycho_torch.physics.overlap import COUNT_EPS, SUBPIXEL_MARGIN, central_mask, overlap_constraint, relative_shifts
from ptycho_torch.physics.shifts import shift_zero_fill, translate


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
    """Patches [1, C, N, N] of obj centred at centre + offsets (sub-pixel via Lanczos-3)."""
    size = obj.shape[-1]
    c = offsets_xy.shape[0]
    whole = obj.view(1, 1, size, size).expand(1, c, size, size)
    # move the point centre+off to the image centre, then crop N x N around it
    shift = torch.tensor([size // 2, size // 2], dtype=torch.float32) - (centre_xy + offsets_xy)
    moved = translate(whole, shift.view(1, c, 2), "lanczos3")
    lo = size // 2 - n // 2
    return moved[..., lo : lo + n, lo : lo + n]


def _canvas_reference(patches, offsets, m):
    """The canvas route for integer offsets: pad to M, roll onto the canvas, average, roll back, crop."""
    b, c, n, _ = patches.shape
    pad = (m - n) // 2
    mask = central_mask(n).expand(b, c, n, n)
    num = torch.zeros(b, m, m, dtype=patches.dtype)
    count = torch.zeros(b, m, m)
    for k in range(c):
        dx, dy = (int(v) for v in offsets[0, k])
        num += shift_zero_fill(_pad_complex(patches[:, k] * mask[:, k], pad), dx, dy)
        count += shift_zero_fill(F.pad(mask[:, k], (pad,) * 4), dx, dy)
    merged = num / (count + COUNT_EPS)
    out = []
    for k in range(c):
        dx, dy = (int(v) for v in offsets[0, k])
        out.append(shift_zero_fill(merged, -dx, -dy)[:, pad : pad + n, pad : pad + n])
    return torch.stack(out, dim=1)


def _pad_complex(z, pad):
    return torch.complex(F.pad(z.real, (pad,) * 4), F.pad(z.imag, (pad,) * 4))


def test_integer_offsets_match_the_canvas_formulation_exactly():
    n = 32
    g = torch.Generator().manual_seed(4)
    patches = torch.complex(torch.randn(1, 4, n, n, generator=g), torch.randn(1, 4, n, n, generator=g))
    offsets = torch.tensor([[[-5.0, -3.0], [4.0, -3.0], [-5.0, 4.0], [6.0, 2.0]]])
    out = overlap_constraint(patches, offsets)
    ref = _canvas_reference(patches, offsets, m=n + 2 * 6)
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)


def test_consistent_patches_come_back_unchanged_integer_offsets():
    n = 32
    obj = _smooth_object(96)
    offsets = torch.tensor([[-5.0, -4.0], [5.0, -4.0], [-5.0, 4.0], [5.0, 4.0]])
    patches = _cut(obj, torch.tensor([48.0, 48.0]), offsets, n)
    out = overlap_constraint(patches, offsets.view(1, 4, 2))
    lo, hi = n // 4, 3 * n // 4
    # every central pixel is covered by its own mask (count >= 1): exact up to count/(count+eps)
    assert torch.allclose(out[..., lo:hi, lo:hi], patches[..., lo:hi, lo:hi], atol=2 * COUNT_EPS, rtol=0)
    assert out.shape == patches.shape and out.dtype == torch.complex64


def test_consistent_patches_come_back_close_subpixel_offsets_and_sign_matters():
    n = 32
    obj = _smooth_object(96, seed=1)
    offsets = torch.tensor([[-4.3, -3.6], [5.1, -3.2], [-4.7, 4.4], [3.9, 2.4]])
    offsets = offsets - offsets.mean(0)
    patches = _cut(obj, torch.tensor([47.6, 48.3]), offsets, n)
    lo, hi = n // 4, 3 * n // 4

    def err(off):
        out = overlap_constraint(patches, off.view(1, 4, 2))
        return (out[..., lo:hi, lo:hi] - patches[..., lo:hi, lo:hi]).abs().max().item()

    # neighbours are moved once, by Lanczos-3: tiny error for a smooth object (amplitudes ~0.6-1.2)
    assert err(offsets) < 5e-3
    # the opposite sign puts neighbours' content in the wrong place
    assert err(-offsets) > 10 * err(offsets)


def test_inconsistent_patches_are_averaged_where_they_overlap():
    n = 16
    values = torch.tensor([1.0, 3.0])
    patches = values.view(1, 2, 1, 1).expand(1, 2, n, n).to(torch.complex64)
    offsets = torch.tensor([[[-2.0, 0.0], [2.0, 0.0]]])
    out = overlap_constraint(patches, offsets)
    scale = 2 / (2 + COUNT_EPS)
    # patch 0 is centred 2 px left of the group centre, patch 1 2 px right; masks span 8 px
    # (cols 4..11 of each patch); in patch 0's frame patch 1's mask covers cols 8..15
    assert torch.allclose(out[0, 0, 8, 8:12].real, torch.full((4,), 2.0 * scale), atol=1e-6)
    assert torch.allclose(out[0, 0, 8, 4:8].real, torch.full((4,), 1.0 / (1 + COUNT_EPS)), atol=1e-6)
    assert torch.allclose(out[0, 0, 8, 12:16].real, torch.full((4,), 3.0 / (1 + COUNT_EPS)), atol=1e-6)
    assert torch.allclose(out[0, 1, 8, 4:8].real, torch.full((4,), 2.0 * scale), atol=1e-6)
    assert torch.allclose(out[0, 1, 8, 8:12].real, torch.full((4,), 3.0 / (1 + COUNT_EPS)), atol=1e-6)
    # outside the union of the masks the patches are zero
    assert out[0, 0, 0, 0] == 0 and out[0, 1, 8, 14] == 0 and out[0, 0, 8, 3] == 0


def test_subpixel_neighbours_use_the_shrunk_mask():
    n = 32
    patches = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, n, n).to(torch.complex64)
    offsets = torch.tensor([[[-2.25, 0.0], [2.25, 0.0]]])  # relative move 4.5 px
    out = overlap_constraint(patches, offsets)
    row = out[0, 0, n // 2].real
    # patch 1's shrunk mask (cols 8+m..23-m of its own frame) lands 4.5 px right in patch 0's frame
    first_shared = 8 + SUBPIXEL_MARGIN + 5
    assert row[first_shared - 2] == pytest.approx(1.0 / (1 + COUNT_EPS), abs=1e-6)  # own value only
    assert row[first_shared] == pytest.approx(2.0 * 2 / (2 + COUNT_EPS), abs=1e-5)  # averaged
    # the shrunk mask reaches half a pixel beyond patch 0's own (col 24): there patch 0 shows
    # patch 1's Lanczos-moved content (ringing < 1 %); further out it is zero
    assert row[24].item() == pytest.approx(3.0, rel=1e-2)
    assert torch.all(row[25:] == 0) and torch.all(row[: 8] == 0)


def test_single_patch_only_applies_the_mask():
    n = 16
    p = torch.full((2, 1, n, n), 2.0 + 1.0j, dtype=torch.complex64)
    out = overlap_constraint(p, torch.zeros(2, 1, 2))
    expected = p * central_mask(n) / (central_mask(n) + COUNT_EPS)
    assert torch.allclose(out, expected)


def test_overlap_constraint_is_differentiable_and_batched():
    n = 16
    g = torch.Generator().manual_seed(2)
    patches = torch.complex(torch.randn(3, 4, n, n, generator=g), torch.randn(3, 4, n, n, generator=g)).requires_grad_(True)
    offsets = torch.randn(3, 4, 2, generator=g) * 2
    out = overlap_constraint(patches, offsets)
    out.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(patches.grad)).all()
    # each sample is constrained on its own: changing sample 1 leaves sample 0 alone
    p2 = patches.detach().clone()
    p2[1] = 0
    assert torch.equal(overlap_constraint(p2, offsets)[0], out.detach()[0])


def test_relative_shifts_and_central_mask():
    off = torch.tensor([[[1.0, 2.0], [4.0, -1.0]]])
    rel = relative_shifts(off)
    assert rel.shape == (1, 2, 2, 2)
    assert rel[0, 0, 1].tolist() == [3.0, -3.0] and rel[0, 1, 0].tolist() == [-3.0, 3.0] and rel[0, 0, 0].tolist() == [0, 0]
    m = central_mask(8)
    assert m.sum() == 16 and m[2, 2] == 1 and m[1, 2] == 0 and m[5, 5] == 1 and m[6, 5] == 0
    assert central_mask(16, margin=1).sum() == 36 and central_mask(8, margin=2).sum() == 0


def test_moved_masks_equal_the_bilinear_translation_of_the_mask():
    from ptycho_torch.physics.overlap import _moved_masks

    n = 32
    shifts = torch.tensor([[[0.0, 0.0], [3.0, -2.0], [1.25, -0.5], [-4.7, 2.0], [9.5, 9.5], [-20.0, 0.0]]])
    on_grid = (shifts == shifts.round()).all(-1)[..., None, None]
    masks = torch.where(on_grid, central_mask(n), central_mask(n, SUBPIXEL_MARGIN)).expand(1, 6, n, n)
    expected = translate(masks.contiguous(), shifts, "bilinear")
    assert torch.allclose(_moved_masks(shifts, n), expected, atol=1e-6, rtol=0)


def test_banded_constraint_matches_the_dense_all_pairs_formulation():
    """The shipped constraint (own terms unshifted, neighbours banded, no zero fill outside
    the masks) equals the formula evaluated with dense shift matrices over all C*C pairs."""
    from ptycho_torch.physics.overlap import SUBPIXEL_KERNEL, _moved_masks
    from ptycho_torch.physics.shifts import translate_dense

    b, c, n = 3, 4, 32
    g = torch.Generator().manual_seed(9)
    patches = torch.complex(torch.randn(b, c, n, n, generator=g), torch.randn(b, c, n, n, generator=g))
    offsets = torch.tensor([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]]) + torch.randn(b, c, 2, generator=g)
    offsets[0] = offsets[0].round()  # one group on the pixel grid
    shifts = relative_shifts(offsets).reshape(b, c * c, 2)
    weights = _moved_masks(shifts, n).view(b, c, c, n, n)
    sources = patches[:, None].expand(b, c, c, n, n).reshape(b, c * c, n, n)
    moved = translate_dense(sources, shifts, SUBPIXEL_KERNEL).view(b, c, c, n, n)
    expected = (weights * moved).sum(dim=2) / (weights.sum(dim=2) + COUNT_EPS)
    assert torch.allclose(overlap_constraint(patches, offsets), expected, atol=2e-6, rtol=0)
