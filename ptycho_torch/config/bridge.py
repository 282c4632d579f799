"""The bridge: pure translation of canonical + execution configs into what the backend runs.

No I/O, no torch import.  Every canonical and execution field is consumed by one of the plans
below, or listed in :data:`UNUSED_FIELDS` with the reason; ``tests/config/test_config_bridge.py``
walks every field and proves it.

Consumers:
- ``plan.module``     -> ``ptycho_torch.model.module.PtychoPINNModule.from_plan`` (training, and
  inference from the bundle's training config: the same :func:`module_plan`)
- ``plan.data``       -> ``ptycho_torch.data.datamodule.PtychoDataModule(**plan.data)``
- ``plan.trainer``    -> ``lightning.Trainer(**plan.trainer, callbacks=..., logger=...)``
- ``plan.checkpoint`` -> the checkpoint callbacks of the training workflow
- ``plan.logger``     -> the logger the training workflow builds
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ptycho_torch.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig, resolve_precision
from ptycho_torch.errors import ConfigError

LOSS_FIELDS = ("nll_weight", "mae_weight", "torch_loss_mode")
"""The TrainingConfig fields of the loss (``ModulePlan.loss``)."""

OPTIM_FIELDS = ("optimizer", "learning_rate", "weight_decay", "momentum", "adam_beta1", "adam_beta2", "scheduler",
                "lr_warmup_epochs", "lr_min_ratio", "nepochs")
"""The TrainingConfig fields of the optimiser and its schedule (``ModulePlan.optim``)."""

#: Fields deliberately not consumed, with the reason.  Keys are "<Config>.<field>".
UNUSED_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "InferenceConfig.model": "the model is the bundle's (plan.module from its training config); the factory "
        "refuses a differing one and InferenceConfig checks neighbor_count against it",
    }
)


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ModulePlan:
    """What the LightningModule is built from: the validated model config and its training fields."""

    model: ModelConfig
    loss: Mapping[str, Any]
    optim: Mapping[str, Any]
    nphotons: float
    intensity_scale_trainable: bool
    probe_trainable: bool


@dataclass(frozen=True)
class TrainingPlan:
    """Everything the training workflow builds its components from."""

    module: ModulePlan
    data: Mapping[str, Any]
    trainer: Mapping[str, Any]
    checkpoint: Mapping[str, Any]
    logger: Mapping[str, Any]
    seed: int
    output_dir: str


@dataclass(frozen=True)
class InferencePlan:
    """Everything the inference workflow needs besides the bundle's weights."""

    module: ModulePlan
    data: Mapping[str, Any]
    accelerator: str
    precision: str
    output_dir: str
    model_path: str
    stitching: str = "probe_weighted"
    refine: Mapping[str, Any] = field(default_factory=dict)


def module_plan(training: TrainingConfig) -> ModulePlan:
    """The module's part of a validated training config (training, and inference from a bundle)."""
    return ModulePlan(
        model=training.model,
        loss=_frozen({name: getattr(training, name) for name in LOSS_FIELDS}),
        optim=_frozen({name: getattr(training, name) for name in OPTIM_FIELDS}),
        nphotons=training.nphotons,
        intensity_scale_trainable=training.intensity_scale_trainable,
        probe_trainable=training.probe_trainable,
    )


def module_plan_from_values(
    model: ModelConfig | Mapping[str, Any] | None = None,
    loss: Mapping[str, Any] | None = None,
    optim: Mapping[str, Any] | None = None,
    **training_fields: Any,
) -> ModulePlan:
    """A :class:`ModulePlan` from partial values, validated (and defaulted) by the canonical schema.

    For building a module by hand (tests, notebooks, benchmarks): ``model`` holds ModelConfig
    fields, ``loss`` the :data:`LOSS_FIELDS`, ``optim`` the :data:`OPTIM_FIELDS`, and the
    keywords any other TrainingConfig field (``nphotons``, ``probe_trainable``, ...).
    """
    values: dict[str, Any] = dict(training_fields)
    for section, given, fields in (("loss", loss, LOSS_FIELDS), ("optim", optim, OPTIM_FIELDS)):
        unknown = sorted(set(given or {}) - set(fields))
        if unknown:
            raise ConfigError(f"unknown key '{unknown[0]}' in {section}", where=f"{section}.{unknown[0]}",
                              found=repr(unknown[0]), hint=f"valid names: {', '.join(fields)}")
        values.update(given or {})
    model_values = model.model_dump(mode="python") if isinstance(model, ModelConfig) else dict(model or {})
    model_config = ModelConfig.from_mapping(model_values, where="model")
    # the model is validated on its own: TrainingConfig's data-side cross-checks (neighbor_count) do not apply here
    try:
        training = TrainingConfig.from_mapping(values)
    except ConfigError as error:  # name the section the bad value was given in
        section = "loss" if error.where in LOSS_FIELDS else "optim" if error.where in OPTIM_FIELDS else ""
        if not section:
            raise
        raise ConfigError(error.message, where=f"{section}.{error.where}", expected=error.expected,
                          found=error.found, hint=error.hint) from None
    return module_plan(training.model_copy(update={"model": model_config}))


def resolve_strategy(execution: ExecutionConfig) -> str:
    """'auto' becomes 'ddp' for several processes (never spawn: it breaks under SLURM)."""
    if execution.strategy == "auto" and execution.world_size > 1:
        return "ddp"
    return execution.strategy


def dataloader_options(execution: ExecutionConfig) -> dict[str, Any]:
    """DataLoader knobs, passed on only where torch accepts them."""
    options: dict[str, Any] = {"num_workers": execution.num_workers, "pin_memory": execution.pin_memory}
    if execution.num_workers > 0:
        options["persistent_workers"] = execution.persistent_workers
        if execution.prefetch_factor is not None:
            options["prefetch_factor"] = execution.prefetch_factor
    return options


def trainer_kwargs(training: TrainingConfig, execution: ExecutionConfig, accelerator: str) -> dict[str, Any]:
    """Lightning ``Trainer`` keyword arguments. ``accelerator`` is the resolved one (POLICY-001)."""
    return {
        "accelerator": accelerator,
        "devices": execution.devices,
        "num_nodes": execution.num_nodes,
        "strategy": resolve_strategy(execution),
        "precision": resolve_precision(execution.precision, accelerator),
        "deterministic": execution.deterministic,
        "max_epochs": training.nepochs,
        "gradient_clip_val": training.gradient_clip_val,
        "log_every_n_steps": execution.log_every_n_steps,
        "enable_progress_bar": execution.enable_progress_bar,
        "default_root_dir": str(training.output_dir),
        "use_distributed_sampler": False,  # the data module shards with its own resumable sampler
        "enable_checkpointing": True,
        "benchmark": False,
    }


def bridge_training(training: TrainingConfig, execution: ExecutionConfig, accelerator: str) -> TrainingPlan:
    """Translate a training config pair into a :class:`TrainingPlan`."""
    data = {
        "train_file": None if training.train_data_file is None else str(training.train_data_file),
        "test_file": None if training.test_data_file is None else str(training.test_data_file),
        "gridsize": training.model.gridsize,
        "n_groups": training.n_groups,
        "neighbor_count": training.neighbor_count,
        "subsample_seed": training.seed if training.subsample_seed is None else training.subsample_seed,
        "batch_size": training.batch_size,
        "seed": training.seed,
        **dataloader_options(execution),
    }
    return TrainingPlan(
        module=module_plan(training),
        data=_frozen(data),
        trainer=_frozen(trainer_kwargs(training, execution, accelerator)),
        checkpoint=_frozen(
            {
                "every_n_steps": execution.checkpoint_every_n_steps,
                "every_minutes": execution.checkpoint_every_minutes,
                "keep_last": execution.checkpoint_keep_last,
            }
        ),
        logger=_frozen({"backend": execution.logger_backend}),
        seed=training.seed,
        output_dir=str(training.output_dir),
    )


def bridge_inference(
    inference: InferenceConfig, execution: ExecutionConfig, accelerator: str, trained: TrainingConfig
) -> InferencePlan:
    """Translate an inference config pair, with the bundle's training config ``trained``, into an :class:`InferencePlan`."""
    data = {
        "test_file": str(inference.test_data_file),
        "gridsize": trained.model.gridsize,
        "n_groups": inference.n_groups,
        "neighbor_count": inference.neighbor_count,
        "batch_size": execution.inference_batch_size,
        **dataloader_options(execution),
    }
    return InferencePlan(
        module=module_plan(trained),
        data=_frozen(data),
        accelerator=accelerator,
        precision=resolve_precision(execution.precision, accelerator),
        output_dir=str(inference.output_dir),
        model_path=str(inference.model_path),
        stitching=inference.stitching,
        refine=_frozen({"iterations": inference.refine_iters, "refine_probe": inference.refine_probe,
                        "tolerance": inference.refine_tolerance}),
    )
