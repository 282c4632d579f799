"""Sub-pixel translation of image batches (bilinear, zero outside).

Sign convention: translating by ``(dx, dy)`` moves the image content by ``+dx`` columns
and ``+dy`` rows, i.e. ``out[..., y, x] = in[..., y - dy, x - dx]``, with samples that
fall outside the input read as zero.  Bilinear interpolation is done separably (first
along x, then along y), which is exactly bilinear.  An integer shift has interpolation
weights of exactly 0 and 1, so it equals a roll with zero fill, bit for bit.

Complex tensors are translated part by part (real and imaginary separately); because
the operation is linear this is the same as interpolating the complex values.

Gradients flow to the images and to the shifts (through the fractional weights).
"""

from __future__ import annotations

import torch

__all__ = ["translate", "shift_zero_fill"]


def _interp_last_dim(images: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """Translate a real ``[B, C, R, L]`` tensor along its last dim by ``shift_px [B, C]``.

    ``out[..., j] = in[..., j - shift]`` linearly interpolated, zero outside ``[0, L)``.
    """
    length = images.shape[-1]
    j = torch.arange(length, device=images.device, dtype=shift_px.dtype)
    src = j.view(1, 1, length) - shift_px.unsqueeze(-1)  # [B, C, L] source coordinate
    left = torch.floor(src)
    w_right = (src - left).to(images.dtype)  # weight of the right neighbour, in [0, 1)
    left_i = left.long()
    right_i = left_i + 1

    def gather(idx: torch.Tensor) -> torch.Tensor:
        valid = (idx >= 0) & (idx < length)
        safe = idx.clamp(0, length - 1)
        shape = images.shape[:-1] + (length,)
        picked = torch.gather(images, -1, safe.unsqueeze(-2).expand(shape))
        return picked * valid.unsqueeze(-2).to(images.dtype)

    w_right = w_right.unsqueeze(-2)
    return gather(left_i) * (1 - w_right) + gather(right_i) * w_right


def _translate_real(images: torch.Tensor, shifts_xy: torch.Tensor) -> torch.Tensor:
    out = _interp_last_dim(images, shifts_xy[..., 0])  # along x (columns)
    out = _interp_last_dim(out.transpose(-1, -2), shifts_xy[..., 1])  # along y (rows)
    return out.transpose(-1, -2)


def translate(images: torch.Tensor, shifts_xy: torch.Tensor) -> torch.Tensor:
    """Translate each image of ``images [B, C, H, W]`` by ``shifts_xy [B, C, 2]`` pixels.

    ``shifts_xy[..., 0]`` is the x (column) shift, ``shifts_xy[..., 1]`` the y (row)
    shift; positive values move the content right/down.  Real or complex input; the
    output has the input's shape and dtype.  Pixels whose source lies outside the image
    are zero.
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
    if images.is_complex():
        re = _translate_real(images.real.contiguous(), shifts)
        im = _translate_real(images.imag.contiguous(), shifts)
        return torch.complex(re, im)
    return _translate_real(images, shifts)


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
