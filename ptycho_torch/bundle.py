"""The model bundle (``.ptpinn``): one self-describing file per trained model.

Layout: an uncompressed zip with

- ``bundle.json``  format version, code and package versions, the full resolved canonical
  ``TrainingConfig`` (JSON), the physics scale (``mean_total_intensity``, ``nphotons``), the
  config hash, and a manifest of every tensor (name, shape, dtype);
- ``weights.pt``   the state dict, read back with ``torch.load(weights_only=True)``.

Loading executes no code from the file (JSON plus a weights-only tensor loader) and is strict:
a tensor missing from or extra to the manifest or the model is an error.  Writing is atomic.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ptycho_torch.atomic import atomic_path
from ptycho_torch.errors import BundleError

FORMAT_NAME = "ptycho-torch-bundle"
FORMAT_VERSION = 1
HEADER = "bundle.json"
WEIGHTS = "weights.pt"


@dataclass(frozen=True)
class LoadedBundle:
    """The bundle's metadata (``bundle.json``) and its state dict."""

    path: Path
    metadata: dict[str, Any]
    state_dict: dict[str, Any]

    @property
    def training_config(self) -> dict[str, Any]:
        """The TrainingConfig fields it was trained with (:func:`bundle_training_fields`)."""
        return bundle_training_fields(self.metadata)

    @property
    def physics(self) -> dict[str, Any]:
        return self.metadata["physics"]


def _manifest(state_dict: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")} for name, t in state_dict.items()}


def save_bundle(
    path: str | Path,
    *,
    state_dict: Mapping[str, Any],
    training: Mapping[str, Any],
    physics: Mapping[str, Any],
    config_hash: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically (temporary file in the same folder, then rename)."""
    import torch

    from ptycho_torch.versioning import code_version, package_versions

    path = Path(path)
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "code_version": code_version(),
        "packages": package_versions(),
        "config_hash": config_hash,
        "training": dict(training),
        "physics": dict(physics),
        "tensors": _manifest(tensors),
        **dict(extra or {}),
    }
    weights = io.BytesIO()
    torch.save(tensors, weights)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(HEADER, json.dumps(metadata, indent=2, sort_keys=True))
            archive.writestr(WEIGHTS, weights.getvalue())
    return path


def bundle_training_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's TrainingConfig fields, completed where the bundle predates a field.

    ``model.estimate_iters`` (issue 8): absent means the generator saw the amplitudes alone, 0.
    """
    training = dict(metadata["training"])
    model = dict(training.get("model") or {})
    model.setdefault("estimate_iters", 0)
    training["model"] = model
    return training


def read_bundle_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check ``bundle.json`` only (no torch needed)."""
    path = Path(path)
    if not path.is_file():
        raise BundleError("model bundle not found", where=str(path), hint="pass the model.ptpinn written by ptycho-train")
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(HEADER))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise BundleError(
            f"not a readable model bundle ({type(exc).__name__})",
            where=str(path),
            expected=f"a zip holding {HEADER} and {WEIGHTS}",
            hint="the file may be truncated or not a .ptpinn bundle",
        ) from None
    if metadata.get("format") != FORMAT_NAME:
        raise BundleError("not a ptycho-torch bundle", where=f"{path}:{HEADER}:format", expected=FORMAT_NAME, found=repr(metadata.get("format")))
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            "unsupported bundle format version",
            where=f"{path}:{HEADER}:format_version",
            expected=str(FORMAT_VERSION),
            found=repr(version),
            hint="use the ptycho-torch version that wrote it, or retrain",
        )
    for key in ("training", "physics", "tensors", "config_hash"):
        if key not in metadata:
            raise BundleError("bundle header is incomplete", where=f"{path}:{HEADER}", expected=f"key '{key}'", found="none")
    return metadata


def load_bundle(path: str | Path) -> LoadedBundle:
    """Read a bundle; the tensors must match the manifest exactly (names, shapes, dtypes)."""
    import torch

    path = Path(path)
    metadata = read_bundle_metadata(path)
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(WEIGHTS)
        state_dict = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        raise BundleError(f"cannot read the weights ({type(exc).__name__}: {exc})", where=f"{path}:{WEIGHTS}") from None
    if not isinstance(state_dict, dict):
        raise BundleError("weights are not a state dict", where=f"{path}:{WEIGHTS}", found=type(state_dict).__name__)
    found, expected = _manifest(state_dict), metadata["tensors"]
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise BundleError(
            "weights do not match the bundle's manifest",
            where=f"{path}:{WEIGHTS}",
            expected=f"tensors {missing} present" if missing else None,
            found=f"unexpected tensors {extra}" if extra else None,
            hint="the file was modified or truncated",
        )
    changed = sorted(name for name in expected if expected[name] != found[name])
    if changed:
        raise BundleError("tensor shapes or dtypes differ from the manifest", where=f"{path}:{WEIGHTS}", found=", ".join(changed))
    return LoadedBundle(path=path, metadata=metadata, state_dict=state_dict)


def load_state_strict(module: Any, state_dict: Mapping[str, Any], *, where: str) -> None:
    """``module.load_state_dict(strict=True)``, with missing/extra tensors as one BundleError line."""
    result = module.load_state_dict(dict(state_dict), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BundleError(
            "bundle does not fit the model it describes",
            where=where,
            expected=f"missing tensors {sorted(result.missing_keys)}" if result.missing_keys else None,
            found=f"extra tensors {sorted(result.unexpected_keys)}" if result.unexpected_keys else None,
        )
