"""Simulate a whole scan and write it as a contract-valid (DATA-001) NPZ file.

:class:`SimulationConfig` says what to simulate; :func:`simulate_scan` returns the arrays;
:func:`write_scan` writes them atomically.  Everything random comes from one
``numpy.random.default_rng(seed)``, drawn in a fixed order (object, scan, noise), so the same
config gives the same arrays, and :func:`write_scan` gives the same bytes (the zip entries
carry a fixed timestamp).

:func:`write_scan` streams: the diffraction stack is computed and written chunk by chunk
(:func:`~ptycho_torch.simulate.diffraction.diffraction_chunks` into
:func:`~ptycho_torch.simulate.npz_stream.write_npz`), so its peak memory does not grow with
the number of patterns, and its bytes equal those of the whole-array path for any chunking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import Field, ValidationError, model_validator

from ptycho_torch import __version__
from ptycho_torch.atomic import atomic_path
from ptycho_torch.config.base import FrozenConfig, check_known_keys, config_error_from_validation
from ptycho_torch.errors import ConfigError
from ptycho_torch.simulate.diffraction import diffraction_chunks
from ptycho_torch.simulate.npz_stream import StreamedArray, npz_bytes, write_npz
from ptycho_torch.simulate.objects import OBJECT_GENERATORS
from ptycho_torch.simulate.probes import curved_probe, default_probe_diameter, disk_probe
from ptycho_torch.simulate.scans import DEFAULT_MARGIN_PX, random_scan, raster_grid_size, raster_scan, scan_limits

__all__ = ["SimulationConfig", "default_simulation_config", "simulate_scan", "write_scan", "GENERATOR_NAME",
           "npz_bytes", "ProgressCallback"]

GENERATOR_NAME = "ptycho_torch.simulate"
"""Recorded in each file's ``_metadata`` together with the package version."""

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called after each chunk; stage ``"scale"`` (first pass) or ``"noise"``."""


class _CrossFieldError(ValueError):
    """A rule between fields was broken; carries the parts of a one-line ConfigError."""

    def __init__(self, problem: str, field: str, expected: str, found: str, hint: str) -> None:
        super().__init__(f"{field}: {problem}: expected {expected} (found {found}). HINT: {hint}")
        self.problem, self.field, self.expected, self.found, self.hint = problem, field, expected, found, hint


class SimulationConfig(FrozenConfig):
    """What to simulate: object, probe, scan pattern, dose and seed."""

    object: Literal["lines", "grf", "dead_leaves"] = Field(
        "lines",
        description="Object kind: random blurred 'lines', Gaussian random field 'grf', or 'dead_leaves' shapes.",
    )
    object_size: int = Field(
        224,
        ge=16,
        le=8192,
        description="Side M of the square (M, M) object in pixels; must hold an N x N patch plus margins.",
    )
    N: Literal[64, 128, 256] = Field(64, description="Patch and diffraction-pattern size in pixels.")
    probe: Literal["disk", "curved"] = Field(
        "disk", description="Probe kind: flat-phase 'disk' or 'curved' (disk with a defocus-like quadratic phase)."
    )
    probe_diameter: float | None = Field(
        None, gt=0.0, le=256.0, description="Probe diameter in pixels; None means 0.45 * N."
    )
    scan: Literal["random", "raster"] = Field(
        "raster", description="Scan pattern: 'raster' grid with jitter, or uniformly 'random' positions."
    )
    n_images: int | None = Field(
        None,
        ge=1,
        le=200_000,
        description="Number of patterns; required for scan='random', must be unset for 'raster' (the grid decides).",
    )
    step: float | None = Field(
        None, gt=0.0, le=4096.0, description="Raster step in pixels; None means N/8. Must be unset for scan='random'."
    )
    jitter: float = Field(
        1.0,
        ge=0.0,
        le=256.0,
        description="Raster jitter in pixels: each position moves by uniform [-jitter, jitter] in x and y.",
    )
    nphotons: float = Field(
        1e9, gt=0.0, le=1e15, description="Expected total photon count per pattern (mean over patterns)."
    )
    seed: int = Field(
        0, ge=0, le=2**63 - 1, description="Seed of numpy.random.default_rng; the same seed gives the same file."
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> "SimulationConfig":
        if self.scan == "random" and self.n_images is None:
            raise _CrossFieldError("scan='random' needs the number of positions", "n_images", "an integer >= 1",
                                   "None", "add --n-images 500 (or n_images: 500 in the config)")
        if self.scan == "raster" and self.n_images is not None:
            raise _CrossFieldError("a raster scan's size follows from object_size, N, step and jitter", "n_images",
                                   "unset for scan='raster'", str(self.n_images),
                                   "drop n_images and set step, or use --scan random")
        if self.scan == "random" and self.step is not None:
            raise _CrossFieldError("step applies only to raster scans", "step", "unset for scan='random'",
                                   str(self.step), "drop step, or use --scan raster")
        if self.probe_diameter is not None and self.probe_diameter > self.N:
            raise _CrossFieldError("the probe must fit in the patch", "probe_diameter", f"<= N ({self.N})",
                                   str(self.probe_diameter), "lower probe_diameter or raise N")
        minimum = int(np.ceil(self.N + 2 * DEFAULT_MARGIN_PX))
        if self.object_size < minimum:
            raise _CrossFieldError("the object must hold one N x N patch plus margins", "object_size",
                                   f">= {minimum} for N={self.N}", str(self.object_size),
                                   "raise object_size or lower N")
        low, high = scan_limits(self.object_size, self.N, DEFAULT_MARGIN_PX)
        if self.scan == "raster" and 2 * self.jitter > high - low:
            raise _CrossFieldError("jitter is larger than the scannable half-width", "jitter",
                                   f"<= {(high - low) / 2:.1f} px", str(self.jitter),
                                   "lower jitter or raise object_size")
        return self

    @classmethod
    def from_mapping(cls, data: Any, *, where: str = "") -> Self:
        """Validate a mapping; any problem (also a cross-field one) becomes one ConfigError."""
        if data is not None and not isinstance(data, dict):
            return super().from_mapping(data, where=where)  # raises: not a mapping
        if data:
            check_known_keys(cls, data, prefix=where)
        try:
            return cls.model_validate({} if data is None else data)
        except ValidationError as exc:
            original = exc.errors()[0].get("ctx", {}).get("error")
            if isinstance(original, _CrossFieldError):
                field = f"{where}.{original.field}" if where else original.field
                raise ConfigError(original.problem + ";", where=field, expected=original.expected,
                                  found=original.found, hint=original.hint) from None
            raise config_error_from_validation(exc, cls, prefix=where) from None

    @property
    def step_px(self) -> float:
        """The raster step actually used (pixels): ``step`` or N/8."""
        return float(self.step) if self.step is not None else self.N / 8.0

    @property
    def n_positions(self) -> int:
        """How many patterns the scan has: ``n_images`` (random) or the raster grid's size."""
        if self.scan == "random" and self.n_images is not None:  # the cross-field check requires it there
            return int(self.n_images)
        return raster_grid_size(self.object_size, self.N, self.step_px, self.jitter) ** 2


def default_simulation_config() -> SimulationConfig:
    """The embedded demo dataset: lines object 224 px, N=64, disk probe, raster step 8 px
    with 1 px jitter (400 patterns), 1e9 photons, seed 0.  Simulates in well under a second."""
    return SimulationConfig()


def _make_probe(cfg: SimulationConfig) -> np.ndarray:
    diameter = cfg.probe_diameter if cfg.probe_diameter is not None else default_probe_diameter(cfg.N)
    if cfg.probe == "curved":
        return curved_probe(cfg.N, diameter_px=diameter)
    return disk_probe(cfg.N, diameter_px=diameter)


def _draw_scene(cfg: SimulationConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object, probe and positions ``(n, 2)``, drawing from ``rng`` in the fixed order object, scan."""
    obj = OBJECT_GENERATORS[cfg.object](cfg.object_size, rng)
    probe = _make_probe(cfg)
    if cfg.scan == "random":
        positions = random_scan(cfg.object_size, cfg.N, cfg.n_positions, rng)
    else:
        positions = raster_scan(cfg.object_size, cfg.N, cfg.step_px, cfg.jitter, rng)
    return obj, probe, positions


def _scan_members(
    cfg: SimulationConfig, *, chunk: int | None = None, progress: ProgressCallback | None = None
) -> dict[str, np.ndarray | StreamedArray]:
    """The file's members in file order; ``diffraction`` is a :class:`StreamedArray` (noise drawn as it is read)."""
    rng = np.random.default_rng(cfg.seed)
    obj, probe, positions = _draw_scene(cfg, rng)
    _, chunks = diffraction_chunks(obj, probe, positions, cfg.nphotons, rng, chunk=chunk, on_chunk=progress)
    n = positions.shape[0]
    return {
        "diffraction": StreamedArray((n, cfg.N, cfg.N), np.dtype(np.float32), chunks),
        "probeGuess": probe.astype(np.complex64),
        "xcoords": positions[:, 0].astype(np.float64),
        "ycoords": positions[:, 1].astype(np.float64),
        "objectGuess": obj.astype(np.complex64),
        "scan_index": np.zeros(n, dtype=np.int64),
    }


def simulate_scan(cfg: SimulationConfig) -> dict[str, np.ndarray]:
    """Simulate one scan; return the DATA-001 arrays (without ``_metadata``), all in memory.

    Keys: ``diffraction`` (n, N, N) float32 amplitude, ``probeGuess`` (N, N) complex64 (the
    true probe), ``xcoords``/``ycoords`` (n,) float64 pixels, ``objectGuess`` (M, M) complex64
    (the ground truth), ``scan_index`` (n,) int64 (all 0: a single scan).  Random draws come
    from ``default_rng(cfg.seed)`` in the order object, scan positions, Poisson noise.
    For long scans use :func:`write_scan`, which never holds the whole stack.
    """
    arrays: dict[str, np.ndarray] = {}
    for key, member in _scan_members(cfg).items():  # only the diffraction is streamed
        if isinstance(member, StreamedArray):
            member = np.concatenate(list(member.chunks)) if member.shape[0] else np.empty(member.shape, dtype=np.float32)
        arrays[key] = member
    return arrays


def scan_metadata(cfg: SimulationConfig, n_images: int) -> dict[str, Any]:
    """The ``_metadata`` mapping written with a simulated scan (JSON-safe)."""
    return {
        "nphotons": cfg.nphotons,
        "seed": cfg.seed,
        "n_images": n_images,
        "diffraction_kind": "amplitude",
        "simulation_config": cfg.model_dump(mode="json"),
        "generator": {"name": GENERATOR_NAME, "version": __version__},
    }


def write_scan(
    cfg: SimulationConfig, path: str | os.PathLike, *, chunk: int | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Simulate ``cfg`` and write the scan to ``path`` (must end in ``.npz``), atomically.

    The file holds the :func:`simulate_scan` arrays plus ``_metadata``, a 0-d unicode array
    holding JSON (read it with ``json.loads(str(data["_metadata"]))``).  The diffraction
    stack is simulated and written ``chunk`` patterns at a time (default
    :func:`~ptycho_torch.simulate.diffraction.chunk_patterns`), into a temporary file that
    replaces ``path`` only when complete; the bytes do not depend on ``chunk``.  Missing
    parent directories are created.  ``progress(stage, done, total)`` is called after each
    chunk.  Returns the path written.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ConfigError(
            "output file must be an NPZ file", where=str(path), expected="a path ending in .npz",
            found=path.suffix or "no suffix", hint="e.g. --out data/lines.npz",
        )
    if path.is_dir():
        raise ConfigError("output path is a directory", where=str(path), hint="give a file name ending in .npz")
    members = _scan_members(cfg, chunk=chunk, progress=progress)
    metadata = scan_metadata(cfg, int(members["diffraction"].shape[0]))
    members["_metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    try:
        with atomic_path(path) as tmp, open(tmp, "xb") as handle:
            write_npz(handle, members)
    except OSError as exc:
        raise ConfigError(f"cannot write the scan file ({exc.strerror})", where=str(path),
                          hint="check that the directory exists and is writable") from None
    return path
