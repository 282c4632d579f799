"""The code a job runs is the code that was submitted, also after a requeue that follows a ``git pull``.

At submit time :func:`take_snapshot` hashes the Python sources of ``launcher`` and
``ptycho_torch`` (the packages a job imports) and records the digest, the git commit and the
uncommitted diff in the run's launch record (``code_snapshot``).  With
``cluster.code_snapshot: copy`` (the default) it also copies the sources once per digest into
``<runs dir>/_code/<digest>/`` and the batch script puts that folder first on ``PYTHONPATH``,
so every attempt of the job imports the submitted code.  With ``check`` nothing is copied.

At every start the job calls :func:`verify_snapshot`: the sources it actually imported must
hash to the recorded digest; otherwise it refuses to train, recording why (``state.json``
and the rank record), and exits non-zero.  ``off`` skips both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

from launcher.errors import SubmitError

PACKAGES = ("launcher", "ptycho_torch")
CODE_DIR = "_code"


def package_dirs() -> dict[str, Path]:
    """Where ``launcher`` and ``ptycho_torch`` are imported from (without importing ptycho_torch)."""
    out = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SubmitError(f"package {name} not found", where="code snapshot", hint="install ptycho-torch (pip install -e .)")
        out[name] = Path(list(spec.submodule_search_locations)[0]).resolve()
    return out


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def source_digest(dirs: dict[str, Path] | None = None) -> str:
    """SHA-256 over the relative path and content of every ``.py`` file of the packages."""
    digest = hashlib.sha256()
    for name, root in sorted((dirs or package_dirs()).items()):
        for path in _sources(root):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def snapshot_dir(runs_dir: Path, digest: str) -> Path:
    """The folder (put on PYTHONPATH) that holds the copied sources of one digest."""
    return Path(runs_dir) / CODE_DIR / digest[:16]


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def plan_snapshot(mode: str, runs_dir: Path) -> dict[str, Any]:
    """What the launch record says about the code: mode, digest, and (copy mode) the folder on PYTHONPATH."""
    if mode == "off":
        return {"mode": "off"}
    digest = source_digest()
    record: dict[str, Any] = {"mode": mode, "digest": digest}
    if mode == "copy":
        record["path"] = str(snapshot_dir(runs_dir, digest))
    return record


def take_snapshot(record: dict[str, Any], run_path: Path) -> dict[str, Any]:
    """Copy the sources (copy mode; once per digest) and add the git commit and diff; returns the record."""
    if record.get("mode", "off") == "off":
        return record
    dirs = package_dirs()
    repo = dirs["ptycho_torch"].parent
    commit = _git(repo, "rev-parse", "HEAD")
    record = {**record, "git_commit": commit.strip() if commit else None}
    diff = _git(repo, "diff", "HEAD", "--", *[str(d) for d in dirs.values()]) if commit else None
    if diff:
        (run_path / "code.diff").write_text(diff, encoding="utf-8")
        record["git_diff"] = "code.diff"
    if record["mode"] == "copy":
        target = Path(record["path"])
        if not (target / ".complete").is_file():
            partial = target.with_name(f".{target.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            for name, root in dirs.items():
                for path in _sources(root):
                    dest = partial / name / path.relative_to(root)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)
            (partial / ".complete").write_text(record["digest"] + "\n", encoding="utf-8")
            if target.exists():  # another submission of the same code raced us: theirs is identical
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.rename(target)
    return record


def verify_snapshot(record: dict[str, Any] | None, dirs: dict[str, Path] | None = None) -> None:
    """Refuse to train when the imported sources are not the submitted ones (one line, names both digests)."""
    if not record or record.get("mode", "off") == "off":
        return
    dirs = dirs or package_dirs()
    found = source_digest(dirs)
    if found != record.get("digest"):
        where = ", ".join(str(d) for d in dirs.values())
        raise SubmitError("the code changed since the job was submitted", where=where,
                          expected=f"source digest {str(record.get('digest'))[:16]}", found=found[:16],
                          hint="relaunch to run the new code (code_snapshot: copy runs the submitted code on requeue)")
