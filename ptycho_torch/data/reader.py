"""`ScanReader`: the one interface over scan files (NPZ, HDF5), validated when opened.

A reader validates the whole data contract (see :mod:`ptycho_torch.data.contract`) in its
constructor and keeps the small arrays (probe, coordinates, scan index, metadata) in
memory; diffraction frames are read lazily by index.  Readers are picklable: process-local
resources (memory maps, HDF5 handles) are dropped when pickled and re-opened on first use
in the new process, and also when the process id changes (fork), so a reader can be handed
to DataLoader workers under any start method.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ptycho_torch.data import contract


class ScanReader(ABC):
    """A validated scan file: small arrays in memory, frames read lazily.

    ``ScanReader(path, quiet=False)`` opens and validates ``path``; ``quiet=True`` silences
    the FORMAT-001 warning and the compressed-NPZ note.

    Attributes:
        path: the file.
        n: number of diffraction patterns.
        frame_shape: (H, W) of one pattern in pixels (H == W == N).
        probe: (H, W) complex64 probe guess.
        xcoords, ycoords: (n,) float64 scan positions in object pixels (x = column, y = row).
        scan_index: (n,) int64, or None when the file has none.
        metadata: dict decoded from the ``_metadata`` JSON (empty when absent).
        diffraction_key: the key the stack was found under (``diffraction`` or ``diff3d``).
        legacy_hwn: True when the stack is stored as (H, W, n) (FORMAT-001).
    """

    kind: ClassVar[str] = "scan"
    _transient: ClassVar[tuple[str, ...]] = ()
    """Process-local attributes reset to None when pickled (re-opened lazily)."""

    def __init__(self, path: str | os.PathLike[str], *, quiet: bool = False) -> None:
        self.path = Path(path)
        self._quiet = quiet  # True: no FORMAT-001 warning / loading note (used by validating writers)
        if not self.path.exists():
            raise contract.contract_error(self.path, None, f"{self.kind} file not found",
                                          hint="check the path (relative paths are resolved from "
                                               f"{Path.cwd()})")
        if not self.path.is_file():
            raise contract.contract_error(self.path, None, "not a regular file", found="a directory or special file",
                                          hint="pass the scan file itself")
        self.n: int = 0
        self.frame_shape: tuple[int, int] = (0, 0)
        self.probe: np.ndarray
        self.xcoords: np.ndarray
        self.ycoords: np.ndarray
        self.scan_index: np.ndarray | None = None
        self.metadata: dict[str, Any] = {}
        self.diffraction_key: str = "diffraction"
        self.legacy_hwn: bool = False
        self.has_object_guess: bool = False
        self._object_guess: np.ndarray | None = None
        self._mti_cache: dict[int, float] = {}
        self._pid: int | None = None
        for name in self._transient:
            setattr(self, name, None)
        self._open_and_validate()
        sample = contract.evenly_spaced(self.n, contract.CHECK_FRAMES_MAX)
        contract.check_frames(self.path, self.diffraction_key, self._read_sorted(sample), sample)

    # -- subclass hooks -------------------------------------------------------------
    @abstractmethod
    def _open_and_validate(self) -> None:
        """Read headers and small arrays, validate the contract, set the public attributes."""

    @abstractmethod
    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        """Frames at sorted, unique ``indices`` (k,) as float32 (k, H, W)."""

    @abstractmethod
    def _load_object_guess(self) -> np.ndarray:
        """Read ``objectGuess`` (already header-validated) as complex64 (M, M')."""

    def _close_transient(self) -> None:
        """Release process-local resources (override to close handles)."""
        for name in self._transient:
            setattr(self, name, None)

    def _owned(self) -> bool:
        """True when process-local resources were opened by this process; resets them otherwise."""
        if self._pid != os.getpid():
            for name in self._transient:  # inherited through fork, or fresh: drop, do not close
                setattr(self, name, None)
            self._pid = os.getpid()
            return False
        return True

    # -- public API -----------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """(n, 2) float64 scan positions in (x, y) order, pixels."""
        return np.stack([self.xcoords, self.ycoords], axis=1)

    @property
    def object_guess(self) -> np.ndarray | None:
        """(M, M') complex64 object guess, read on first access; None when the file has none."""
        if not self.has_object_guess:
            return None
        if self._object_guess is None:
            self._object_guess = self._load_object_guess()
        return self._object_guess

    @property
    def nphotons(self) -> float | None:
        """Expected total counts per pattern from ``_metadata['nphotons']``, or None."""
        v = self.metadata.get("nphotons")
        return None if v is None else float(v)

    def read_frames(self, indices: Any) -> np.ndarray:
        """Diffraction amplitudes at ``indices`` (any order, repeats allowed): float32 (k, H, W)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"{self.path}: frame index out of range [0, {self.n}): "
                             f"min {idx.min()}, max {idx.max()}")
        if idx.size == 0:
            return np.empty((0, *self.frame_shape), dtype=np.float32)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = self._read_sorted(uniq)
        if uniq.size == idx.size and np.array_equal(uniq, idx):
            return frames
        return np.ascontiguousarray(frames[inverse])

    def mean_total_intensity(self, max_frames: int = 4096, chunk_frames: int = 256) -> float:
        """Mean over frames of ``sum_hw X**2`` (X = amplitude), i.e. mean counts per pattern.

        Uses all frames when ``n <= max_frames``, else ``max_frames`` evenly spaced ones
        (deterministic).  Reads ``chunk_frames`` at a time; the result is cached.
        """
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if max_frames not in self._mti_cache:
            idx = contract.evenly_spaced(self.n, max_frames)
            total = 0.0
            for start in range(0, idx.size, chunk_frames):
                f = self._read_sorted(idx[start:start + chunk_frames]).astype(np.float64)
                total += float(np.square(f).sum())
            self._mti_cache[max_frames] = total / idx.size
        return self._mti_cache[max_frames]

    def close(self) -> None:
        """Release open handles / memory maps (the reader re-opens them if used again)."""
        self._close_transient()

    def __enter__(self) -> ScanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._transient:
            state[name] = None
        state["_pid"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, n={self.n}, frame_shape={self.frame_shape}, "
                f"legacy_hwn={self.legacy_hwn})")
