"""The only door from the launcher into ptycho_torch: its public API, imported lazily.

Keeping the imports here (and lazy) means ``ptycho-launch --help`` does not import torch,
and the dependency ``launcher -> ptycho_torch (public API)`` is visible in one place.
"""

from __future__ import annotations

from typing import Any


def create_training_payload(*args: Any, **kwargs: Any) -> Any:
    """``ptycho_torch.create_training_payload`` (see its docstring)."""
    from ptycho_torch import create_training_payload as factory

    return factory(*args, **kwargs)


def save_run_file(*args: Any, **kwargs: Any) -> Any:
    """``ptycho_torch.save_run_file``: write a run file that reads back losslessly."""
    from ptycho_torch import save_run_file as save

    return save(*args, **kwargs)


def run_training(*args: Any, **kwargs: Any) -> Any:
    """``ptycho_torch.run_training``: train, resume from the newest checkpoint, write the bundle."""
    from ptycho_torch import run_training as train

    return train(*args, **kwargs)


def open_scan(path: Any) -> Any:
    """``ptycho_torch.open_scan``: open a scan file and check it against the data contract."""
    from ptycho_torch import open_scan as opener

    return opener(path)


def execution_model() -> Any:
    """``ptycho_torch.ExecutionConfig`` (the model class), for generated CLI flags."""
    from ptycho_torch import ExecutionConfig

    return ExecutionConfig
