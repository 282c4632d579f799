"""The factories: the one place where configs are assembled into payloads.

Precedence, lowest to highest (each resolved field records which layer set it):

1. ``default``          the config models' defaults
2. ``file:<path>``      the run file (``--config``), or ``config`` passed programmatically
3. ``data:<file>``      values inferred from the data file: ``model.N`` from ``probeGuess``'s
                        shape, ``nphotons`` from the file's ``_metadata``
4. ``override``         explicit overrides (``--set key=value``), then ``flag --name`` for
                        named CLI flags

The execution config is assembled beside the canonical one from the same layers (keys
under ``execution.``), never merged into it.  The factories build on the bridge
(:mod:`ptycho_torch.config.bridge`) and do not repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ptycho_torch.config.bridge import InferencePlan, TrainingPlan, bridge_inference, bridge_training
from ptycho_torch.config.canonical import SUPPORTED_N, InferenceConfig, TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig, check_precision, precision_reason, resolve_accelerator
from ptycho_torch.config.io import config_hash, config_to_dict, load_run_file, read_mapping
from ptycho_torch.config.layers import LayeredConfig, Resolved, field_paths, flatten
from ptycho_torch.errors import ConfigError

EXECUTION_PREFIX = "execution."
TRAINING_ALIASES = {"n_images": "n_groups"}


@dataclass(frozen=True)
class TrainingPayload:
    """A fully resolved training request: canonical config, execution config, plan, provenance."""

    training: TrainingConfig
    execution: ExecutionConfig
    accelerator: str
    plan: TrainingPlan
    provenance: Mapping[str, Resolved]
    config_hash: str
    cluster: Mapping[str, Any] | None = None

    def trainer_kwargs(self) -> dict[str, Any]:
        """Lightning Trainer keyword arguments (from the bridge)."""
        return dict(self.plan.trainer)

    def explain(self) -> str:
        """The provenance table: field, value, source."""
        return format_provenance(self.provenance)


@dataclass(frozen=True)
class InferencePayload:
    """A fully resolved inference request."""

    inference: InferenceConfig
    execution: ExecutionConfig
    accelerator: str
    plan: InferencePlan
    provenance: Mapping[str, Resolved]

    def explain(self) -> str:
        return format_provenance(self.provenance)


def _file_layer(config_path: str | Path | None, config: Any) -> tuple[dict[str, Any], dict[str, Any], Any, str]:
    """The run file's (or programmatic config's) training and execution sections and its label."""
    if config_path is not None and config is not None:
        raise ConfigError("give either config_path or config, not both", where="create_training_payload")
    if config_path is not None:
        run = load_run_file(config_path)
        return run.training, run.execution, run.cluster, f"file:{config_path}"
    if config is None:
        return {}, {}, None, "config"
    if hasattr(config, "model_dump"):
        return config_to_dict(config), {}, None, "config"
    if not isinstance(config, Mapping):
        raise ConfigError("config must be a mapping or TrainingConfig", where="config", found=type(config).__name__)
    data = dict(config)
    execution = data.pop("execution", None) or {}
    cluster = data.pop("cluster", None)
    return data, dict(execution), cluster, "config"


def inspect_training_data(path: str | Path) -> dict[str, Any]:
    """Values inferred from a scan file: ``model.N`` (probe shape) and ``nphotons`` (metadata)."""
    from ptycho_torch.data import open_scan  # data sits above config; imported only when needed

    reader = open_scan(path)
    try:
        height, width = reader.probe.shape[-2:]
        nphotons = reader.nphotons
    finally:
        reader.close()  # only the probe and the metadata are needed; release the file now
    if height != width or height not in SUPPORTED_N:
        raise ConfigError(
            "probeGuess shape gives an unsupported patch size N",
            where=f"{path}:probeGuess",
            expected=f"square N x N with N in {SUPPORTED_N}",
            found=f"{height} x {width}",
            hint="crop or resample the probe and diffraction to a supported size",
        )
    inferred: dict[str, Any] = {"model.N": int(height)}
    if nphotons is not None:
        inferred["nphotons"] = float(nphotons)
    return inferred


def _validated(cls, data: dict[str, Any], layers: LayeredConfig, prefix: str = ""):
    try:
        return cls.from_mapping(data, where=prefix.rstrip("."))
    except ConfigError as err:
        source = layers.source_of(f"{prefix}{err.where}") if err.where else None
        if source is None and err.where:
            source = layers.source_of(err.where)
        if source and source != "default":
            err = ConfigError(err.message, where=f"{err.where} (from {source})", expected=err.expected,
                              found=err.found, hint=err.hint)
        raise err from None


def create_training_payload(
    config_path: str | Path | None = None,
    *,
    config: Mapping[str, Any] | TrainingConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_overrides: Mapping[str, Any] | None = None,
    execution: ExecutionConfig | Mapping[str, Any] | None = None,
    inspect_data: bool = True,
    resolve_device: bool = True,
) -> TrainingPayload:
    """Assemble a :class:`TrainingPayload` from defaults, a file, the data and overrides.

    ``overrides`` and ``flag_overrides`` take dotted keys (``nepochs``, ``model.N``,
    ``execution.devices``); flag overrides win over ``--set`` overrides.  ``execution``
    (a config or mapping) sits between the file and the overrides.  With ``inspect_data``
    the training file is opened (contract-checked) and N and nphotons are inferred from it.
    """
    known = field_paths(TrainingConfig) + [EXECUTION_PREFIX + p for p in field_paths(ExecutionConfig)]
    layers = LayeredConfig(known, aliases=TRAINING_ALIASES)
    layers.apply(config_to_dict(TrainingConfig()), "default")
    layers.apply({"execution": config_to_dict(ExecutionConfig())}, "default")

    training_file, execution_file, cluster, file_source = _file_layer(config_path, config)
    layers.apply(training_file, file_source)
    layers.apply({"execution": execution_file}, file_source)
    if execution is not None:
        execution_values = config_to_dict(execution) if isinstance(execution, ExecutionConfig) else dict(execution)
        layers.apply({"execution": execution_values}, "execution argument")

    override_layers = [(flatten(overrides or {}), "override"), (flatten(flag_overrides or {}), "flag")]
    train_file = layers.get("train_data_file")
    for values, _ in override_layers:
        train_file = values.get("train_data_file", train_file)
    if inspect_data and train_file is not None:
        inferred = inspect_training_data(train_file)
        for path, value in inferred.items():
            previous = layers.values[path]
            layers.apply({path: value}, f"data:{train_file}", flat=True)
            if previous.source != "default" and previous.value != value:
                layers.values[path] = Resolved(value, f"data:{train_file}", f"replaces {previous.value!r} from {previous.source}")
    for values, source in override_layers:
        layers.apply(values, source, flat=True)

    training = _validated(TrainingConfig, layers.section(exclude=("execution",)), layers)
    execution_cfg = _validated(ExecutionConfig, layers.section(EXECUTION_PREFIX), layers, prefix=EXECUTION_PREFIX)
    accelerator = resolve_accelerator(execution_cfg.accelerator) if resolve_device else execution_cfg.accelerator
    check_precision(execution_cfg.precision, accelerator)
    plan = bridge_training(training, execution_cfg, accelerator)
    _note_resolved_precision(layers, execution_cfg.precision, plan.trainer["precision"], accelerator)
    return TrainingPayload(
        training=training,
        execution=execution_cfg,
        accelerator=accelerator,
        plan=plan,
        provenance=dict(sorted(layers.values.items())),
        config_hash=config_hash(training),
        cluster=cluster,
    )


def create_inference_payload(
    config_path: str | Path | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_overrides: Mapping[str, Any] | None = None,
    execution: ExecutionConfig | Mapping[str, Any] | None = None,
    resolve_device: bool = True,
) -> InferencePayload:
    """Assemble an :class:`InferencePayload`; the model config comes from the bundle.

    A model field given by the user that differs from the bundle's is an error: a bundle
    is only ever run as it was trained.
    """
    from ptycho_torch.bundle import bundle_training_fields, read_bundle_metadata  # reads the JSON header only

    known = field_paths(InferenceConfig) + [EXECUTION_PREFIX + p for p in field_paths(ExecutionConfig)]
    layers = LayeredConfig(known, aliases=TRAINING_ALIASES)
    defaults = {name: info.default for name, info in InferenceConfig.model_fields.items() if name != "model" and not info.is_required()}
    layers.apply({k: (str(v) if isinstance(v, Path) else v) for k, v in defaults.items()}, "default")
    layers.apply({"execution": config_to_dict(ExecutionConfig())}, "default")
    data = dict(read_mapping(config_path)) if config_path is not None else dict(config or {})
    execution_file = data.pop("execution", None) or {}
    data.pop("cluster", None)
    source = f"file:{config_path}" if config_path is not None else "config"
    layers.apply(data, source)
    layers.apply({"execution": execution_file}, source)
    if execution is not None:
        execution_values = config_to_dict(execution) if isinstance(execution, ExecutionConfig) else dict(execution)
        layers.apply({"execution": execution_values}, "execution argument")
    for values, src in ((overrides or {}, "override"), (flag_overrides or {}, "flag")):
        layers.apply(values, src)

    model_path = layers.get("model_path")
    if model_path is None:
        raise ConfigError("no model bundle given", where="model_path", hint="pass --model PATH/TO/model.ptpinn")
    if layers.get("test_data_file") is None:
        raise ConfigError("no data file given", where="test_data_file", hint="pass --data PATH/TO/scan.npz")
    trained_fields = bundle_training_fields(read_bundle_metadata(model_path))
    trained = TrainingConfig.from_mapping(trained_fields, where=f"{model_path}:training")
    bundle_model = trained.model.model_dump(mode="python")
    for name, value in bundle_model.items():
        path = f"model.{name}"
        given = layers.values.get(path)
        if given is not None and given.source != "default" and given.value != value:
            raise ConfigError(
                f"differs from the bundle's value {value!r}",
                where=f"{path} (from {given.source})",
                found=repr(given.value),
                hint="a bundle runs with the model it was trained with; drop this setting",
            )
        layers.apply({path: value}, f"bundle:{model_path}", flat=True)

    inference = _validated(InferenceConfig, layers.section(exclude=("execution",)), layers)
    execution_cfg = _validated(ExecutionConfig, layers.section(EXECUTION_PREFIX), layers, prefix=EXECUTION_PREFIX)
    accelerator = resolve_accelerator(execution_cfg.accelerator) if resolve_device else execution_cfg.accelerator
    check_precision(execution_cfg.precision, accelerator)
    plan = bridge_inference(inference, execution_cfg, accelerator, trained)
    _note_resolved_precision(layers, execution_cfg.precision, plan.precision, accelerator)
    return InferencePayload(
        inference=inference,
        execution=execution_cfg,
        accelerator=accelerator,
        plan=plan,
        provenance=dict(sorted(layers.values.items())),
    )


def _note_resolved_precision(layers: LayeredConfig, requested: str, resolved: str, accelerator: str) -> None:
    """Make --explain say what precision 'auto' became (the config itself keeps 'auto')."""
    reason = precision_reason(requested, resolved, accelerator)
    if not reason:
        return
    path = EXECUTION_PREFIX + "precision"
    current = layers.values[path]
    note = f"{current.note}; {reason}" if current.note else reason
    layers.values[path] = Resolved(current.value, current.source, note)


def format_provenance(provenance: Mapping[str, Resolved]) -> str:
    """An ASCII table of every resolved field: field, value, source (and what it replaced)."""
    rows = [("field", "value", "source")]
    for path, resolved in provenance.items():
        source = resolved.source + (f" ({resolved.note})" if resolved.note else "")
        rows.append((path, repr(resolved.value) if isinstance(resolved.value, str) else str(resolved.value), source))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


__all__ = [
    "InferencePayload",
    "TrainingPayload",
    "create_inference_payload",
    "create_training_payload",
    "format_provenance",
    "inspect_training_data",
]
