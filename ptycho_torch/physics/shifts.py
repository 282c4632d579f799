"""Sub-pixel translation of image batches by separable interpolation (zero outside).

Sign convention: translating by ``(dx, dy)`` moves the image content by ``+dx`` columns
and ``+dy`` rows, i.e. ``out[..., y, x] = in[..., y - dy, x - dx]``, with samples that
fall outside the input read as zero.

A translation along one axis is a linear map, so it is applied as a matrix: for a shift
``s`` along an axis of length ``L`` the ``[L, L]`` matrix :func:`shift_matrix` has
``W[i, j] = k(i - j - s)`` for the interpolation kernel ``k``; the 2-D translation is
``W_y @ image @ W_x^T``.  Two kernels:

- ``"bilinear"``: ``k(t) = max(0, 1 - |t|)`` (two taps).  Exactly bilinear; it damps
  fine detail (a half-pixel shift halves the amplitude of the highest frequencies).
- ``"lanczos3"``: ``k(t) = sinc(t) * sinc(t / 3)`` for ``|t| < 3`` (six taps), weights
  normalised to sum 1.  Close to band-limited (sinc) interpolation: it keeps fine detail
  that bilinear interpolation loses, at the price of small ringing next to hard edges.

Both kernels give exact 0/1 weights at integer shifts, so an integer shift equals a roll
with zero fill, bit for bit.  Complex tensors are translated part by part (the operation
is linear, so this equals interpolating the complex values).  Gradients flow to the
images and to the shifts (through the kernel weights).
"""

from __future__ import annotations

import torch

__all__ = ["KERNELS", "KERNEL_REACH", "shift_matrix", "translate", "shift_zero_fill"]

KERNEL_REACH = {"bilinear": 1, "lanczos3": 3}
"""How far (pixels) each kernel reads from the sampled point: its half-width."""

KERNELS = tuple(KERNEL_REACH)
"""Interpolation kernels :func:`translate` accepts."""

_LANCZOS_A = KERNEL_REACH["lanczos3"]


def _bilinear(t: torch.Tensor) -> torch.Tensor:
    return (1 - t.abs()).clamp_min(0)


def _lanczos3(t: torch.Tensor) -> torch.Tensor:
    w = torch.where(t.abs() < _LANCZOS_A, torch.sinc(t) * torch.sinc(t / _LANCZOS_A), torch.zeros_like(t))
    # on the sample grid the weights are exactly 1 (t == 0) and 0 (other integers)
    on_grid = t == torch.round(t)
    return torch.where(on_grid, (t == 0).to(t.dtype), w)


_KERNEL_FNS = {"bilinear": _bilinear, "lanczos3": _lanczos3}


def shift_matrix(shift: torch.Tensor, n: int, kernel: str = "bilinear") -> torch.Tensor:
    """Matrices ``[..., n, n]`` that translate a length-``n`` signal by ``shift [...]`` pixels.

    ``(W @ v)[i] = sum_j W[i, j] v[j]`` is ``v`` read at ``i - shift`` with the kernel's
    interpolation; samples outside ``[0, n)`` count as zero.  Weights are normalised so
    that they sum to 1 for a sample far from the ends (bilinear weights already do).
    """
    if kernel not in _KERNEL_FNS:
        raise ValueError(f"shift_matrix: kernel must be one of {KERNELS}, got {kernel!r}")
    reach = KERNEL_REACH[kernel]
    whole = torch.floor(shift)
    # the kernel is only ever read at t = m - frac for the tap offsets m = i - j - whole
    taps = torch.arange(-reach, reach + 1, device=shift.device, dtype=shift.dtype)
    weights = _KERNEL_FNS[kernel](taps - (shift - whole)[..., None])  # [..., 2*reach + 1]
    if kernel != "bilinear":
        weights = weights / weights.sum(dim=-1, keepdim=True)
    idx = torch.arange(n, device=shift.device)
    tap = (idx.view(n, 1) - idx.view(1, n)) - whole.long()[..., None, None] + reach  # [..., n, n]
    inside = (tap >= 0) & (tap <= 2 * reach)
    rows = weights.unsqueeze(-2).expand(*weights.shape[:-1], n, 2 * reach + 1)
    picked = torch.gather(rows, -1, tap.clamp(0, 2 * reach))
    return picked * inside.to(picked.dtype)


def _apply(images: torch.Tensor, w_y: torch.Tensor, w_x: torch.Tensor) -> torch.Tensor:
    return w_y @ images @ w_x.transpose(-1, -2)


def translate(images: torch.Tensor, shifts_xy: torch.Tensor, kernel: str = "bilinear") -> torch.Tensor:
    """Translate each image of ``images [B, C, H, W]`` by ``shifts_xy [B, C, 2]`` pixels.

    ``shifts_xy[..., 0]`` is the x (column) shift, ``shifts_xy[..., 1]`` the y (row)
    shift; positive values move the content right/down.  ``kernel`` is one of
    :data:`KERNELS`.  Real or complex input; the output has the input's shape and dtype.
    Pixels whose source lies outside the image are zero.
    """
    if images.dim() != 4:
        raise ValueError(f"translate: images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if shifts_xy.shape != images.shape[:2] + (2,):
        raise ValueError(
            f"translate: shifts_xy must be [B, C, 2] = {tuple(images.shape[:2]) + (2,)}, "
            f"got {tuple(shifts_xy.shape)}"
        )
    real_dtype = images.real.dtype if images.is_complex() else images.dtype
    shifts = shifts_xy.to(device=images.device, dtype=real_dtype)
    h, w = images.shape[-2:]
    w_y = shift_matrix(shifts[..., 1], h, kernel)  # [B, C, H, H]
    w_x = shift_matrix(shifts[..., 0], w, kernel)  # [B, C, W, W]
    if images.is_complex():
        return torch.complex(_apply(images.real, w_y, w_x), _apply(images.imag, w_y, w_x))
    return _apply(images, w_y, w_x)


def shift_zero_fill(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Integer translation of the last two dims by ``(dx, dy)``, zero fill (reference).

    ``out[..., y, x] = image[..., y - dy, x - dx]``; used as the exact reference that
    :func:`translate` must equal for integer shifts.
    """
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    ys_dst = slice(max(dy, 0), h + min(dy, 0))
    xs_dst = slice(max(dx, 0), w + min(dx, 0))
    ys_src = slice(max(-dy, 0), h + min(-dy, 0))
    xs_src = slice(max(-dx, 0), w + min(-dx, 0))
    out[..., ys_dst, xs_dst] = image[..., ys_src, xs_src]
    return out
