"""Heartbeats and a watchdog: a rank that stops advancing fails the job in bounded time.

Every rank counts its progress in memory (three ticks per step: batch start, the start of
the batch-end callbacks, the end of the launcher's batch-end callbacks; no I/O per step),
and its heartbeat says whether its main thread is waiting inside a collective or backward.  A daemon thread per rank writes ``ranks/hb-<rank>.json`` every
``interval`` seconds (atomic rename) and reads the others' files.  Once every rank has
finished a step, a rank whose progress has not changed for ``timeout`` seconds (or whose
heartbeat file has not been rewritten for that long: its process is gone or frozen) is
*stuck*.  The culprit is the stuck rank that is not waiting in a collective, else the one
furthest behind: a rank hung in a callback after step S never ticks past it, while its
peers wait in a collective (checkpoint barrier, gradient all-reduce) further on.  The detecting rank records the culprit, its last step
and the silence in ``state.json`` and the culprit's rank record, then ends its own process
with :data:`HUNG_EXIT`; ``srun --kill-on-bad-exit`` ends the others, and the batch script's
after-srun step requeues the job within the run's budget (:mod:`launcher.aftercare`).

The collective timeout of the process group is set above the watchdog timeout
(:func:`process_group_timeout_s`) so a rank waiting for a hung peer cannot wait forever,
but the watchdog, which names the right rank, speaks first.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

from lightning.pytorch.callbacks import Callback

from launcher.rundir import RunDir, read_json, write_json_atomic

HUNG_EXIT = 4
HANG_FLOOR_S = 300.0
STEP_TIME_FACTOR = 20.0
PG_MARGIN_S = 60.0
DEFAULT_PG_TIMEOUT_S = 1800.0


def derived_timeout_s(step_times: list[float], configured: float | None) -> float | None:
    """The configured timeout, else max(floor, 20 x median step time) once steps were measured."""
    if configured is not None:
        return float(configured)
    if len(step_times) < 3:
        return None
    return max(HANG_FLOOR_S, STEP_TIME_FACTOR * statistics.median(step_times))


def process_group_timeout_s(configured: float | None) -> float:
    """Collective timeout: the watchdog's plus a margin (so the watchdog names the culprit first)."""
    return DEFAULT_PG_TIMEOUT_S if configured is None else float(configured) + PG_MARGIN_S


def find_culprit(beats: dict[int, dict[str, Any]], world_size: int, timeout: float, now: float) -> dict[str, Any] | None:
    """The stuck rank furthest behind, from heartbeat records; None while all advance (or not all started)."""
    if len(beats) < world_size or any(b.get("ticks", 0) < 3 for b in beats.values()):
        return None
    stuck = {}
    for rank, beat in beats.items():
        silent = now - float(beat["changed_at"])
        frozen = now - float(beat["written_at"])
        if silent > timeout or frozen > timeout:
            stuck[rank] = max(silent, frozen)
    if not stuck:
        return None
    # not waiting in a collective first, then the fewest ticks, then the lowest rank
    rank = min(stuck, key=lambda r: (bool(beats[r].get("waiting")), beats[r]["ticks"], r))
    beat = beats[rank]
    return {"rank": rank, "step": int(beat["step"]), "silent_s": round(stuck[rank], 1),
            "phase": "inside step" if beat["ticks"] % 3 == 1 else "after step", "where": beat.get("where")}


_WAIT_MARKERS = ("torch/distributed", "torch/autograd", "torch/nn/parallel", "lightning/pytorch/strategies",
                 "lightning/fabric/strategies", "lightning/fabric/utilities/distributed")


def main_thread_waiting() -> tuple[bool, str | None]:
    """(inside a collective or backward pass?, innermost frame 'file:line func') of the main thread."""
    import sys
    import traceback

    ident = threading.main_thread().ident
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return False, None
    stack = traceback.extract_stack(frame)
    waiting = any(marker in entry.filename.replace("\\", "/") for entry in stack for marker in _WAIT_MARKERS)
    last = stack[-1]
    return waiting, f"{os.path.basename(last.filename)}:{last.lineno} {last.name}"


class Heartbeat(Callback):
    """Counts progress in memory; its thread writes the heartbeat and watches every rank's."""

    def __init__(self, run: RunDir, rank: int, world_size: int, timeout_s: float | None, interval_s: float | None = None) -> None:
        self.run, self.rank, self.world_size = run, rank, world_size
        self.configured = timeout_s
        self.interval = interval_s or (min(5.0, max(0.5, timeout_s / 4)) if timeout_s else 5.0)
        self.ticks, self.step, self.changed_at = 0, 0, time.time()
        self._batch_started: float | None = None
        self.step_times: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = time.time()  # beats written before this belong to an earlier attempt

    @property
    def file(self) -> Any:
        return self.run.ranks_dir / f"hb-{self.rank}.json"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.step, self.changed_at = int(trainer.global_step), time.time()
        self._thread = threading.Thread(target=self._loop, name="ptycho-heartbeat", daemon=True)
        self._thread.start()

    def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
        self.ticks += 1
        self.changed_at = self._batch_started = time.time()

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        self.ticks += 1
        now = time.time()
        if self._batch_started is not None and len(self.step_times) < 50:
            self.step_times.append(now - self._batch_started)
        self.ticks += 1
        self.step, self.changed_at = int(trainer.global_step), now

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.file.unlink(missing_ok=True)  # a finished rank is not a hung one
        except OSError:
            pass

    def late(self) -> "Callback":
        """A callback to put after all others of a batch end: its tick says this rank passed them."""
        beat = self

        class HeartbeatLate(Callback):
            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                beat.ticks += 1
                beat.changed_at = time.time()

        return HeartbeatLate()

    def _beat(self) -> None:
        waiting, where = main_thread_waiting()
        write_json_atomic(self.file, {"rank": self.rank, "ticks": self.ticks, "step": self.step, "pid": os.getpid(),
                                      "changed_at": self.changed_at, "written_at": time.time(),
                                      "waiting": waiting, "where": where})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()
            timeout = derived_timeout_s(self.step_times, self.configured)
            if timeout is None:
                continue
            beats = {}
            for path in self.run.ranks_dir.glob("hb-*.json"):
                beat = read_json(path)
                # a rank of a requeued job that has not beaten yet still has its last attempt's file
                if beat and float(beat.get("written_at", 0.0)) >= self.started_at:
                    beats[int(beat["rank"])] = beat
            culprit = find_culprit(beats, self.world_size, timeout, time.time())
            if culprit is not None and not self._stop.is_set():
                self._fail(culprit, timeout)

    def _fail(self, culprit: dict[str, Any], timeout: float) -> None:
        line = (f"rank {culprit['rank']} hung: no progress for {culprit['silent_s']:.0f} s {culprit['phase']} "
                f"{culprit['step']} (watchdog timeout {timeout:.0f} s, detected by rank {self.rank})")
        print(f"[launcher] watchdog: {line}", flush=True)
        if self.run.state().get("status") not in ("FAILED", "HUNG"):
            self.run.update_state(status="HUNG", error=line, hung_rank=culprit["rank"], hung_step=culprit["step"],
                                  hung_detected_at=time.time())
        self.run.write_rank_record(culprit["rank"], status="HUNG", error=line)
        os._exit(HUNG_EXIT)
