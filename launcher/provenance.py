"""What a run records about the code and environment it was launched from."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("ptycho-torch", "torch", "lightning", "submitit", "numpy", "pydantic", "h5py", "pyyaml")


def git_describe(repo: Path | None = None) -> str | None:
    """``git describe --always --dirty --tags`` of the source tree, or None when it is not a git checkout."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None when not installed), without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect_provenance(command: list[str]) -> dict[str, Any]:
    """Code version, package versions, interpreter, host and the submitted command line."""
    versions = package_versions()
    return {
        "code_version": {"git_describe": git_describe(), "package_version": versions.get("ptycho-torch")},
        "packages": versions,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "command": command,
        "created_at": time.time(),
    }
