"""Fault injection for checking a cluster setup (and for the launcher's own tests).

``PTYCHO_LAUNCH_FAULT=<kind>@rank=R,step=S`` acts on global rank R after training step S:

- ``crash``: raise a RuntimeError; one failing rank ends the whole job promptly, with that
  rank's error in ``ptycho-launch status`` (a code error: not requeued);
- ``hang``: stop advancing forever (sleep in a loop); the watchdog (``hang_timeout_s``)
  names rank R and ends the job, which requeues within its budget and resumes.

A fault fires only in the run's first attempt, so a requeue or ``resume`` shows recovery.
Unset (the default), nothing is added to training.
"""

from __future__ import annotations

import os
import time
from typing import Any

FAULT_ENV = "PTYCHO_LAUNCH_FAULT"
FAULT_KINDS = ("crash", "hang")


def parse_fault(text: str | None) -> dict[str, Any] | None:
    """``hang@rank=1,step=2`` -> ``{"kind": "hang", "rank": 1, "step": 2}``; None when unset; ValueError when malformed."""
    if not text:
        return None
    kind, _, spec = text.partition("@")
    if kind not in FAULT_KINDS:
        raise ValueError(f"{FAULT_ENV}: unknown fault {kind!r} (one of {', '.join(k + '@rank=R,step=S' for k in FAULT_KINDS)})")
    values = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {"kind": kind, "rank": int(values.get("rank", 0)), "step": int(values.get("step", 1))}


def fault_callbacks(rank: int, attempt: int = 1) -> list[Any]:
    """The callbacks that inject the configured fault on this rank (none when unset or not the first attempt)."""
    fault = parse_fault(os.environ.get(FAULT_ENV))
    restarted = os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")
    if fault is None or fault["rank"] != rank or attempt > 1 or restarted:
        return []
    from lightning.pytorch.callbacks import Callback

    injected: dict[str, Any] = fault  # not None from here on (the closure below keeps the narrowing)

    class Inject(Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step < injected["step"]:
                return
            print(f"[launcher] injecting {injected['kind']} on rank {rank} at step {trainer.global_step}", flush=True)
            if injected["kind"] == "crash":
                raise RuntimeError(f"injected fault ({FAULT_ENV}) on rank {rank} at step {trainer.global_step}")
            while True:
                time.sleep(1.0)

    return [Inject()]
