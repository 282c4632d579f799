"""Atomic writers for workflow outputs (NPZ, JSON): temporary file, then rename.

Figures (PNG) are written by :mod:`ptycho_torch.evaluate.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.atomic import atomic_path, write_json_atomic

__all__ = ["save_npz_atomic", "write_json_atomic"]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            members: dict[str, Any] = dict(arrays)
            np.savez(handle, **members)
    return path
