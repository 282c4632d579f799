"""Configs: canonical (science), execution (how to run), the bridge, reading and writing."""

from ptycho_torch.config.bridge import InferencePlan, TrainingPlan, bridge_inference, bridge_training
from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig, resolve_accelerator
from ptycho_torch.config.io import RunFile, config_hash, config_to_dict, load_run_file, save_run_file

__all__ = [
    "ExecutionConfig",
    "InferenceConfig",
    "InferencePlan",
    "ModelConfig",
    "RunFile",
    "TrainingConfig",
    "TrainingPlan",
    "bridge_inference",
    "bridge_training",
    "config_hash",
    "config_to_dict",
    "load_run_file",
    "resolve_accelerator",
    "save_run_file",
]
