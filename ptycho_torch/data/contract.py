"""The scan-file data contract (DATA-001) and the legacy layout rule (FORMAT-001).

A scan file (NPZ or HDF5) holds, under these keys:

==================  ============  ===========================================  ========
key                 shape         dtype (stored -> as read)                    required
==================  ============  ===========================================  ========
``diffraction``     (n, H, W)     any real float -> float32, amplitude >= 0    yes
                                  (legacy key ``diff3d`` accepted)
``probeGuess``      (H, W)        complex64/complex128 -> complex64            yes
``xcoords``         (n,)          real float or integer -> float64, pixels     yes
``ycoords``         (n,)          real float or integer -> float64, pixels     yes
``objectGuess``     (M, M')       complex -> complex64 (read lazily)           no
``scan_index``      (n,)          integer -> int64                             no
``_metadata``       scalar        JSON object as a string (e.g. nphotons)      no
==================  ============  ===========================================  ========

FORMAT-001: diffraction stored as ``(H, W, n)`` is recognised when its last axis equals
``len(xcoords)``, its first two axes equal the probe shape and its first axis does not equal
``n``; readers then present it as ``(n, H, W)`` and emit one :class:`LegacyLayoutWarning`
per file opened.

Everything here runs when a file is *opened*, never mid-training.  Header checks (keys,
ranks, shapes, dtypes) are exact.  Value checks on the diffraction stack (finite,
non-negative) look at a bounded, deterministic sample of frames -- all frames when
``n <= CHECK_FRAMES_MAX``, else ``CHECK_FRAMES_MAX`` evenly spaced ones -- so opening a
100 GB file stays cheap; coordinates are always checked in full.  A frame size outside
{64, 128, 256} is *not* a contract violation: the model config decides what it accepts.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho_torch.errors import DataContractError

DIFFRACTION_KEYS = ("diffraction", "diff3d")
"""Accepted keys of the diffraction stack, preferred first (``diff3d`` is the legacy name)."""
PROBE_KEY = "probeGuess"
X_KEY = "xcoords"
Y_KEY = "ycoords"
OBJECT_KEY = "objectGuess"
SCAN_INDEX_KEY = "scan_index"
METADATA_KEY = "_metadata"
REQUIRED_KEYS = (PROBE_KEY, X_KEY, Y_KEY)
"""Required keys besides one of :data:`DIFFRACTION_KEYS`."""

CHECK_FRAMES_MAX = 256
"""At most this many (evenly spaced) frames are value-checked when a file is opened."""


class LegacyLayoutWarning(UserWarning):
    """A diffraction stack stored as (H, W, n) was transposed to (n, H, W) (FORMAT-001)."""


@dataclass(frozen=True)
class ArrayInfo:
    """Shape and dtype of a stored array, known without reading its data."""

    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class DiffractionLayout:
    """How the diffraction stack is stored: ``n`` frames of ``frame_shape`` = (H, W) pixels.

    ``legacy_hwn`` is True when the stack is stored as (H, W, n) (FORMAT-001).
    """

    n: int
    frame_shape: tuple[int, int]
    legacy_hwn: bool


def contract_error(path: Any, key: str | None, message: str, *, expected: str | None = None,
                   found: str | None = None, hint: str | None = None) -> DataContractError:
    """Build a :class:`DataContractError` whose ``where`` names the file and the key."""
    where = f"{path}" if key is None else f"{path} [{key}]"
    return DataContractError(message, where=where, expected=expected, found=found, hint=hint)


def find_diffraction_key(path: Any, keys: set[str] | frozenset[str]) -> str:
    """Return the key holding the diffraction stack, checking all required keys are present."""
    dkey = next((k for k in DIFFRACTION_KEYS if k in keys), None)
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if dkey is None:
        missing.insert(0, "diffraction")
    if dkey is None or missing:
        raise contract_error(
            path, missing[0], "missing required key",
            expected=f"keys {', '.join(('diffraction',) + REQUIRED_KEYS)}",
            found=f"keys {sorted(keys) or 'none'}",
            hint="a scan file needs diffraction (or legacy diff3d), probeGuess, xcoords and ycoords")
    return dkey


def check_probe(path: Any, probe: np.ndarray) -> np.ndarray:
    """Validate ``probeGuess``: rank 2, complex, finite.  Returns it as complex64 (H, W)."""
    if probe.ndim != 2:
        raise contract_error(path, PROBE_KEY, "wrong rank", expected="a 2-D (H, W) complex array",
                             found=f"shape {probe.shape}", hint="store one probe mode as (H, W)")
    if probe.dtype.kind != "c":
        raise contract_error(path, PROBE_KEY, "wrong dtype", expected="complex64 (or complex128)",
                             found=f"dtype {probe.dtype}",
                             hint="the probe must be complex: store probe.astype(np.complex64)")
    if not np.all(np.isfinite(probe)):
        raise contract_error(path, PROBE_KEY, "non-finite values", expected="finite values",
                             found="NaN or Inf", hint="regenerate or clean the probe")
    return np.ascontiguousarray(probe, dtype=np.complex64)


def _check_coord(path: Any, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 1:
        raise contract_error(path, key, "wrong rank", expected="a 1-D (n,) array",
                             found=f"shape {arr.shape}", hint="store one coordinate per pattern")
    if arr.dtype.kind not in "fiu":
        raise contract_error(path, key, "wrong dtype", expected="real float64 pixel coordinates",
                             found=f"dtype {arr.dtype}", hint="store coordinates as float64 pixels")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        raise contract_error(path, key, "non-finite coordinates", expected="finite values",
                             found=f"NaN/Inf at index {int(np.argmax(bad))} ({int(bad.sum())} in all)",
                             hint="drop or fix the patterns with bad positions")
    return out


def check_coords(path: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``xcoords``/``ycoords``: rank 1, real, finite, same non-zero length -> float64."""
    xs = _check_coord(path, X_KEY, x)
    ys = _check_coord(path, Y_KEY, y)
    if xs.shape != ys.shape:
        raise contract_error(path, Y_KEY, "coordinate count mismatch", expected=f"{xs.size} values like xcoords",
                             found=f"{ys.size}", hint="xcoords and ycoords need one entry per pattern")
    if xs.size == 0:
        raise contract_error(path, X_KEY, "empty scan", expected="at least one pattern",
                             found="0 positions", hint="the file holds no scan points; check how it was written")
    return xs, ys


def check_diffraction_layout(path: Any, key: str, info: ArrayInfo, n_coords: int,
                             probe_shape: tuple[int, ...]) -> DiffractionLayout:
    """Validate the diffraction header against the coordinates and probe; detect FORMAT-001."""
    if info.dtype.kind != "f":
        raise contract_error(path, key, "wrong dtype", expected="float32 amplitude (sqrt of counts)",
                             found=f"dtype {info.dtype}",
                             hint="store np.sqrt(counts).astype(np.float32)")
    if len(info.shape) != 3:
        raise contract_error(path, key, "wrong rank", expected="a 3-D (n, H, W) stack",
                             found=f"shape {info.shape}", hint="stack the patterns along a first axis")
    a, b, c = info.shape
    if a == n_coords:
        layout = DiffractionLayout(n=a, frame_shape=(b, c), legacy_hwn=False)
    elif c == n_coords and (a, b) == tuple(probe_shape):
        layout = DiffractionLayout(n=c, frame_shape=(a, b), legacy_hwn=True)
    else:
        raise contract_error(path, key, "frame count does not match the coordinates",
                             expected=f"(n, H, W) with n = len(xcoords) = {n_coords}",
                             found=f"shape {info.shape}",
                             hint="diffraction, xcoords and ycoords need one entry per pattern")
    h, w = layout.frame_shape
    if h != w:
        raise contract_error(path, key, "non-square frames", expected="square (N, N) frames",
                             found=f"frame shape {layout.frame_shape}", hint="crop or pad frames to N x N")
    if tuple(probe_shape) != layout.frame_shape:
        raise contract_error(path, PROBE_KEY, "probe shape differs from the frame shape",
                             expected=f"shape {layout.frame_shape} like the diffraction frames",
                             found=f"shape {tuple(probe_shape)}",
                             hint="the probe must be sampled on the detector grid (N x N)")
    return layout


def warn_legacy_layout(path: Any, key: str, info: ArrayInfo) -> None:
    """Say once (per file opened) that a legacy (H, W, n) stack is read as (n, H, W)."""
    warnings.warn(f"{path} [{key}]: legacy (H, W, n) layout {info.shape} read as (n, H, W) "
                  "(FORMAT-001); rewrite the file to silence this", LegacyLayoutWarning, stacklevel=3)


def check_scan_index(path: Any, arr: np.ndarray, n: int) -> np.ndarray:
    """Validate the optional ``scan_index``: integer (n,) -> int64."""
    if arr.ndim != 1 or arr.shape[0] != n:
        raise contract_error(path, SCAN_INDEX_KEY, "wrong shape", expected=f"({n},) like xcoords",
                             found=f"shape {arr.shape}", hint="one scan index per pattern")
    if arr.dtype.kind not in "iu":
        raise contract_error(path, SCAN_INDEX_KEY, "wrong dtype", expected="an integer array",
                             found=f"dtype {arr.dtype}", hint="store scan_index as int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_object_info(path: Any, info: ArrayInfo) -> None:
    """Validate the optional ``objectGuess`` header: rank 2, complex."""
    if len(info.shape) != 2:
        raise contract_error(path, OBJECT_KEY, "wrong rank", expected="a 2-D (M, M) complex array",
                             found=f"shape {info.shape}", hint="store the object as one 2-D array")
    if info.dtype.kind != "c":
        raise contract_error(path, OBJECT_KEY, "wrong dtype", expected="complex64 (or complex128)",
                             found=f"dtype {info.dtype}", hint="store obj.astype(np.complex64)")


def check_frames(path: Any, key: str, frames: np.ndarray, indices: np.ndarray) -> None:
    """Value-check a sample of frames ``(k, H, W)`` read at ``indices``: finite and >= 0."""
    flat = frames.reshape(frames.shape[0], -1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        raise contract_error(path, key, "non-finite diffraction", expected="finite amplitudes",
                             found=f"NaN/Inf in frame {int(indices[np.argmax(bad)])}",
                             hint="clean the data (np.nan_to_num) or drop those frames")
    neg = (flat < 0).any(axis=1)
    if neg.any():
        i = int(np.argmax(neg))
        raise contract_error(path, key, "negative diffraction", expected="amplitudes >= 0 (sqrt of counts)",
                             found=f"min {float(flat[i].min()):.3g} in frame {int(indices[i])}",
                             hint="store sqrt(max(counts, 0)); background subtraction must be clipped at 0")


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most ``k`` distinct, sorted, evenly spaced indices in ``[0, n)`` (all when n <= k)."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def parse_metadata(path: Any, raw: Any) -> dict[str, Any]:
    """Decode ``_metadata`` (a JSON object as str/bytes/0-d array) and check ``nphotons``."""
    if raw is None:
        return {}
    if isinstance(raw, np.ndarray):
        if raw.ndim != 0 or raw.dtype.kind not in "US":
            raise contract_error(path, METADATA_KEY, "wrong type", expected="a JSON string",
                                 found=f"array dtype {raw.dtype} shape {raw.shape}",
                                 hint="store np.array(json.dumps(metadata))")
        raw = raw.item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError) as err:
        raise contract_error(path, METADATA_KEY, "not valid JSON", expected="a JSON object string",
                             found=str(err), hint="store json.dumps(metadata)") from None
    if not isinstance(meta, dict):
        raise contract_error(path, METADATA_KEY, "not a JSON object", expected="a JSON object ({...})",
                             found=type(meta).__name__, hint="store json.dumps({'nphotons': 1e9, ...})")
    if "nphotons" in meta:
        v = meta["nphotons"]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if not ok:
            raise contract_error(path, f"{METADATA_KEY}.nphotons", "invalid photon count",
                                 expected="a finite number > 0", found=repr(v),
                                 hint="nphotons is the expected total count per pattern, e.g. 1e9")
    return meta
