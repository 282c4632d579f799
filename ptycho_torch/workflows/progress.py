"""Progress where the user waits: a bar on a terminal, a few plain lines in a log file.

* Training: Lightning's progress bar when it is enabled and stdout is a terminal; otherwise
  (a log file, the launcher, SLURM, or the bar turned off) :class:`EpochProgressLines` prints
  one line per epoch from rank 0: epoch, global step, mean training loss, samples/s, ETA.
* Loops of inference, stitching and refinement: :func:`track` / :class:`ProgressReporter` show a tqdm bar on a terminal (after a
  second, so quick runs stay quiet) and otherwise one line at each quarter of the work once
  it has taken more than a few seconds.  Both go to stderr, so stdout keeps the summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["EpochProgressLines", "ProgressReporter", "show_progress_bar", "track", "format_duration"]

T = TypeVar("T")

QUIET_SECONDS = 3.0
"""Off a terminal, :func:`track` prints nothing for loops that finish faster than this."""


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def show_progress_bar(enabled: bool, stream: TextIO | None = None) -> bool:
    """Whether Lightning's bar is shown: enabled in the config and stdout (``stream``) is a terminal."""
    return bool(enabled) and _is_terminal(sys.stdout if stream is None else stream)


def format_duration(seconds: float) -> str:
    """``'42s'``, ``'3m 05s'``, ``'2h 07m'``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class EpochProgressLines(Callback):
    """One line per training epoch on rank 0, for logs where a progress bar would be one long line.

    ``epoch 3/20  step 300  loss 1.234e+08  412 samples/s  ETA 1m 12s``: the loss is the mean
    of rank 0's batch losses over the epoch; samples/s counts every rank's samples over the
    epoch's wall time (validation included); the ETA extrapolates the mean epoch time of this
    process.  Lines are flushed at once (a log file followed with ``tail -f`` stays current).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._train_started = 0.0
        self._epochs_done = 0
        self._epoch_started = 0.0
        self._loss_sum = 0.0
        self._samples = 0

    def _write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(line, file=stream, flush=True)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._train_started = time.perf_counter()
        self._epochs_done = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()
        self._loss_sum, self._samples = 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        size = int(batch["diffraction"].shape[0]) if isinstance(batch, dict) and "diffraction" in batch else 1
        if torch.is_tensor(loss):
            self._loss_sum += float(loss.detach()) * size
        self._samples += size

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._epochs_done += 1
        now = time.perf_counter()
        elapsed = max(now - self._epoch_started, 1e-9)
        total = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        epoch = trainer.current_epoch + 1
        parts = [f"epoch {epoch}/{total}" if total else f"epoch {epoch}", f"step {trainer.global_step}"]
        if self._samples:
            parts.append(f"loss {self._loss_sum / self._samples:.4g}")
        parts.append(f"{self._samples * trainer.world_size / elapsed:.0f} samples/s")
        if total:
            per_epoch = (now - self._train_started) / self._epochs_done
            parts.append(f"ETA {format_duration(per_epoch * max(total - epoch, 0))}")
        self._write("  ".join(parts))


class ProgressReporter:
    """Progress of ``total`` steps on ``stream`` (default stderr): a tqdm bar on a terminal, else lines.

    Off a terminal, one line at each quarter of the work, once it has taken ``QUIET_SECONDS``
    or more (quick work prints nothing).  ``update(**values)`` marks one step done; the values
    (a misfit, say) are shown beside the count.
    """

    def __init__(self, total: int, label: str, unit: str = "batch", stream: TextIO | None = None) -> None:
        self.total, self.label, self.unit = int(total), label, unit
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self._started = time.perf_counter()
        self._bar = None
        self._marks: list[int] = []
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=unit, file=self.stream, leave=False, delay=1.0)
        elif self.total > 0:
            self._marks = sorted({max(1, round(self.total * q / 4)) for q in (1, 2, 3, 4)})

    def update(self, **values: Any) -> None:
        self.done += 1
        shown = {key: f"{value:.4g}" if isinstance(value, float) else value for key, value in values.items()}
        if self._bar is not None:
            if shown:
                self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)
            return
        if self._marks and self.done >= self._marks[0]:
            while self._marks and self.done >= self._marks[0]:
                self._marks.pop(0)
            elapsed = time.perf_counter() - self._started
            if elapsed >= QUIET_SECONDS:
                eta = elapsed / self.done * max(self.total - self.done, 0)
                extra = "".join(f", {key} {value}" for key, value in shown.items())
                plural = self.unit + ("es" if self.unit.endswith(("s", "ch")) else "s")
                print(f"{self.label}: {self.done}/{self.total} {plural} ({100 * self.done // self.total}%){extra}, "
                      f"{format_duration(elapsed)} elapsed, ETA {format_duration(eta)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def track(items: Iterable[T], total: int, label: str, unit: str = "batch", stream: TextIO | None = None) -> Iterator[T]:
    """Iterate ``items`` (``total`` of them), showing progress (:class:`ProgressReporter`)."""
    reporter = ProgressReporter(total, label, unit, stream)
    try:
        for item in items:
            yield item
            reporter.update()
    finally:
        reporter.close()
