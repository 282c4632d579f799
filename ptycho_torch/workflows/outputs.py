"""Atomic writers for workflow outputs (NPZ, PNG, JSON): temporary file, then rename."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho_torch.atomic import atomic_path, write_json_atomic

__all__ = ["save_npz_atomic", "save_png_atomic", "to_uint8", "write_json_atomic"]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def to_uint8(image: np.ndarray, clip_percent: float = 2.0) -> np.ndarray:
    """Scale a real image to 0..255 between its 2nd and 98th percentiles (NaN -> 0).

    Clipping the extreme percentiles keeps a few outlier pixels at the scan's border from
    setting the grey scale of the whole picture.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    low, high = np.percentile(image[finite], [clip_percent, 100.0 - clip_percent])
    scaled = np.zeros(image.shape, dtype=np.float64)
    scaled[finite] = np.clip((image[finite] - low) / (high - low + 1e-12), 0.0, 1.0)
    return np.round(scaled * 255).astype(np.uint8)


def save_png_atomic(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image), mode="L").save(tmp, format="PNG")
    return path
