"""Helpers shared by the scan writers: atomic replace-on-success and metadata encoding."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.atomic import atomic_path
from ptycho_torch.errors import DataContractError


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def encode_metadata(metadata: dict[str, Any]) -> str:
    """``metadata`` as a JSON object string (numpy scalars/arrays converted to plain values)."""
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    return json.dumps(metadata, default=_json_default, sort_keys=True)


@contextlib.contextmanager
def atomic_target(path: Path, validator: Callable[[Path], Any] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success validate it and ``os.replace`` it.

    The temporary name keeps ``path``'s suffix so readers dispatch on it.  ``validator`` is
    called with the temporary path (e.g. a reader class); if it raises
    :class:`DataContractError`, the temporary file is removed and the error is re-raised
    naming ``path`` (nothing is written).  Any other failure also removes the temporary file.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        yield tmp
        if validator is not None:
            try:
                opened = validator(tmp)
            except DataContractError as err:
                where = (err.where or "").replace(str(tmp), str(path))
                raise DataContractError(err.message, where=where, expected=err.expected, found=err.found,
                                        hint=f"{err.hint} (nothing was written)" if err.hint
                                        else "nothing was written") from None
            close = getattr(opened, "close", None)
            if callable(close):
                close()
