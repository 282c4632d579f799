"""ExecutionConfig: how a job runs (devices, precision, data loading, checkpoints, logs).

Nothing here changes *what* is computed in exact arithmetic; it is never merged into the
canonical configs, never hashed with them, and not stored as science in the model bundle.
(Reduced precision changes rounding, not the model being trained.)
"""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import Field, model_validator

from ptycho_torch.config.base import FrozenConfig
from ptycho_torch.errors import ConfigError

Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]

FAST_BF16_CAPABILITY = (8, 0)
"""CUDA compute capability from which bf16 runs on tensor cores (Ampere and later)."""


class AcceleratorFallbackWarning(UserWarning):
    """POLICY-001: ``accelerator='auto'`` found no GPU and runs on the CPU."""


class ExecutionConfig(FrozenConfig):
    """How to run: hardware, parallelism, precision, data loading, checkpoints and logs."""

    accelerator: Accelerator = Field(
        "auto", description="Device type; 'auto' picks the GPU when there is one, else the CPU with a warning (POLICY-001)."
    )
    devices: int = Field(1, ge=1, le=1024, description="Devices (processes) per node; under SLURM this is the tasks per node.")
    num_nodes: int = Field(1, ge=1, le=100000, description="Number of nodes; under SLURM this is the node count of the job.")
    strategy: Literal["auto", "ddp"] = Field(
        "auto", description="Lightning strategy; 'ddp' for several processes ('auto' picks it when devices*num_nodes > 1)."
    )
    precision: Literal["auto", "32-true", "16-mixed", "bf16-mixed"] = Field(
        "auto",
        description="Numerical precision of training and inference; 'auto' is 'bf16-mixed' on a CUDA GPU with fast bf16 "
        "(compute capability >= 8.0) and '32-true' elsewhere (CPU, MPS, older GPUs).",
    )
    deterministic: bool = Field(True, description="Ask torch for deterministic algorithms (reproducible runs).")
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes per device (0 loads in the main process).")
    pin_memory: bool = Field(False, description="Pin host memory of batches (faster copies to a GPU).")
    persistent_workers: bool = Field(False, description="Keep DataLoader workers alive between epochs (needs num_workers > 0).")
    prefetch_factor: int | None = Field(None, ge=1, le=64, description="Batches each worker loads ahead (needs num_workers > 0); None uses torch's default.")
    checkpoint_every_n_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Write a periodic checkpoint every N optimiser steps; None: at each epoch end."
    )
    checkpoint_every_minutes: float | None = Field(
        None, gt=0.0, le=100000.0, description="Also write a periodic checkpoint every this many minutes of training."
    )
    checkpoint_keep_last: int = Field(2, ge=1, le=1000, description="How many periodic checkpoints to keep (plus last.ckpt).")
    logger_backend: Literal["tensorboard", "csv", "none"] = Field("tensorboard", description="Where scalar losses and images are logged.")
    log_every_n_steps: int = Field(10, ge=1, le=1_000_000, description="Log scalars every N optimiser steps.")
    enable_progress_bar: bool = Field(True, description="Show a progress bar while training.")
    inference_batch_size: int = Field(64, ge=1, le=1_000_000, description="Groups per forward pass during inference.")

    @model_validator(mode="after")
    def _cross_checks(self) -> "ExecutionConfig":
        if self.num_workers == 0 and self.persistent_workers:
            raise ValueError("persistent_workers=True needs num_workers > 0")
        if self.num_workers == 0 and self.prefetch_factor is not None:
            raise ValueError("prefetch_factor needs num_workers > 0")
        return self

    @property
    def world_size(self) -> int:
        """Total number of training processes: devices per node times nodes."""
        return self.devices * self.num_nodes


def resolve_accelerator(requested: str, *, cuda_available: bool | None = None) -> str:
    """POLICY-001: 'auto' becomes 'gpu' when CUDA is available, else 'cpu' with one warning.

    Explicit choices are returned unchanged ('cuda' is spelled 'gpu').
    """
    if requested == "cuda":
        return "gpu"
    if requested != "auto":
        return requested
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return "gpu"
    warnings.warn(
        "accelerator='auto': no GPU found, training on the CPU (set accelerator='cpu' to silence this)",
        AcceleratorFallbackWarning,
        stacklevel=2,
    )
    return "cpu"


def fast_bf16_available() -> bool:
    """True when CUDA device 0 has tensor-core bf16: compute capability >= 8.0 (Ampere, Hopper, ...).

    ``torch.cuda.is_bf16_supported()`` alone is not the test: it also answers True for older
    GPUs that only emulate bf16 (slower than float32 there).
    """
    import torch

    if not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(0)) >= FAST_BF16_CAPABILITY


def resolve_precision(requested: str, accelerator: str, *, fast_bf16: bool | None = None) -> str:
    """'auto' becomes 'bf16-mixed' on a GPU with fast bf16, else '32-true'; explicit values are kept.

    ``accelerator`` is the resolved one (:func:`resolve_accelerator`); an unresolved 'auto'
    (plans built without touching a device) resolves to '32-true'.  Mixed precision only
    ever covers the network: the physics, FFTs, shifts and the loss stay float32
    (:mod:`ptycho_torch.physics.precision`).
    """
    if requested != "auto":
        return requested
    if accelerator not in ("gpu", "cuda"):
        return "32-true"
    if fast_bf16 is None:
        fast_bf16 = fast_bf16_available()
    return "bf16-mixed" if fast_bf16 else "32-true"


def check_precision(precision: str, accelerator: str) -> None:
    """Refuse a precision the accelerator cannot run: float16 autocast needs a GPU.

    Called by the factories once the accelerator is known (resolved here, or the target the
    launcher chose), so ``--explain``, ``--dry-run`` and preflight report it before any work.
    An unresolved 'auto' is not judged.
    """
    if precision == "16-mixed" and accelerator == "cpu":
        raise ConfigError(
            "16-bit mixed precision needs a GPU",
            where="execution.precision",
            expected="'bf16-mixed', '32-true' or 'auto' on the CPU",
            found="'16-mixed' with accelerator 'cpu'",
            hint="use 'bf16-mixed' (autocast in bfloat16) or '32-true' on the CPU",
        )


def precision_reason(requested: str, resolved: str, accelerator: str) -> str:
    """One phrase saying why ``requested`` became ``resolved`` (for --explain)."""
    if requested != "auto":
        return ""
    if resolved == "bf16-mixed":
        return f"resolved: {resolved!r}, GPU with compute capability >= {FAST_BF16_CAPABILITY[0]}.0"
    if accelerator in ("gpu", "cuda"):
        return f"resolved: {resolved!r}, GPU without fast bf16 (compute capability < {FAST_BF16_CAPABILITY[0]}.0)"
    return f"resolved: {resolved!r} on {accelerator}"
