"""Loggers of a training run and reading their history back (CSV rows, loss curves).

What is logged beside the loss: :mod:`ptycho_torch.workflows.diagnostics`.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

METRICS_DIRNAME = "metrics"


def next_attempt_dir(root: Path) -> str:
    """``attempt-<k>``, one past the highest attempt folder under ``root``."""
    numbers = [int(p.name.split("-", 1)[1]) for p in Path(root).glob("attempt-*") if p.name.split("-", 1)[1].isdigit()]
    return f"attempt-{max(numbers, default=-1) + 1}"


def build_logger(backend: str, output_dir: Path) -> Logger | bool:
    """TensorBoard (default), CSV, or no logger, writing under ``<output_dir>/metrics``.

    TensorBoard gets no placeholder ``hp_metric`` (``default_hp_metric=False``).

    History survives restarts (resume after a preemption or a crash): TensorBoard appends
    new event files to ``metrics/`` (TensorBoard shows them as one run); the CSV logger
    would delete an existing ``metrics.csv``, so each attempt writes its own
    ``metrics/attempt-<k>/metrics.csv`` and :func:`read_metrics_history` joins them.
    """
    root = Path(output_dir) / METRICS_DIRNAME
    if backend == "tensorboard":
        return TensorBoardLogger(save_dir=str(output_dir), name=METRICS_DIRNAME, version="", default_hp_metric=False)
    if backend == "csv":
        return CSVLogger(save_dir=str(output_dir), name=METRICS_DIRNAME, version=next_attempt_dir(root))
    return False


def read_metrics_history(output_dir: Path) -> list[dict[str, str]]:
    """All CSV metric rows of every attempt as one history, ordered by step.

    Where attempts overlap (a restart from a checkpoint older than the last logged step),
    the later attempt's rows win for those steps.
    """
    import csv

    root = Path(output_dir) / METRICS_DIRNAME
    attempts = sorted((p for p in root.glob("attempt-*/metrics.csv")), key=lambda p: int(p.parent.name.split("-", 1)[1]))
    rows: list[dict[str, str]] = []
    for path in attempts:
        with path.open(newline="", encoding="utf-8") as handle:
            new = [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(handle)]
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first] + new
    return sorted(rows, key=lambda r: int(r["step"]))


LOSS_TAGS = ("train_loss_per_pixel_epoch", "val_loss_per_pixel", "train_loss_epoch", "val_loss")
"""The loss series a report plots, in order of preference: per pixel (readable) before raw."""


def read_loss_curves(output_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """The training/validation loss curves of a run: ``{tag: (steps, values)}``; {} when no log is found.

    Reads the CSV history (:func:`read_metrics_history`) or, failing that, the TensorBoard
    event files under ``<output_dir>/metrics``.  The per-pixel series are returned when
    logged, the raw ones otherwise (older runs).
    """
    root = Path(output_dir) / METRICS_DIRNAME
    series: dict[str, dict[int, float]] = {}
    rows = read_metrics_history(output_dir) if root.is_dir() else []
    for row in rows:
        for tag in LOSS_TAGS:
            if tag in row:
                series.setdefault(tag, {})[int(row["step"])] = float(row[tag])
    if not series and any(root.glob("events.out.tfevents.*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(root), size_guidance={"scalars": 0})
        events.Reload()
        for tag in set(LOSS_TAGS) & set(events.Tags().get("scalars", [])):
            for event in events.Scalars(tag):  # a later attempt's value wins for a repeated step
                series.setdefault(tag, {})[int(event.step)] = float(event.value)
    per_pixel = [tag for tag in LOSS_TAGS if "per_pixel" in tag and tag in series]
    chosen = per_pixel or [tag for tag in LOSS_TAGS if tag in series]
    return {tag: (sorted(series[tag]), [series[tag][k] for k in sorted(series[tag])]) for tag in chosen}
