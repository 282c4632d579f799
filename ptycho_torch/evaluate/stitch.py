"""Stitch predicted patches into one object: sub-pixel placement, overlap averaging (numpy).

Placement follows docs/conventions.md: the patch predicted at scan position ``(x, y)`` holds
``obj(y - N/2 + i, x - N/2 + j)`` at ``patch[i, j]``.  Only the central ``crop x crop`` region
of each patch is used (``crop = N//2`` by default: the part the network predicts best).

Sub-pixel positions are handled by *resampling each crop onto the object grid* with the
separable Lanczos kernel of :mod:`ptycho_torch.simulate.resample` (the same interpolation
that cuts patches in the simulator): for every patch, the crop is re-sampled at the
patch coordinates of the nearest ``crop x crop`` block of object pixels, then added there.
The stitched object is the mean over the crops covering each pixel (``counts`` of them);
pixels no crop covers are ``nan + nan*1j``.  Integer positions are placed exactly.

Sums are accumulated with ``np.bincount`` in chunks of patches (memory stays bounded): a
few thousand 64 x 64 patches stitch in well under a second on one core.
"""

from __future__ import annotations

import numpy as np

from ptycho_torch.errors import ConfigError
from ptycho_torch.simulate.resample import DEFAULT_KERNEL_RADIUS, lanczos_weights, resample_windows

__all__ = ["stitch_patches", "canvas_shape", "coverage_bbox"]


def canvas_shape(positions_xy: np.ndarray, N: int) -> tuple[int, int]:
    """Smallest ``(H, W)`` object grid that holds a full ``N x N`` patch at every position."""
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    height = int(np.floor(positions_xy[:, 1].max() + N / 2.0)) + 1
    width = int(np.floor(positions_xy[:, 0].max() + N / 2.0)) + 1
    return height, width


def _check_inputs(patches: np.ndarray, positions_xy: np.ndarray, crop: int) -> None:
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ConfigError("patches must be a stack of square patches", where="stitch_patches(patches)",
                          expected="shape (n, N, N)", found=str(patches.shape), hint="squeeze the channel axis first")
    if positions_xy.shape != (patches.shape[0], 2):
        raise ConfigError("one (x, y) position per patch is needed", where="stitch_patches(positions)",
                          expected=f"shape ({patches.shape[0]}, 2)", found=str(positions_xy.shape),
                          hint="stack xcoords and ycoords as columns: np.stack([x, y], 1)")
    N = patches.shape[1]
    if not 1 <= crop <= N:
        raise ConfigError("crop must fit in the patch", where="stitch_patches(crop)", expected=f"1..{N}",
                          found=str(crop), hint=f"use N//2 = {N // 2}")


def stitch_patches(
    patches: np.ndarray,
    positions_xy: np.ndarray,
    object_shape: tuple[int, int],
    crop: int | None = None,
    kernel_radius: int = DEFAULT_KERNEL_RADIUS,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Average the central crops of ``patches (n, N, N)`` at ``positions_xy (n, 2)`` ``(x, y)``.

    Returns ``(stitched, counts)``: ``stitched`` has ``object_shape``, complex64 (float32 for
    real patches), ``nan`` where no crop landed; ``counts`` ``(H, W)`` int64 is the number of
    crops averaged at each pixel (use ``counts > 0`` as the scanned mask).  ``crop`` defaults
    to ``N // 2``.  Every crop must lie inside ``object_shape`` (see :func:`canvas_shape`),
    else a :class:`ConfigError` names the first position outside.
    """
    patches = np.asarray(patches)
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    N = patches.shape[-1] if patches.ndim == 3 else 0
    crop = N // 2 if crop is None else int(crop)
    _check_inputs(patches, positions_xy, crop)
    height, width = (int(s) for s in object_shape)
    first = N // 2 - crop // 2  # first patch row/column of the crop

    # Object pixel of the crop's first sample (nearest integer) and where it falls in the patch.
    patch_row0 = positions_xy[:, 1] - N / 2.0  # object row of patch row 0
    patch_col0 = positions_xy[:, 0] - N / 2.0
    obj_r = np.floor(patch_row0 + first + 0.5).astype(np.int64)
    obj_c = np.floor(patch_col0 + first + 0.5).astype(np.int64)
    outside = (obj_r < 0) | (obj_c < 0) | (obj_r + crop > height) | (obj_c + crop > width)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise ConfigError(
            f"the crop of patch {k} at (x={positions_xy[k, 0]:.2f}, y={positions_xy[k, 1]:.2f}) "
            "falls outside the canvas",
            where="stitch_patches(object_shape)", expected="a canvas holding every crop", found=f"{height}x{width}",
            hint="use canvas_shape(positions, N) or the objectGuess shape",
        )
    u_row = obj_r - patch_row0  # patch coordinate (fractional) of object row obj_r
    u_col = obj_c - patch_col0
    base_r, base_c = np.floor(u_row).astype(np.int64), np.floor(u_col).astype(np.int64)
    weights_y = lanczos_weights(u_row - base_r, kernel_radius)
    weights_x = lanczos_weights(u_col - base_c, kernel_radius)
    reach = np.arange(-kernel_radius + 1, crop + kernel_radius)

    size = height * width
    total_re, total_im, counts = np.zeros(size), np.zeros(size), np.zeros(size, dtype=np.int64)
    offsets = np.arange(crop)
    is_complex = np.iscomplexobj(patches)
    for start in range(0, patches.shape[0], chunk):
        sel = slice(start, start + chunk)
        rows = np.clip(base_r[sel, None] + reach, 0, N - 1)
        cols = np.clip(base_c[sel, None] + reach, 0, N - 1)
        index_k = np.arange(rows.shape[0])[:, None, None]
        windows = patches[sel][index_k, rows[:, :, None], cols[:, None, :]]
        values = resample_windows(windows, weights_y[sel], weights_x[sel])  # (n_chunk, crop, crop)
        target_r = obj_r[sel, None] + offsets
        target_c = obj_c[sel, None] + offsets
        index = (target_r[:, :, None] * width + target_c[:, None, :]).ravel()
        counts += np.bincount(index, minlength=size)
        total_re += np.bincount(index, weights=values.real.ravel(), minlength=size)
        if is_complex:
            total_im += np.bincount(index, weights=values.imag.ravel(), minlength=size)

    covered = counts > 0
    safe = np.maximum(counts, 1)
    re = np.where(covered, total_re / safe, np.nan)
    counts = counts.reshape(height, width)
    if is_complex:
        im = np.where(covered, total_im / safe, np.nan)
        return (re + 1j * im).reshape(height, width).astype(np.complex64), counts
    return re.reshape(height, width).astype(np.float32), counts


def coverage_bbox(counts: np.ndarray, min_count: int = 1) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` (half-open) of pixels with ``counts >= min_count``."""
    covered = np.asarray(counts) >= min_count
    if not covered.any():
        raise ConfigError("no pixel is covered", where="coverage_bbox(counts)", expected=f"some count >= {min_count}",
                          found="none", hint="check the positions and the canvas shape")
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
