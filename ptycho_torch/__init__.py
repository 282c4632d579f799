"""ptycho-torch: the PyTorch backend of PtychoPINN.

The public API is listed in ``__all__``.  Heavy parts (torch, Lightning) are imported on
first use, so that ``import ptycho_torch`` and the CLIs' ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelConfig": "ptycho_torch.config.canonical",
    "TrainingConfig": "ptycho_torch.config.canonical",
    "InferenceConfig": "ptycho_torch.config.canonical",
    "ExecutionConfig": "ptycho_torch.config.execution",
    "load_run_file": "ptycho_torch.config.io",
    "save_run_file": "ptycho_torch.config.io",
    "config_hash": "ptycho_torch.config.io",
    "TrainingPayload": "ptycho_torch.factory",
    "InferencePayload": "ptycho_torch.factory",
    "create_training_payload": "ptycho_torch.factory",
    "create_inference_payload": "ptycho_torch.factory",
    "run_training": "ptycho_torch.workflows.train",
    "TrainingResult": "ptycho_torch.workflows.train",
    "run_inference": "ptycho_torch.workflows.infer",
    "open_scan": "ptycho_torch.data",
    "atomic_path": "ptycho_torch.atomic",
    "write_json_atomic": "ptycho_torch.atomic",
    "PtychoError": "ptycho_torch.errors",
    "ConfigError": "ptycho_torch.errors",
    "DataContractError": "ptycho_torch.errors",
    "BundleError": "ptycho_torch.errors",
    "CheckpointError": "ptycho_torch.errors",
    "TrainingCollapseError": "ptycho_torch.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ptycho_torch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
