"""Metrics of every attempt are kept and joined into one history (later attempts win on overlap)."""

from __future__ import annotations

from pathlib import Path

from ptycho_torch.workflows.logging import build_logger, next_attempt_dir, read_metrics_history


def _write(root: Path, attempt: int, steps: range, value: float) -> None:
    folder = root / "metrics" / f"attempt-{attempt}"
    folder.mkdir(parents=True)
    lines = ["epoch,step,train_loss_step"] + [f"0,{s},{value}" for s in steps]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_overlapping_attempts_join_without_gaps_or_duplicates(tmp_path):
    _write(tmp_path, 0, range(0, 10), 1.0)
    _write(tmp_path, 1, range(6, 15), 2.0)  # killed at 9, resumed from the step-6 checkpoint
    rows = read_metrics_history(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(15))
    assert {r["train_loss_step"] for r in rows if int(r["step"]) >= 6} == {"2.0"}


def test_each_csv_attempt_gets_its_own_folder(tmp_path):
    assert next_attempt_dir(tmp_path / "metrics") == "attempt-0"
    _write(tmp_path, 0, range(3), 1.0)
    logger = build_logger("csv", tmp_path)
    assert Path(logger.log_dir).name == "attempt-1"
    assert Path(build_logger("tensorboard", tmp_path).log_dir) == tmp_path / "metrics"  # TensorBoard appends
