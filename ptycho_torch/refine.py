"""Physics refinement at inference: fit the whole object to the measured data, from a start.

The network gives a good object in one forward pass; refinement then minimises the Poisson
negative log-likelihood of every measured pattern over the whole object (and optionally the
probe), with the same far-field physics as training, so the result fits the data as an
iterative solver's would.  Started from the network's object it needs far fewer iterations
than from a flat start: that ratio is what the network contributes.

Forward model (the simulator's, :mod:`ptycho_torch.simulate.diffraction`):
``patch_k = E_k(O)`` -- the object read at scan position k by separable Lanczos-4
interpolation (exact at integer positions) -- then ``psi_k = patch_k * P`` and the
expected counts ``lambda_k = |F psi_k|^2`` with the unitary 2-D FFT.  The measured counts
are ``k = count_scale * X^2`` (``count_scale = nphotons / mean_total_intensity``; 1 for
files that store ``sqrt(counts)``).  The likelihood fixes the object's global scale: the
start is first scaled by the closed-form best factor ``sum(k) / sum(lambda)``.

Update (one "iteration" is one pass over every scan position, in mini-batches).  For each
position of a mini-batch B the exit wave takes Newton's step for the Poisson likelihood,
detector pixel by detector pixel: ``F psi <- F psi * 2k / (lambda + k)`` (bounded, with the
fixed point ``lambda = k``; unlike the plain likelihood gradient it cannot explode where
``lambda << k``).  The exit-wave changes go back to the object as in the object update of
ePIE/LSQML: ``O <- O + STEP * sum_B E_k^T(conj(P) dpsi_k) / (illum_B + floor)`` with
``illum_B = sum_B E_k^T |P|^2`` and ``floor = ILLUMINATION_FLOOR * max(illum_B)`` (a
smaller floor diverged from a flat start: weakly lit pixels took huge steps).  Mini-batches
take every ``n_batches``-th position in raster order, so positions of one batch overlap
little and their updates add instead of averaging away.  Across passes a momentum term (as
in mPIE) extrapolates each pass's change.  The probe, when refined, takes the mirror step,
preconditioned by ``sum_B |patch_k|^2``.

Data misfit: the mean Poisson deviance per detector pixel,
``2 * mean(lambda - k + k log(k / lambda))``; pure Poisson noise gives about 1 at high counts
(less where counts are small), so the number says how far from "fits within the noise" a
reconstruction is.  Refinement reports it before and after.  It stops early when the misfit
improves by less than ``tolerance`` (relative) over ``PATIENCE`` iterations.

Over-fitting guard.  At low dose the likelihood's own optimum fits the noise: where a pixel
counted no photon the Newton step removes the whole predicted signal, and after enough passes
the object degrades while the misfit keeps falling (measured on a sparse 1e4-photon scan:
amplitude SSIM 0.54 -> 0.006 in 40 passes).  So a fixed random :data:`HOLDOUT_FRACTION` of
the detector pixels of every pattern never drives an update; their deviance, measured during
every pass, is an honest estimate of how well the object predicts data it was not fitted to.
Refinement returns the object with the lowest held-out misfit it saw (the start, a pass, or
the end), stops when that has not improved for ``PATIENCE`` passes, and when the start was
best it keeps the start and says so.  Dense, high-dose scans never trigger it: there the
held-out misfit falls with the fitted one.

Pure torch plus numpy; runs on any device; no Lightning.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ptycho_torch.errors import ConfigError
from ptycho_torch.evaluate.stitch import WEIGHT_FLOOR, resample_batch
from ptycho_torch.simulate.resample import DEFAULT_KERNEL_RADIUS, lanczos_weights

__all__ = ["STEP", "PATIENCE", "RefineResult", "ScanGeometry", "refine_object", "poisson_deviance"]

STEP = 1.0
"""Preconditioned step size (1: the full Newton step for a pixel lit by one position)."""

PROBE_STEP = 1.0
"""Step of the probe update (same preconditioning, mirrored)."""

MOMENTUM = 0.8
"""Momentum across passes (as mPIE): each pass's change is extrapolated by this factor."""

PATIENCE = 3
"""Iterations over which the relative improvement must reach ``tolerance`` to go on."""

ILLUMINATION_FLOOR = 0.05
"""Added to the illumination, as a fraction of its maximum, before dividing by it.  Pixels lit
less than the stitching floor (:data:`~ptycho_torch.evaluate.stitch.WEIGHT_FLOOR`) are left
out of the refined object (``nan``), as in stitching."""

HOLDOUT_FRACTION = 0.05
"""Fraction of each pattern's detector pixels held out of the updates to detect over-fitting
(fixed per pattern: drawn from a generator seeded with the mini-batch's number)."""

MAX_POSITIONS_PER_BATCH = 1024
"""Mini-batches hold at most this many positions (and at least 16, or all of them)."""

DATA_CACHE_BYTES = 1 << 30
"""Scans whose diffraction fits in this many bytes are kept on the device between passes;
larger ones are read from the file for every mini-batch.  The same budget bounds the cached
per-batch illumination maps (with a fixed probe)."""

_LOG_FLOOR = 1e-9


def _deviance_map(rate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Poisson deviance per pixel ``2 * (rate - counts + counts * log(counts / rate))``."""
    safe_rate = rate.clamp_min(_LOG_FLOOR)
    log_term = torch.where(counts > 0, counts * torch.log(counts.clamp_min(_LOG_FLOOR) / safe_rate), 0.0)
    return 2.0 * (rate - counts + log_term)


def poisson_deviance(rate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Summed Poisson deviance ``2 * sum(rate - counts + counts * log(counts / rate))``."""
    return _deviance_map(rate, counts).sum()


def _holdout_mask(batch: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The held-out pixels of mini-batch ``batch`` (bool, ``shape``), the same on every pass."""
    generator = torch.Generator().manual_seed(1_000_003 + int(batch))
    return (torch.rand(shape, generator=generator) < HOLDOUT_FRACTION).to(device)


@dataclass
class ScanGeometry:
    """Where each position reads the object: window indices and Lanczos taps (on a device).

    ``rows[k]``/``cols[k]`` index the ``N + 2a - 1`` object rows/columns the patch of
    position k reads (clipped at the object's edge, as the simulator does); ``weights_y``/
    ``weights_x`` ``[n, 2a]`` are its taps.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    weights_y: torch.Tensor
    weights_x: torch.Tensor

    @classmethod
    def build(cls, positions_xy: np.ndarray, N: int, shape: tuple[int, int], device: torch.device,
              radius: int = DEFAULT_KERNEL_RADIUS) -> ScanGeometry:
        positions_xy = np.asarray(positions_xy, dtype=np.float64)
        row0 = positions_xy[:, 1] - N / 2.0
        col0 = positions_xy[:, 0] - N / 2.0
        r0, c0 = np.floor(row0).astype(np.int64), np.floor(col0).astype(np.int64)
        reach = np.arange(-radius + 1, N + radius)
        rows = np.clip(r0[:, None] + reach, 0, shape[0] - 1)
        cols = np.clip(c0[:, None] + reach, 0, shape[1] - 1)
        as_t = lambda a, dt: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
        return cls(as_t(rows, torch.long), as_t(cols, torch.long),
                   as_t(lanczos_weights(row0 - r0, radius), torch.float32),
                   as_t(lanczos_weights(col0 - c0, radius), torch.float32))

    def subset(self, index: torch.Tensor) -> ScanGeometry:
        return ScanGeometry(self.rows[index], self.cols[index], self.weights_y[index], self.weights_x[index])

    def extract(self, image: torch.Tensor) -> torch.Tensor:
        """Patches ``[n, K, N, N]`` of a real ``[K, H, W]`` image (differentiable, linear)."""
        windows = image[:, self.rows[:, :, None], self.cols[:, None, :]].transpose(0, 1)  # [n, K, L, L]
        return resample_batch(windows, self.weights_y, self.weights_x)

    def adjoint(self, patches: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """``sum_k E_k^T patches[k]``: real ``[n, K, N, N]`` -> ``[K, H, W]`` (exact adjoint)."""
        with torch.enable_grad():
            image = torch.zeros((patches.shape[1], *shape), device=patches.device, dtype=patches.dtype,
                                requires_grad=True)
            (grad,) = torch.autograd.grad((self.extract(image) * patches.detach()).sum(), image)
        return grad


@dataclass
class RefineResult:
    """The refined object and how refinement went.

    ``object``: ``(H, W)`` complex64, ``nan`` where the probe never lit; ``probe``: ``(N, N)``
    complex64 (refined when asked, else the input); ``misfit_curve``: the mean Poisson
    deviance per pixel during each iteration; ``misfit_before``/``misfit_after``: exact
    full passes at the start (after the closed-form scale) and at the end (of the object
    returned); ``kept_start``: True when the start was returned (the end was worse, or the
    start predicted the held-out pixels best); ``holdout_curve``: the mean deviance of the
    held-out pixels during each iteration; ``best_iteration``: the pass whose object is
    returned (0 = the start); ``stop_reason``: 'iterations', 'tolerance' or 'over-fitting'.
    """

    object: np.ndarray
    probe: np.ndarray
    illumination: np.ndarray
    misfit_before: float
    misfit_after: float
    misfit_curve: list[float] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    kept_start: bool = False
    holdout_curve: list[float] = field(default_factory=list)
    best_iteration: int = 0
    stop_reason: str = "iterations"


class _Data:
    """Measured counts per mini-batch, cached on the device when they fit."""

    def __init__(self, read_counts: Callable[[np.ndarray], np.ndarray], batches: list[np.ndarray],
                 frame_bytes: int, device: torch.device) -> None:
        self.read_counts, self.batches, self.device = read_counts, batches, device
        total = frame_bytes * sum(len(b) for b in batches)
        self.cache = [self._read(b) for b in batches] if total <= DATA_CACHE_BYTES else None

    def _read(self, index: np.ndarray) -> torch.Tensor:
        # stored patterns are centred (zero frequency at N//2); the FFT here is not
        counts = torch.as_tensor(self.read_counts(index), dtype=torch.float32).to(self.device)
        return torch.fft.ifftshift(counts, dim=(-2, -1))

    def __getitem__(self, b: int) -> torch.Tensor:
        return self.cache[b] if self.cache is not None else self._read(self.batches[b])


def _batches(positions_xy: np.ndarray) -> list[np.ndarray]:
    """Every ``n_batches``-th position in raster order: spread-out, little-overlapping batches."""
    n = positions_xy.shape[0]
    per_batch = n if n <= 16 else int(min(MAX_POSITIONS_PER_BATCH, max(16, math.ceil(n / 8))))
    n_batches = math.ceil(n / per_batch)
    order = np.lexsort((positions_xy[:, 0], positions_xy[:, 1]))
    return [order[b::n_batches] for b in range(n_batches)]


def _rates(patches: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Expected counts ``|F(patch * P)|^2`` (unitary FFT), ``[n, N, N]``."""
    return torch.fft.fft2(patches * probe, norm="ortho").abs().square()


def _as_complex(image_ri: torch.Tensor) -> torch.Tensor:
    return torch.complex(image_ri[0], image_ri[1])


def _complex_adjoint(geom: ScanGeometry, patches: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``sum_k E_k^T patches[k]`` of complex ``[n, N, N]`` patches as a real ``[2, H, W]`` image."""
    return geom.adjoint(torch.stack([patches.real, patches.imag], dim=1), shape)


def refine_object(
    start: np.ndarray,
    probe: np.ndarray,
    positions_xy: np.ndarray,
    read_counts: Callable[[np.ndarray], np.ndarray],
    iterations: int,
    *,
    refine_probe: bool = False,
    tolerance: float = 1e-4,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_iteration: Callable[[int, np.ndarray, float], None] | None = None,
) -> RefineResult:
    """Refine ``start`` (``(H, W)`` complex; ``nan`` pixels are filled) against the scan's data.

    Args:
        start: the starting object (the stitched network object, or a flat one).
        probe: ``(N, N)`` complex probe of the scan (``probeGuess``).
        positions_xy: ``(n, 2)`` scan positions ``(x, y)`` in object pixels.
        read_counts: ``indices -> (len, N, N)`` measured counts (``count_scale * X^2``).
        iterations: passes over every position (>= 0; 0 only measures the misfit).
        refine_probe: also refine the probe.
        tolerance: stop when the misfit improved by less than this fraction over
            :data:`PATIENCE` iterations (0 never stops early).
        device: where to compute.
        progress: show progress on stderr (a bar on a terminal, a few lines otherwise).
        on_iteration: called after each iteration with ``(iteration, object, misfit)``
            (e.g. to score against a ground truth); the object is a numpy copy.
    """
    if iterations < 0:
        raise ConfigError("refinement iterations must be >= 0", where="refine_iters", expected=">= 0",
                          found=str(iterations), hint="0 turns refinement off")
    device = torch.device(device)
    start = np.asarray(start)
    probe_np = np.asarray(probe)
    N = probe_np.shape[-1]
    if probe_np.shape != (N, N) or not np.isfinite(probe_np).all() or not np.abs(probe_np).max() > 0:
        raise ConfigError("refinement needs the scan's probe", where="probeGuess",
                          expected="a finite, non-zero complex (N, N) probe", found=str(probe_np.shape),
                          hint="refine only scans whose file holds probeGuess")
    shape = start.shape
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    started = time.perf_counter()

    finite = np.isfinite(start)
    filled = np.where(finite, start, start[finite].mean() if finite.any() else 1.0).astype(np.complex64)
    obj = torch.stack([torch.as_tensor(filled.real), torch.as_tensor(filled.imag)]).to(device, torch.float32)
    probe_t = torch.as_tensor(probe_np.astype(np.complex64)).to(device)
    geometry = ScanGeometry.build(positions_xy, N, shape, device)
    batches = _batches(positions_xy)
    batch_geometry = [geometry.subset(torch.as_tensor(b, device=device)) for b in batches]
    data = _Data(read_counts, batches, 4 * N * N, device)
    n_pixels = positions_xy.shape[0] * N * N

    def illumination(geom: ScanGeometry, probe_now: torch.Tensor) -> torch.Tensor:
        weight = probe_now.abs().square().expand(geom.rows.shape[0], 1, N, N)
        return geom.adjoint(weight.contiguous(), shape)[0]

    # the held-out masks are kept with the cached data; for scans too large to cache they are
    # drawn again for each mini-batch (the same seed gives the same mask)
    def held_out(b: int) -> torch.Tensor:
        return masks[b] if masks is not None else _holdout_mask(b, (len(batches[b]), N, N), device)

    masks = None
    if data.cache is not None:
        masks = [_holdout_mask(b, (len(index), N, N), device) for b, index in enumerate(batches)]
    n_held = max(1, sum(int(held_out(b).sum()) for b in range(len(batches))))

    def full_pass(obj_ri: torch.Tensor, probe_now: torch.Tensor) -> tuple[float, float, float]:
        """(summed expected counts, summed deviance, mean held-out deviance) over every position, no update."""
        rate_sum, deviance, held = 0.0, 0.0, 0.0
        with torch.no_grad():
            for b, geom in enumerate(batch_geometry):
                rate = _rates(_as_complex(geom.extract(obj_ri).transpose(0, 1)), probe_now)
                rate_sum += float(rate.sum())
                per_pixel = _deviance_map(rate, data[b])
                deviance += float(per_pixel.sum())
                held += float(per_pixel[held_out(b)].sum())
        return rate_sum, deviance, held / n_held

    # closed-form global scale: sum(k) = sum(lambda) at the likelihood's optimum
    total_counts = sum(float(data[b].sum()) for b in range(len(batches)))
    rate_sum, _, _ = full_pass(obj, probe_t)
    if not rate_sum > 0:
        raise ConfigError("the starting object predicts no signal", where="refine(start)",
                          expected="a non-zero object under the probe", found="all-zero exit waves",
                          hint="start from the stitched reconstruction or a flat object")
    obj *= math.sqrt(total_counts / rate_sum)
    start_obj = obj.clone()
    _, deviance_before, held_before = full_pass(obj, probe_t)
    misfit_before = deviance_before / n_pixels
    best: dict[str, Any] = {"held": held_before, "iteration": 0, "object": start_obj, "probe": probe_t}

    # with a fixed probe each batch's illumination never changes: compute it once if it fits
    lit_per_batch = [illumination(g, probe_t) for g in batch_geometry]
    full_illumination = functools.reduce(torch.add, lit_per_batch)
    batch_lit: list[torch.Tensor] | None = lit_per_batch
    if refine_probe or len(batches) * 4 * shape[0] * shape[1] > DATA_CACHE_BYTES:
        batch_lit = None
    curve: list[float] = []
    held_curve: list[float] = []
    stop_reason = "iterations"
    stopped_early = False
    bar = None
    if progress and iterations:
        from ptycho_torch.workflows.progress import ProgressReporter

        bar = ProgressReporter(iterations, "refine", unit="pass")
    rng = np.random.default_rng(0)
    iteration = 0
    velocity = torch.zeros_like(obj)
    for iteration in range(1, iterations + 1):
        deviance, held = 0.0, 0.0
        before_pass, probe_before_pass = obj.clone(), probe_t
        for b in rng.permutation(len(batches)):
            geom, counts = batch_geometry[b], data[b]
            with torch.no_grad():
                patches = _as_complex(geom.extract(obj).transpose(0, 1))
                spectrum = torch.fft.fft2(patches * probe_t, norm="ortho")
                rate = spectrum.abs().square()
                per_pixel, mask = _deviance_map(rate, counts), held_out(b)
                deviance += float(per_pixel.sum())
                held += float(per_pixel[mask].sum())
                # Newton's step per detector pixel for the Poisson likelihood in the amplitude:
                # |F psi| -> 2 k |F psi| / (lambda + k); bounded, fixed point lambda = k.
                # Held-out pixels keep their prediction (no step).
                ratio = ((counts - rate) / (rate + counts + _LOG_FLOOR)).masked_fill(mask, 0.0)
                change = torch.fft.ifft2(spectrum * ratio, norm="ortho")
                lit = batch_lit[b] if batch_lit is not None else illumination(geom, probe_t)
                update = _complex_adjoint(geom, change * probe_t.conj(), shape)
                obj += STEP * update / (lit + ILLUMINATION_FLOOR * lit.max())
                if refine_probe:
                    weight = patches.abs().square().sum(0)
                    probe_update = (change * patches.conj()).sum(0)
                    probe_t = probe_t + PROBE_STEP * probe_update / (weight + ILLUMINATION_FLOOR * weight.max())
        with torch.no_grad():
            velocity = MOMENTUM * velocity + (obj - before_pass)
            obj += MOMENTUM * velocity
        misfit = deviance / n_pixels
        curve.append(misfit)
        held_curve.append(held / n_held)
        # this pass measured the object it started from (each batch saw it before its own update)
        if held_curve[-1] < best["held"]:
            best = {"held": held_curve[-1], "iteration": iteration - 1, "object": before_pass,
                    "probe": probe_before_pass}
        if bar is not None:
            bar.update(misfit=misfit)
        if on_iteration is not None:
            on_iteration(iteration, _as_complex(obj).cpu().numpy(), misfit)
        if iteration - 1 - best["iteration"] >= PATIENCE:
            stopped_early, stop_reason = True, "over-fitting"
            break
        if tolerance > 0 and len(curve) > PATIENCE:
            previous = curve[-1 - PATIENCE]
            if previous - misfit < tolerance * abs(previous):
                stopped_early, stop_reason = True, "tolerance"
                break
    if bar is not None:
        bar.close()

    _, deviance_after, held_after = full_pass(obj, probe_t)
    misfit_after = deviance_after / n_pixels
    best_iteration = iteration if iterations else 0
    if held_after > best["held"]:  # an earlier object predicted the held-out pixels better
        obj, probe_t, best_iteration = best["object"], best["probe"], best["iteration"]
        _, deviance_after, held_after = full_pass(obj, probe_t)
        misfit_after = deviance_after / n_pixels
    kept_start = misfit_after > misfit_before or (best_iteration == 0 and iterations > 0)
    if kept_start:
        warnings.warn(
            f"refinement raised the data misfit ({misfit_before:.4g} -> {misfit_after:.4g} overall, held-out "
            f"{held_before:.4g} -> {held_after:.4g}); the starting object is kept", stacklevel=2)
        obj, misfit_after, best_iteration = start_obj, misfit_before, 0
        probe_t = torch.as_tensor(probe_np.astype(np.complex64)).to(device)
    lit = full_illumination
    result_obj = _as_complex(obj)
    result_obj[lit < WEIGHT_FLOOR * lit.max()] = torch.tensor(complex(float("nan"), float("nan")),
                                                              dtype=result_obj.dtype)  # as stitching does
    return RefineResult(
        object=result_obj.cpu().numpy().astype(np.complex64),
        probe=probe_t.detach().cpu().numpy().astype(np.complex64),
        illumination=lit.cpu().numpy().astype(np.float32),
        misfit_before=misfit_before,
        misfit_after=misfit_after,
        misfit_curve=curve,
        iterations=iteration if iterations else 0,
        seconds=time.perf_counter() - started,
        stopped_early=stopped_early,
        kept_start=kept_start,
        holdout_curve=held_curve,
        best_iteration=best_iteration,
        stop_reason=stop_reason,
    )
