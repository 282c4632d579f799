"""One owner of the preemption signal: flag on every rank, agree at a batch boundary, save once.

- :class:`PreemptionFlag` installs a handler (SIGUSR2, which ``--signal=USR2@<lead>`` and
  ``scancel --signal=USR2`` deliver to every task) that only records the signal.  It replaces
  submitit's own USR2 handler in the job process, and Lightning's SLURM auto-requeue is
  switched off (``SLURMEnvironment(auto_requeue=False)``), so nothing else acts on it.
- :class:`PreemptionCallback` agrees on the flag across ranks every ``check_every_n_steps``
  optimiser steps (``cluster.preempt_check_every_n_steps``) with
  ``trainer.strategy.reduce_boolean_decision`` (any rank flagged -> all stop): one
  all-reduce and host sync then, none on the steps in between.  All ranks decide on the same
  global steps, so they meet in the collective.  All ranks then call ``trainer.save_checkpoint`` together (a collective; rank 0
  writes ``checkpoints/preempt-step=<N>.ckpt`` through a temporary file and a rename) and
  raise :class:`PreemptionStop`, which ends ``trainer.fit`` on every rank at the same step.
  The job (:mod:`launcher.job`) then requeues from rank 0 within the run's budget.
- The checkpoint is written mid-epoch, exactly at the agreed step; ``run_training(resume=
  "auto")`` picks it (highest global step) when the job starts again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from ptycho_torch import atomic_path

PREEMPT_SIGNALS = (signal.SIGUSR2,)


def preempt_signals(name: str) -> tuple[int, ...]:
    """The signal numbers for a ``cluster.preempt_signal`` name ('USR1', 'USR2', 'TERM')."""
    return (signal.Signals[f"SIG{name}"],)


class PreemptionFlag:
    """Records that a preemption signal arrived; the handler does nothing else."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received_at: float | None = None

    def install(self, signals: tuple[int, ...] = PREEMPT_SIGNALS) -> "PreemptionFlag":
        """Make this flag the (only) handler of ``signals`` in this process."""
        for signum in signals:
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        if self.signum is None:
            self.signum, self.received_at = signum, time.time()

    @property
    def is_set(self) -> bool:
        return self.signum is not None


class PreemptionStop(Exception):
    """Raised on every rank after the agreed preemption checkpoint is written."""

    def __init__(self, checkpoint: Path, global_step: int, signum: int | None) -> None:
        self.checkpoint = Path(checkpoint)
        self.global_step = int(global_step)
        self.signum = signum
        super().__init__(f"preempted at step {global_step}; checkpoint {checkpoint}")


class PreemptionCallback(Callback):
    """Agree on the flag at each batch end; on agreement save one checkpoint and stop all ranks."""

    def __init__(self, flag: PreemptionFlag, checkpoint_dir: str | Path, check_every_n_steps: int = 1) -> None:
        self.flag = flag
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self.checkpoint_dir = Path(checkpoint_dir)
        self.interrupted_training = False  # read by run_training: no bundle for a stopped run
        self.checkpoint: Path | None = None
        self.save_seconds: float | None = None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.check_every_n_steps:
            return  # the same steps on every rank: all ranks skip, or all meet in the collective
        if not trainer.strategy.reduce_boolean_decision(self.flag.is_set, all=False):
            return
        self.interrupted_training = True
        start = time.monotonic()
        self.checkpoint = save_checkpoint_atomic(trainer, self.checkpoint_dir / f"preempt-step={trainer.global_step}.ckpt")
        self.save_seconds = time.monotonic() - start
        flush_step_metrics(trainer)
        raise PreemptionStop(self.checkpoint, trainer.global_step, self.flag.signum)


def flush_step_metrics(trainer: Any) -> None:
    """Hand this batch's logged metrics to the loggers now (Lightning does it after this hook).

    Stopping inside ``on_train_batch_end`` would otherwise drop the last step of the attempt
    from the metrics history.  Uses Lightning 2.x's logger connector; skipped if it is absent.
    """
    connector = getattr(trainer, "_logger_connector", None)
    update = getattr(connector, "update_train_step_metrics", None)
    if update is None:
        return
    update()
    for logger in trainer.loggers:
        logger.save()


def save_checkpoint_atomic(trainer: Any, target: Path) -> Path:
    """``trainer.save_checkpoint`` on all ranks (a collective); rank 0 writes it through
    :func:`ptycho_torch.atomic.atomic_path` (temporary name, fsync, rename), so ``target`` is
    either absent or complete.  Under DDP only rank 0 writes: the other ranks' path is unused.
    """
    if trainer.is_global_zero:
        with atomic_path(target) as tmp:
            trainer.save_checkpoint(str(tmp))  # collective; ends with a barrier
    else:
        trainer.save_checkpoint(str(target))
    trainer.strategy.barrier("preempt-checkpoint-renamed")
    return target
