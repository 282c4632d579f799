"""The overlap constraint (``object_big``, gridsize > 1): merge a group, cut it back out.

A sample holds ``C = g*g`` object patches ``[B, C, N, N]`` of neighbouring scan
positions.  Patch ``c`` of sample ``b`` is centred at the group centre plus
``offsets[b, c] = (x, y)`` pixels (docs/conventions.md).  The constraint:

1. Put each patch on a shared canvas ``[B, M, M]`` whose centre pixel ``(M//2, M//2)``
   is the group centre: zero-pad the patch to ``M x M`` and translate it by
   ``+offsets[b, c]`` (bilinear, :func:`~ptycho_torch.physics.shifts.translate`).
2. Weight each patch by a central ``N/2 x N/2`` mask translated the same way; the canvas
   is ``sum_c(mask_c * patch_c) / (sum_c mask_c + 1e-3)``.
3. Cut patch ``c`` back out: translate the canvas by ``-offsets[b, c]`` and crop the
   central ``N x N``.

Patches that come from one consistent object come back unchanged in their central
region (up to the factor ``count / (count + 1e-3)``); patches that disagree are averaged
where their masks overlap.  Outside the union of the masks the result is zero.

Canvas size (a documented choice): upstream uses ``M = N + (g-1)*ceil(max neighbour
distance)``.  Here ``M`` is computed from the offsets of the batch,
``M = N + 2*ceil(max |offset component|)`` (even because N is even), the smallest
canvas on which every translated patch fits completely.  Since nothing falls off the
canvas, the re-extracted patches do not depend on ``M`` beyond that minimum; a caller
may pass a larger ``canvas_size`` to keep shapes fixed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ptycho_torch.physics.shifts import translate

__all__ = ["COUNT_EPS", "canvas_size", "central_mask", "merge_patches", "extract_patches", "overlap_constraint"]

COUNT_EPS = 1e-3
"""Added to the per-pixel mask count before dividing (avoids 0/0 outside the masks)."""


def canvas_size(n: int, offsets_xy: torch.Tensor) -> int:
    """Smallest even canvas side ``M`` (pixels) that holds N x N patches at ``offsets_xy``.

    ``offsets_xy``: ``[B, C, 2]`` pixel offsets from the group centre.
    """
    max_off = float(offsets_xy.detach().abs().max()) if offsets_xy.numel() else 0.0
    m = n + 2 * math.ceil(max_off)
    return m + (m % 2)


def central_mask(n: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``[N, N]`` mask: 1 on the central ``N/2 x N/2`` square (rows/cols N/4..3N/4-1), else 0."""
    mask = torch.zeros(n, n, dtype=dtype, device=device)
    lo, hi = n // 4, n // 4 + n // 2
    mask[lo:hi, lo:hi] = 1.0
    return mask


def _pad_to(images: torch.Tensor, m: int) -> torch.Tensor:
    """Zero-pad the last two dims of ``[B, C, N, N]`` symmetrically to ``M x M``."""
    n = images.shape[-1]
    p = (m - n) // 2
    if p == 0:
        return images
    if images.is_complex():
        return torch.complex(_pad_to(images.real, m), _pad_to(images.imag, m))
    return F.pad(images, (p, m - n - p, p, m - n - p))


def merge_patches(
    patches: torch.Tensor, offsets_xy: torch.Tensor, canvas: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``patches [B, C, N, N]`` at ``offsets_xy [B, C, 2]`` onto one canvas per sample.

    Returns ``(merged [B, 1, M, M], count [B, 1, M, M])``: the mask-weighted average
    (numerator divided by ``count + COUNT_EPS``) and the summed translated masks.
    """
    b, c, n, _ = patches.shape
    m = canvas if canvas is not None else canvas_size(n, offsets_xy)
    if m < canvas_size(n, offsets_xy):
        raise ValueError(f"merge_patches: canvas {m} too small for offsets (needs {canvas_size(n, offsets_xy)})")
    real_dtype = patches.real.dtype if patches.is_complex() else patches.dtype
    mask = central_mask(n, dtype=real_dtype, device=patches.device).expand(b, c, n, n)
    placed_mask = translate(_pad_to(mask, m), offsets_xy)
    placed = translate(_pad_to(patches * mask, m), offsets_xy)
    count = placed_mask.sum(dim=1, keepdim=True)
    merged = placed.sum(dim=1, keepdim=True) / (count + COUNT_EPS)
    return merged, count


def extract_patches(canvas: torch.Tensor, offsets_xy: torch.Tensor, n: int) -> torch.Tensor:
    """Cut ``C`` patches ``[B, C, N, N]`` centred at ``offsets_xy`` out of ``canvas [B, 1, M, M]``."""
    b, c = offsets_xy.shape[:2]
    m = canvas.shape[-1]
    moved = translate(canvas.expand(b, c, m, m), -offsets_xy)
    lo = (m - n) // 2
    return moved[..., lo : lo + n, lo : lo + n]


def overlap_constraint(patches: torch.Tensor, offsets_xy: torch.Tensor, canvas: int | None = None) -> torch.Tensor:
    """Merge a group's patches on a shared canvas and cut them back out (same shape/dtype).

    ``patches``: ``[B, C, N, N]`` (complex64 object patches); ``offsets_xy``: ``[B, C, 2]``.
    With ``C == 1`` the merge still applies the central mask and the ``1e-3`` count floor.
    """
    merged, _ = merge_patches(patches, offsets_xy, canvas)
    return extract_patches(merged, offsets_xy, patches.shape[-1])
