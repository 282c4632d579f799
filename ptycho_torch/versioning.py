"""Code and environment versions recorded in bundles and run directories."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import ptycho_torch

PACKAGES = ("ptycho-torch", "torch", "lightning", "numpy", "pydantic", "h5py", "submitit")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version, plus ``git describe`` of the source tree when it is a git checkout."""
    version = ptycho_torch.__version__
    source = Path(ptycho_torch.__file__).resolve().parent.parent
    if (source / ".git").exists():
        try:
            described = subprocess.run(
                ["git", "-C", str(source), "describe", "--always", "--dirty", "--tags"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
            if described:
                version = f"{version}+git.{described}"
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (missing ones are omitted)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
