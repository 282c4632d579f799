"""The run directory: one per run id, stable across requeues and restarts.

Layout (``<runs_dir>/<run_id>/``)::

    config/run.yaml      resolved training + execution (+ cluster) config: what the job trains with
    launch.json          run id, submitted config hash, mode, job ids, log folder, command line
    provenance.json      code version (git describe), package versions, python, host
    state.json           written by the job: status, attempts, requeues, trained hash, world size...
    progress.json        rank 0's latest global step (updated every batch)
    ranks/rank-<k>.json  each rank's own record (world size it saw, steps, status, error)
    logs/                per-rank stdout/stderr (<job id>_<rank>_log.out/.err) and submitit files
    metrics/             TensorBoard events (appended by every attempt) or attempt-<k>/metrics.csv
    run.lock             which job holds the run (one live job per run)
    checkpoints/         last.ckpt, periodic and preempt-step=<N>.ckpt checkpoints
    model.ptpinn         the final bundle
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.errors import RunNotFoundError
from ptycho_torch import write_json_atomic as _write_json_atomic

RUNS_DIR_ENV = "PTYCHO_RUNS_DIR"
_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_runs_dir() -> Path:
    """``$PTYCHO_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get(RUNS_DIR_ENV, "runs"))


def new_run_id(stem: str) -> str:
    """``<stem>-<UTC yyyymmdd-HHMMSS>-<4 hex>``: unique, sortable, readable."""
    slug = _SLUG_RE.sub("-", stem).strip("-.") or "run"
    return f"{slug[:48]}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Run records are small and rewritten often (every batch for progress): no fsync."""
    _write_json_atomic(path, data, fsync=False)


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed JSON file, or ``default`` when it does not exist (or is being replaced)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default


@dataclass(frozen=True)
class RunDir:
    """Paths and small records of one run directory."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config" / "run.yaml"

    @property
    def launch_file(self) -> Path:
        return self.path / "launch.json"

    @property
    def provenance_file(self) -> Path:
        return self.path / "provenance.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def progress_file(self) -> Path:
        return self.path / "progress.json"

    @property
    def ranks_dir(self) -> Path:
        return self.path / "ranks"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def bundle(self) -> Path:
        return self.path / "model.ptpinn"

    def exists(self) -> bool:
        """True when this folder holds a launched run (its launch.json exists)."""
        return self.launch_file.is_file()

    def launch(self) -> dict[str, Any]:
        return read_json(self.launch_file, {}) or {}

    def state(self) -> dict[str, Any]:
        return read_json(self.state_file, {}) or {}

    def update_launch(self, **fields: Any) -> dict[str, Any]:
        data = {**self.launch(), **fields}
        write_json_atomic(self.launch_file, data)
        return data

    def update_state(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into state.json (stamped with the time); returns the new state."""
        data = {**self.state(), **fields, "updated_at": time.time()}
        write_json_atomic(self.state_file, data)
        return data

    def add_job_id(self, job_id: str) -> None:
        """Record a scheduler job id for this run (a run may have several after resubmits)."""
        launch = self.launch()
        ids = [j for j in launch.get("job_ids", []) if j != job_id] + [job_id]
        self.update_launch(job_ids=ids)

    @property
    def job_id(self) -> str | None:
        """The newest scheduler job id of this run, if it was submitted to SLURM."""
        ids = self.launch().get("job_ids") or []
        return ids[-1] if ids else None

    def rank_records(self) -> dict[int, dict[str, Any]]:
        """Each rank's own record, by global rank."""
        out = {}
        for path in sorted(self.ranks_dir.glob("rank-*.json")):
            record = read_json(path)
            if record is not None:
                out[int(path.stem.split("-")[1])] = record
        return out

    def write_rank_record(self, rank: int, **fields: Any) -> None:
        path = self.ranks_dir / f"rank-{rank}.json"
        write_json_atomic(path, {**(read_json(path, {}) or {}), **fields, "rank": rank, "updated_at": time.time()})


def find_run(ref: str, runs_dir: Path | None = None) -> RunDir:
    """A run by directory path or run id (exact, else a unique prefix) under ``runs_dir``."""
    runs_dir = runs_dir or default_runs_dir()
    direct = Path(ref)
    for candidate in (direct, runs_dir / ref):
        if (candidate / "launch.json").is_file():
            return RunDir(candidate)
    matches = sorted(p for p in runs_dir.glob(f"{ref}*") if (p / "launch.json").is_file()) if runs_dir.is_dir() else []
    if len(matches) == 1:
        return RunDir(matches[0])
    hint = "run `ptycho-launch list` to see the runs" + (f" (under {runs_dir}; --runs-dir changes it)")
    if len(matches) > 1:
        raise RunNotFoundError(f"run id prefix '{ref}' is ambiguous", where="RUN",
                               found=", ".join(p.name for p in matches[:5]), hint="give more of the id")
    raise RunNotFoundError(f"no run '{ref}'", where="RUN", expected="a run id or run directory", hint=hint)


def list_runs(runs_dir: Path | None = None) -> list[RunDir]:
    """All runs under ``runs_dir`` (sweep members are ordinary runs named <sweep id>-<k>), oldest first."""
    runs_dir = runs_dir or default_runs_dir()
    if not runs_dir.is_dir():
        return []
    found = [RunDir(p.parent) for p in runs_dir.glob("*/launch.json")]
    return sorted(found, key=lambda r: (r.launch().get("created_at", 0), r.run_id))
