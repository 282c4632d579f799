"""Stitch predicted patches into one object: sub-pixel placement, weighted overlap averaging.

Placement follows docs/conventions.md: the patch predicted at scan position ``(x, y)`` holds
``obj(y - N/2 + i, x - N/2 + j)`` at ``patch[i, j]``.

Two modes (:data:`STITCH_MODES`):

- ``"probe_weighted"`` (the default of the inference workflow): every pixel of every patch
  counts, weighted by the probe intensity ``|P|^2`` there, as in the object update of
  ePIE/LSQML: ``O = sum_k w_k O_k / max(sum_k w_k, floor)``.  Pixels the probe lights well
  dominate; the dark rim of each patch (where the data say little) barely counts, so no
  grid at the scan step is printed into the object.  ``floor = WEIGHT_FLOOR * max(sum w)``;
  pixels whose summed weight is below the floor are left uncovered (``nan``), so the floor
  never biases a covered pixel.
- ``"central_crop"``: the central ``crop x crop`` region of each patch (``crop = N/2`` by
  default: the part the CNN predicts), averaged with uniform weight (the weight map is
  then the number of crops at each pixel).

Sub-pixel positions are handled by *resampling each patch onto the object grid* with the
separable Lanczos kernel of :mod:`ptycho_torch.simulate.resample` (the one the simulator
cuts patches with): the patch is re-sampled at the patch coordinates of the nearest block
of object pixels, then added there.  Integer positions are placed exactly.

:class:`ObjectStitcher` accumulates batch by batch on any torch device (the inference
workflow feeds it each batch as it comes out of the network, so no full stack of patches is
ever held); :func:`stitch_patches` is the one-call numpy front end.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ptycho_torch.errors import ConfigError
from ptycho_torch.simulate.resample import DEFAULT_KERNEL_RADIUS, lanczos_weights

__all__ = [
    "STITCH_MODES",
    "WEIGHT_FLOOR",
    "ObjectStitcher",
    "stitch_patches",
    "canvas_shape",
    "coverage_bbox",
    "scanned_bbox",
    "resample_batch",
]

STITCH_MODES = ("probe_weighted", "central_crop")
"""Accepted stitching modes (see the module doc)."""

WEIGHT_FLOOR = 1e-3
"""Probe-weighted mode: pixels whose summed weight is below this fraction of its maximum are
uncovered (``nan``); the others are ``sum(w O) / sum(w)``."""

ADD_CHUNK = 64
"""Patches resampled and added at a time by :meth:`ObjectStitcher.add` (bounds its temporary
memory to a few tens of MiB at N = 64, whatever the batch)."""


def canvas_shape(positions_xy: np.ndarray, N: int) -> tuple[int, int]:
    """Smallest ``(H, W)`` object grid that holds a full ``N x N`` patch at every position."""
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    height = int(np.floor(positions_xy[:, 1].max() + N / 2.0)) + 1
    width = int(np.floor(positions_xy[:, 0].max() + N / 2.0)) + 1
    return height, width


def _nearest_start(positions_xy: np.ndarray, N: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Object (row, col) of patch sample ``(first, first)``, rounded to the nearest pixel."""
    row = np.floor(positions_xy[:, 1] - N / 2.0 + first + 0.5).astype(np.int64)
    col = np.floor(positions_xy[:, 0] - N / 2.0 + first + 0.5).astype(np.int64)
    return row, col


def scanned_bbox(positions_xy: np.ndarray, N: int, crop: int | None = None) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` (half-open): the area the central ``crop`` regions cover (``N//2``).

    The scanned area used for scoring, whatever the stitching mode, so that modes are compared
    on the same pixels.
    """
    crop = N // 2 if crop is None else int(crop)
    rows, cols = _nearest_start(np.asarray(positions_xy, dtype=np.float64), N, N // 2 - crop // 2)
    return int(rows.min()), int(rows.max()) + crop, int(cols.min()), int(cols.max()) + crop


def resample_batch(windows: torch.Tensor, weights_y: torch.Tensor, weights_x: torch.Tensor) -> torch.Tensor:
    """Separable filtering of ``windows [n, K, L, L]`` with per-item taps ``[n, T]``: ``[n, K, L-T+1, L-T+1]``."""
    taps = weights_y.shape[1]
    size = windows.shape[-1] - taps + 1
    along_y = functools.reduce(torch.add, (weights_y[:, s, None, None, None] * windows[:, :, s : s + size, :]
                                           for s in range(taps)))
    return functools.reduce(torch.add, (weights_x[:, t, None, None, None] * along_y[:, :, :, t : t + size]
                                        for t in range(taps)))


class ObjectStitcher:
    """Accumulate patches onto an ``(H, W)`` object, batch by batch, on one torch device.

    Args:
        object_shape: ``(H, W)`` of the object grid; every placed block must lie inside it
            (see :func:`canvas_shape`), else :class:`ConfigError` names the first position out.
        N: patch size.
        mode: one of :data:`STITCH_MODES`.
        probe: ``[N, N]`` complex probe (numpy or torch), required for ``"probe_weighted"``;
            its intensity ``|P|^2`` (scaled to peak 1) weights every patch pixel.
        crop: ``"central_crop"`` block size (default ``N // 2``).
        device: where the accumulators live (the accelerator in use).
        kernel_radius: Lanczos ``a`` of the sub-pixel resampling.
    """

    def __init__(
        self,
        object_shape: tuple[int, int],
        N: int,
        mode: str = "probe_weighted",
        probe: np.ndarray | torch.Tensor | None = None,
        crop: int | None = None,
        device: torch.device | str = "cpu",
        kernel_radius: int = DEFAULT_KERNEL_RADIUS,
    ) -> None:
        if mode not in STITCH_MODES:
            raise ConfigError("unknown stitching mode", where="stitching", expected=f"one of {STITCH_MODES}",
                              found=repr(mode), hint="probe_weighted is the default")
        self.height, self.width = (int(s) for s in object_shape)
        self.N, self.mode, self.kernel_radius = int(N), mode, int(kernel_radius)
        self.device = torch.device(device)
        if mode == "probe_weighted":
            if probe is None:
                raise ConfigError("probe-weighted stitching needs the probe", where="stitching",
                                  expected="a complex (N, N) probe", found="none",
                                  hint="pass probe=..., or use mode='central_crop'")
            intensity = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe).abs().square()
            if intensity.shape != (self.N, self.N) or not float(intensity.max()) > 0:
                raise ConfigError("the probe does not fit the patches", where="stitching(probe)",
                                  expected=f"a non-zero ({N}, {N}) probe", found=str(tuple(intensity.shape)),
                                  hint="use the model's probe")
            self.patch_weight = (intensity / intensity.max()).to(self.device, torch.float32)
            self.first, self.size = 0, self.N
        else:
            crop = self.N // 2 if crop is None else int(crop)
            if not 1 <= crop <= self.N:
                raise ConfigError("crop must fit in the patch", where="stitching(crop)", expected=f"1..{N}",
                                  found=str(crop), hint=f"use N//2 = {N // 2}")
            self.patch_weight = torch.ones(self.N, self.N, device=self.device)
            self.first, self.size = self.N // 2 - crop // 2, crop
        pixels = self.height * self.width
        self._values = torch.zeros(pixels, 2, device=self.device, dtype=torch.float32)  # sum of w*O (re, im)
        self._weights = torch.zeros(pixels, device=self.device, dtype=torch.float32)  # sum of w
        self.n_added = 0

    def add(self, patches: torch.Tensor | np.ndarray, positions_xy: np.ndarray) -> None:
        """Add ``patches [n, N, N]`` (complex or real) at ``positions_xy [n, 2]`` (x, y, pixels).

        Works through at most :data:`ADD_CHUNK` patches at a time, so the temporary memory
        of one call is bounded whatever the inference batch size.
        """
        patches = torch.as_tensor(patches).to(self.device)
        positions_xy = np.asarray(positions_xy, dtype=np.float64)
        if patches.dim() != 3 or patches.shape[1:] != (self.N, self.N):
            raise ConfigError("patches must be a stack of N x N patches", where="stitch(patches)",
                              expected=f"shape (n, {self.N}, {self.N})", found=str(tuple(patches.shape)),
                              hint="squeeze the channel axis first")
        if positions_xy.shape != (patches.shape[0], 2):
            raise ConfigError("one (x, y) position per patch is needed", where="stitch(positions)",
                              expected=f"shape ({patches.shape[0]}, 2)", found=str(positions_xy.shape),
                              hint="stack xcoords and ycoords as columns: np.stack([x, y], 1)")
        obj_r, obj_c = _nearest_start(positions_xy, self.N, self.first)
        outside = (obj_r < 0) | (obj_c < 0) | (obj_r + self.size > self.height) | (obj_c + self.size > self.width)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            raise ConfigError(
                f"patch {self.n_added + bad} at (x={positions_xy[bad, 0]:.2f}, y={positions_xy[bad, 1]:.2f}) "
                "falls outside the canvas",
                where="stitch(object_shape)", expected="a canvas holding every patch",
                found=f"{self.height}x{self.width}", hint="use canvas_shape(positions, N) or the objectGuess shape",
            )
        for start in range(0, patches.shape[0], ADD_CHUNK):
            end = start + ADD_CHUNK
            self._add_chunk(patches[start:end], positions_xy[start:end], obj_r[start:end], obj_c[start:end])
        self.n_added += int(patches.shape[0])

    def _add_chunk(self, patches: torch.Tensor, positions_xy: np.ndarray, obj_r: np.ndarray, obj_c: np.ndarray) -> None:
        """Resample ``patches`` onto their blocks of the object grid and add them to the accumulators."""
        N, a, size = self.N, self.kernel_radius, self.size
        # patch coordinate of object pixel obj_r (+ first): resample there, taps base-a+1 .. base+a
        u_row = obj_r - (positions_xy[:, 1] - N / 2.0)
        u_col = obj_c - (positions_xy[:, 0] - N / 2.0)
        base_r, base_c = np.floor(u_row).astype(np.int64), np.floor(u_col).astype(np.int64)
        w_y = torch.as_tensor(lanczos_weights(u_row - base_r, a), dtype=torch.float32, device=self.device)
        w_x = torch.as_tensor(lanczos_weights(u_col - base_c, a), dtype=torch.float32, device=self.device)

        weighted = patches * self.patch_weight if patches.is_complex() else patches.to(torch.float32) * self.patch_weight
        stack = torch.stack([weighted.real, weighted.imag if patches.is_complex() else torch.zeros_like(weighted),
                             self.patch_weight.expand_as(weighted)], dim=1).to(torch.float32)  # [n, 3, N, N]
        # replicate-pad so every tap index is valid (the numpy resampler clips the same way)
        padded = torch.nn.functional.pad(stack, (a, a, a, a), mode="replicate")
        # each patch reads the L x L window of its padded stack that starts at (base_r + 1, base_c + 1);
        # unfold gives a strided view of every window start, indexed by one integer per patch and axis
        reach = size + 2 * a - 1
        starts = padded.unfold(2, reach, 1).unfold(3, reach, 1)  # [n, 3, S, S, L, L], a view
        k = torch.arange(stack.shape[0], device=self.device)
        windows = starts[k, :, torch.as_tensor(base_r + 1, device=self.device),
                         torch.as_tensor(base_c + 1, device=self.device)]  # [n, 3, L, L]
        placed = resample_batch(windows, w_y, w_x)  # [n, 3, size, size]

        offsets = torch.arange(size, device=self.device)
        target_r = torch.as_tensor(obj_r, device=self.device)[:, None] + offsets
        target_c = torch.as_tensor(obj_c, device=self.device)[:, None] + offsets
        index = (target_r[:, :, None] * self.width + target_c[:, None, :]).reshape(-1)
        self._values.index_add_(0, index, placed[:, :2].permute(0, 2, 3, 1).reshape(-1, 2))
        self._weights.index_add_(0, index, placed[:, 2].reshape(-1))

    def finish(self, complex_output: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(object (H, W) complex64 or float32, weights (H, W) float32)``; ``nan`` where uncovered.

        The weights are the summed ``w`` at each pixel: probe intensity in ``"probe_weighted"``
        mode, the number of crops in ``"central_crop"`` mode.
        """
        weights = self._weights
        if self.mode == "probe_weighted":
            floor = WEIGHT_FLOOR * float(weights.max()) if self.n_added else 1.0
            covered = weights >= floor
            denominator = weights.clamp_min(floor)
        else:
            covered = weights > 0
            denominator = weights.clamp_min(1.0)
        averaged = self._values / denominator[:, None]
        averaged[~covered] = float("nan")
        values = averaged.cpu().numpy().astype(np.float32)
        shape = (self.height, self.width)
        weights_np = weights.cpu().numpy().astype(np.float32).reshape(shape)
        if complex_output:
            return (values[:, 0] + 1j * values[:, 1]).astype(np.complex64).reshape(shape), weights_np
        return values[:, 0].reshape(shape), weights_np


def stitch_patches(
    patches: np.ndarray,
    positions_xy: np.ndarray,
    object_shape: tuple[int, int],
    crop: int | None = None,
    kernel_radius: int = DEFAULT_KERNEL_RADIUS,
    *,
    probe: np.ndarray | None = None,
    mode: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stitch ``patches (n, N, N)`` at ``positions_xy (n, 2)`` ``(x, y)`` onto ``object_shape``.

    ``mode`` defaults to ``"probe_weighted"`` when ``probe`` is given, else ``"central_crop"``
    (with ``crop``, default ``N // 2``).  Returns ``(stitched, weights)``: ``stitched``
    complex64 (float32 for real patches), ``nan`` where uncovered; ``weights`` ``(H, W)``:
    the summed probe intensity, or (central crop) the int64 number of crops at each pixel.
    Runs on the CPU (:meth:`ObjectStitcher.add` bounds the temporary memory).
    """
    patches = np.asarray(patches)
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ConfigError("patches must be a stack of square patches", where="stitch_patches(patches)",
                          expected="shape (n, N, N)", found=str(patches.shape), hint="squeeze the channel axis first")
    mode = mode or ("probe_weighted" if probe is not None else "central_crop")
    stitcher = ObjectStitcher(object_shape, patches.shape[1], mode, probe, crop, "cpu", kernel_radius)
    stitcher.add(patches, positions_xy)
    stitched, weights = stitcher.finish(np.iscomplexobj(patches))
    if mode == "central_crop":
        return stitched, np.rint(weights).astype(np.int64)
    return stitched, weights


def coverage_bbox(counts: np.ndarray, min_count: int = 1) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` (half-open) of pixels with ``counts >= min_count``."""
    covered = np.asarray(counts) >= min_count
    if not covered.any():
        raise ConfigError("no pixel is covered", where="coverage_bbox(counts)", expected=f"some count >= {min_count}",
                          found="none", hint="check the positions and the canvas shape")
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
