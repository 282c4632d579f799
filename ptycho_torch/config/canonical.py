"""Canonical configs: what is computed (the science).

Field names, meanings and defaults follow upstream PtychoPINN's canonical dataclasses so that
existing configs port over.  Two fields are added and recorded in the ADR's open questions:
``TrainingConfig.learning_rate`` (upstream kept it in its execution config, but it changes the
result, so it is science) and ``TrainingConfig.seed`` (the training seed; same seed, same
weights on a deterministic backend).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ptycho_torch.config.base import FrozenConfig

SUPPORTED_N = (32, 64, 128, 256)


def patterns_per_group(gridsize: int) -> int:
    """C = gridsize**2: the diffraction patterns (and object patches) in one sample.

    The one place this is computed: the configs, the grouping, the generators and the module
    all ask here.
    """
    return int(gridsize) * int(gridsize)


class ModelConfig(FrozenConfig):
    """The network and the forward model it is trained through."""

    N: Literal[32, 64, 128, 256] = Field(
        64,
        description="Patch and diffraction-pattern size in pixels (inferred from the probe's shape when a data file "
        "is given); 32 suits small detector crops and quick tests.",
    )
    gridsize: int = Field(
        1, ge=1, le=4, description="g: each training sample is g*g neighbouring scan positions (1 = single patches)."
    )
    n_filters_scale: int = Field(2, ge=1, le=16, description="Width multiplier of the generator (channels 32s, 64s, 128s, ...; both architectures).")
    model_type: Literal["pinn", "supervised"] = Field(
        "pinn", description="'pinn': unsupervised physics loss on the diffraction; 'supervised': labels (not available in this backend)."
    )
    architecture: Literal["resunet", "cnn"] = Field(
        "resunet",
        description=(
            "Generator network (docs/architectures.md). 'resunet' (default): residual U-Net, skip connections "
            "encoder->decoder, GroupNorm + SiLU, one shared decoder, output heads initialised small; better "
            "per step than 'cnn' and did not collapse in the benchmark, about 2.4x the cost per step on a CPU. "
            "'cnn': the original encoder with two decoders (conv+ReLU, max-pool, 8x8 bottleneck), the default "
            "before issue 8."
        ),
    )
    estimate_iters: int = Field(
        20,
        ge=0,
        le=100,
        description=(
            "Iterations of the physics estimate fed to the generator beside the amplitudes: single-pattern "
            "ePIE updates with the known probe from a uniform object (plus the overlap constraint for "
            "gridsize > 1), so the network starts from a real-space picture of each patch "
            "(physics/estimate.py, docs/architectures.md). 20 (the default) beat 5 by 0.01-0.04 amplitude SSIM "
            "at equal steps in the benchmark. 0 feeds the amplitudes alone (the behaviour, and the bundles, of "
            "versions before this field)."
        ),
    )
    amp_activation: Literal["sigmoid", "swish", "softplus", "relu"] = Field(
        "sigmoid", description="Activation of the amplitude head."
    )
    object_big: bool = Field(
        True, description="Merge the patches of a group on one canvas and cut them back out (overlap constraint, gridsize > 1)."
    )
    probe_big: bool = Field(True, description="Also predict the object border outside the central N/2 x N/2 region.")
    probe_mask: bool = Field(False, description="Multiply the probe by a soft disk mask.")
    probe_mask_sigma: float = Field(1.0, ge=0.0, le=64.0, description="Softness (pixels) of the probe mask's edge.")
    probe_mask_diameter: float | None = Field(
        None, gt=0.0, le=256.0, description="Diameter of the probe mask in pixels; None means N/2."
    )
    pad_object: bool = Field(True, description="Zero-pad the predicted central N/2 region to N (upstream's default layout).")
    probe_scale: float = Field(4.0, gt=0.0, le=1.0e6, description="The probe is divided by this before illumination.")
    gaussian_smoothing_sigma: float = Field(
        0.0, ge=0.0, le=32.0, description="Sigma (pixels) of a Gaussian blur of the probe before illumination; 0 disables it."
    )

    @field_validator("model_type")
    @classmethod
    def _pinn_only(cls, value: str) -> str:
        if value != "pinn":
            raise ValueError("model_type 'supervised' is not available in this backend: expected 'pinn'; use 'pinn'")
        return value

    @property
    def channels(self) -> int:
        """C = gridsize**2 patterns per sample (:func:`patterns_per_group`)."""
        return patterns_per_group(self.gridsize)

    @property
    def mask_diameter(self) -> float:
        """The probe mask's diameter in pixels: ``probe_mask_diameter``, or N/2 when that is None."""
        return self.N / 2 if self.probe_mask_diameter is None else float(self.probe_mask_diameter)

    @model_validator(mode="after")
    def _cross_checks(self) -> "ModelConfig":
        if self.probe_mask_diameter is not None and self.probe_mask_diameter > self.N:
            raise ValueError(
                f"probe_mask_diameter ({self.probe_mask_diameter}) must not exceed N ({self.N})"
            )
        return self


def _apply_n_images_alias(data: Any, owner: str) -> Any:
    """Map the deprecated ``n_images`` onto ``n_groups`` (warning once); both and different is an error."""
    if not isinstance(data, dict) or "n_images" not in data:
        return data
    data = dict(data)
    legacy = data.pop("n_images")
    if "n_groups" in data and data["n_groups"] is not None and data["n_groups"] != legacy:
        raise ValueError(
            f"n_images ({legacy}) and n_groups ({data['n_groups']}) disagree; n_images is a deprecated alias of n_groups: give only n_groups"
        )
    warnings.warn(f"{owner}: 'n_images' is deprecated, use 'n_groups'", DeprecationWarning, stacklevel=4)
    data["n_groups"] = legacy
    return data


def _check_neighbours(model: ModelConfig, neighbor_count: int) -> None:
    """A group of C = gridsize**2 patterns is drawn from the K nearest positions: K >= C."""
    if model.gridsize > 1 and neighbor_count < model.channels:
        raise ValueError(
            f"neighbor_count ({neighbor_count}) must be >= gridsize**2 ({model.channels}) to form groups"
        )


class TrainingConfig(FrozenConfig):
    """What to train on and how the loss and optimiser are set up."""

    DEPRECATED_ALIASES: ClassVar[dict[str, str]] = {"n_images": "n_groups"}

    model: ModelConfig = Field(default_factory=ModelConfig, description="The model being trained.")
    train_data_file: Path | None = Field(None, description="Training scan (NPZ or HDF5, DATA-001 contract).")
    test_data_file: Path | None = Field(None, description="Validation scan (NPZ or HDF5); None uses a held-out slice of the training groups.")
    batch_size: int = Field(16, ge=1, le=65536, description="Samples (groups) per optimisation step on each device.")
    nepochs: int = Field(50, ge=1, le=100000, description="Number of passes over the training groups.")
    mae_weight: float = Field(0.0, ge=0.0, le=1.0, description="Weight of the MAE term of the loss.")
    nll_weight: float = Field(1.0, ge=0.0, le=1.0, description="Weight of the Poisson negative log-likelihood term of the loss.")
    nphotons: float = Field(
        1.0e9, gt=0.0, le=1.0e20, description="Expected photon count per pattern (read from the data file's _metadata when present)."
    )
    n_groups: int = Field(
        512, ge=1, le=1_000_000_000, description="Number of samples (groups of gridsize**2 positions) drawn from the scan ('n_images' is its deprecated alias)."
    )
    subsample_seed: int | None = Field(None, ge=0, description="Seed for drawing the groups; None uses `seed`.")
    neighbor_count: int = Field(4, ge=1, le=64, description="K: the nearest neighbours a group's members are drawn from (gridsize > 1).")
    probe_trainable: bool = Field(False, description="Refine the probe along with the network.")
    intensity_scale_trainable: bool = Field(True, description="Learn the photon scale (log s) instead of keeping it fixed.")
    output_dir: Path = Field(Path("training_outputs"), description="Where checkpoints, logs and the model bundle are written.")
    torch_loss_mode: Literal["poisson", "mae"] = Field(
        "poisson", description="'poisson': nll_weight*NLL + mae_weight*MAE; 'mae': MAE only."
    )
    gradient_clip_val: float | None = Field(None, gt=0.0, le=1.0e6, description="Clip gradients to this norm; None disables clipping.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimiser.")
    learning_rate: float = Field(1.0e-3, gt=0.0, le=10.0, description="Initial learning rate (canonical here: it changes the result).")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="Weight decay of the optimiser.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="Momentum (sgd only).")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="Adam/AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="Adam/AdamW beta2.")
    scheduler: Literal["Default", "Exponential", "WarmupCosine", "ReduceLROnPlateau"] = Field(
        "Default", description="Learning-rate schedule ('Default' keeps it constant)."
    )
    lr_warmup_epochs: int = Field(0, ge=0, le=100000, description="Linear warm-up epochs (WarmupCosine).")
    lr_min_ratio: float = Field(0.1, ge=0.0, le=1.0, description="Final learning rate as a fraction of the initial one (WarmupCosine, Exponential).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the weight initialisation and the data order.")

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return _apply_n_images_alias(data, "TrainingConfig")

    @model_validator(mode="after")
    def _cross_checks(self) -> "TrainingConfig":
        if self.torch_loss_mode == "poisson" and self.nll_weight + self.mae_weight <= 0.0:
            raise ValueError("nll_weight + mae_weight must be > 0 with torch_loss_mode 'poisson'")
        _check_neighbours(self.model, self.neighbor_count)
        return self


class InferenceConfig(FrozenConfig):
    """What to reconstruct, with which trained model."""

    DEPRECATED_ALIASES: ClassVar[dict[str, str]] = {"n_images": "n_groups"}

    model: ModelConfig = Field(
        default_factory=ModelConfig, description="The model; taken from the bundle (a different one given here is an error)."
    )
    model_path: Path = Field(description="The trained model bundle (.ptpinn) to load.")
    test_data_file: Path = Field(description="The scan to reconstruct (NPZ or HDF5).")
    n_groups: int | None = Field(None, ge=1, le=1_000_000_000, description="Reconstruct from this many groups; None uses every scan position.")
    neighbor_count: int = Field(4, ge=1, le=64, description="K for grouping (gridsize > 1).")
    output_dir: Path = Field(Path("inference_outputs"), description="Where the reconstruction NPZ, PNGs and metrics are written.")
    stitching: Literal["probe_weighted", "central_crop"] = Field(
        "probe_weighted",
        description="How patches are combined: 'probe_weighted' weights every pixel of every patch by the probe "
        "intensity |P|^2 there (as ePIE/LSQML do; no grid at the scan step); 'central_crop' averages the central "
        "N/2 x N/2 of each patch with equal weight.",
    )
    refine_iters: int = Field(
        0, ge=0, le=100_000,
        description="Physics refinement after stitching: passes over every scan position that fit the whole object "
        "to the measured diffraction (Poisson likelihood), starting from the network's object; 0 turns it off.",
    )
    refine_probe: bool = Field(False, description="Also refine the probe during physics refinement.")
    refine_tolerance: float = Field(
        1e-4, ge=0.0, lt=1.0,
        description="Refinement stops early when the data misfit improved by less than this fraction over the "
        "last 3 passes; 0 always runs refine_iters passes.",
    )

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return _apply_n_images_alias(data, "InferenceConfig")

    @model_validator(mode="after")
    def _cross_checks(self) -> "InferenceConfig":
        # the factory sets ``model`` to the bundle's, so this checks K against the bundle's gridsize
        _check_neighbours(self.model, self.neighbor_count)
        return self
